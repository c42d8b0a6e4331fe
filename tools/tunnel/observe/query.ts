/**
 * `ctun status`: asks a running tunnel end's `/status` (its --metrics endpoint) and
 * says what it found. Deployments run it inside the server's container, on that
 * container's loopback, so no port is published for it.
 */
import { get } from 'node:http';
import { CtunError, ExitCode } from '../../common/index.js';
import { formatMetricsAddress, type MetricsAddress } from './endpoint.js';
import { totalDrops, type Figures } from './figures.js';

/** GET over node:http (fetch refuses some ports, e.g. 6000, that are fine for us). */
function httpGet(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
  });
}

/** GET /status within `timeoutMs`; a refused or silent endpoint is a CtunError that says which. */
export async function fetchStatus(address: MetricsAddress, timeoutMs = 3000): Promise<Figures> {
  const url = `http://${formatMetricsAddress(address)}/status`;
  let res: { status: number; body: string };
  try {
    res = await httpGet(url, timeoutMs);
  } catch (e) {
    const code = (e as { code?: string }).code ?? (e as Error).message;
    throw new CtunError('STATUS_UNREACHABLE', `no tunnel status at ${url} (${code === 'ETIMEDOUT' ? `no answer within ${timeoutMs} ms` : code})`, {
      hint: 'start the server or client with --metrics [HOST:]PORT (or CTUN_METRICS), and give the same address here',
      exitCode: ExitCode.Failure,
      cause: e,
    });
  }
  if (res.status !== 200) throw new CtunError('STATUS_FAILED', `${url} answered ${res.status}`, { hint: 'is that port a ctun --metrics endpoint?', exitCode: ExitCode.Failure });
  return JSON.parse(res.body) as Figures;
}

const kib = (n: number): string => (n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`);

/** Lines for people: totals, drops by reason (non-zero only), and one line per client. */
export function formatStatus(f: Figures, indent = ''): string[] {
  const lines: string[] = [];
  const drops = Object.entries(f.drops).filter(([, n]) => (n ?? 0) > 0).map(([k, n]) => `${k} ${n}`);
  if (f.role === 'server') {
    lines.push(`${indent}tunnel server: ${f.clients?.filter((c) => c.attached).length ?? 0} client(s) connected, ${f.sessions ?? 0} session(s), ${f.macs ?? 0} MAC(s)`);
  } else {
    lines.push(`${indent}tunnel client: ${f.connected ? 'connected to' : 'connecting to'} ${f.server}${f.lastRttMs === undefined ? '' : `, rtt ${f.lastRttMs.toFixed(2)} ms`}, reconnects ${f.reconnects ?? 0}`);
  }
  lines.push(`${indent}  bytes in ${kib(f.bytes.rx)} (${f.frames.rx} frames), out ${kib(f.bytes.tx)} (${f.frames.tx} frames); drops ${totalDrops(f)}${drops.length ? ` (${drops.join(', ')})` : ''}`);
  if (f.fastPath !== undefined && f.fastPath.rx + f.fastPath.tx > 0) lines.push(`${indent}  of which native fast path: in ${f.fastPath.rx} frames, out ${f.fastPath.tx} frames`);
  for (const c of f.clients ?? []) {
    const who = `${c.peer ?? 'detached'}${c.identity ? ` ${c.identity}` : ''}`;
    lines.push(`${indent}  client ${who}  since ${c.since}  in ${kib(c.bytes.rx)}  out ${kib(c.bytes.tx)}  drops ${c.drops}${c.dest ? `  dest ${c.dest}` : ''}${c.attached ? '' : '  (detached, kept for a resume)'}`);
  }
  return lines;
}
