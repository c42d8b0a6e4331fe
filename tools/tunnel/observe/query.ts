/**
 * `ctun status`: asks a running tunnel end's `/status` (its --metrics endpoint) and
 * says what it found. Deployments run it inside the server's container, on that
 * container's loopback, so no port is published for it.
 */
import { CtunError, ExitCode } from '../../common/index.js';
import { formatMetricsAddress, type MetricsAddress } from './endpoint.js';
import { totalDrops, type Figures } from './figures.js';

/** GET /status within `timeoutMs`; a refused or silent endpoint is a CtunError that says which. */
export async function fetchStatus(address: MetricsAddress, timeoutMs = 3000): Promise<Figures> {
  const url = `http://${formatMetricsAddress(address)}/status`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).name;
    throw new CtunError('STATUS_UNREACHABLE', `no tunnel status at ${url} (${cause === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : cause})`, {
      hint: 'start the server or client with --metrics [HOST:]PORT (or CTUN_METRICS), and give the same address here',
      exitCode: ExitCode.Failure,
      cause: e,
    });
  }
  if (!res.ok) throw new CtunError('STATUS_FAILED', `${url} answered ${res.status}`, { hint: 'is that port a ctun --metrics endpoint?', exitCode: ExitCode.Failure });
  return (await res.json()) as Figures;
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
  for (const c of f.clients ?? []) {
    const who = `${c.peer ?? 'detached'}${c.identity ? ` ${c.identity}` : ''}`;
    lines.push(`${indent}  client ${who}  since ${c.since}  in ${kib(c.bytes.rx)}  out ${kib(c.bytes.tx)}  drops ${c.drops}${c.dest ? `  dest ${c.dest}` : ''}${c.attached ? '' : '  (detached, kept for a resume)'}`);
  }
  return lines;
}
