/**
 * The PC's side of the demo: runs inside the PC's network namespace
 * (`ip netns exec PC node --import tsx tools/demo/session.ts '<json>'`) and prints one
 * JSON line per step, so the demo and the end-to-end tests read the same results.
 *
 *   {"mode":"reach","host":"172.17.0.4","port":27027}        a connect expected to fail
 *   {"mode":"session","target":"192.168.100.1",...}           the whole conversation
 */
import { discover, openServers, tcpConversation, tcpReach, udpConversation, xcpSession } from '../simulator/index.js';

export interface SessionRequest {
  mode: 'session';
  /** Where the simulator is through the tunnel. */
  target: string;
  portMapper: number;
  xcp: number;
  /** Discovery port and the broadcast address to send to; omitted: no discovery step. */
  discovery?: { port: number; broadcast: string };
  /** The Docker host as the PC sees it: the opened port is tried there directly too. */
  dockerHost?: string;
  /** Names of the opened servers (unique per run). */
  names: { tcp: string; udp: string };
}

export interface ReachRequest {
  mode: 'reach';
  host: string;
  port: number;
}

export type StepLine =
  | { step: 'open'; ok: true; tcp: number; udp: number }
  | { step: 'tcp'; ok: true; port: number; greeting: string; answer: string }
  | { step: 'udp'; ok: true; port: number; answer: string }
  | { step: 'xcp'; ok: true; connect: string; daq: Array<{ odt: number; seq: number; ms: number }> }
  | { step: 'discovery'; ok: true; from: string; answer: Record<string, unknown> }
  | { step: 'direct'; ok: true; host: string; port: number; result: string }
  | { step: 'reach'; ok: true; host: string; port: number; result: string }
  | { step: string; ok: false; error: string };

export async function runSession(r: SessionRequest, emit: (line: StepLine) => void): Promise<boolean> {
  const step = async <T extends StepLine>(name: string, body: () => Promise<T>): Promise<T | undefined> => {
    try {
      const line = await body();
      emit(line);
      return line;
    } catch (e) {
      emit({ step: name, ok: false, error: (e as Error).message });
      return undefined;
    }
  };
  const opened = await step('open', async () => {
    const o = await openServers(r.target, r.portMapper, r.names);
    return { step: 'open' as const, ok: true as const, tcp: o.tcp.port, udp: o.udp.port };
  });
  if (!opened) return false;
  const tcp = await step('tcp', async () => ({ step: 'tcp' as const, ok: true as const, port: opened.tcp, ...(await tcpConversation(r.target, opened.tcp, 'ping over the tunnel')) }));
  const udp = await step('udp', async () => ({ step: 'udp' as const, ok: true as const, port: opened.udp, answer: await udpConversation(r.target, opened.udp, 'datagram over the tunnel') }));
  const xcp = await step('xcp', async () => ({ step: 'xcp' as const, ok: true as const, ...(await xcpSession(r.target, r.xcp, 5)) }));
  let disc: unknown = true;
  if (r.discovery) {
    const d = r.discovery;
    disc = await step('discovery', async () => ({ step: 'discovery' as const, ok: true as const, ...(await discover(d.broadcast, d.port)) }));
  }
  if (r.dockerHost) {
    const host = r.dockerHost;
    emit({ step: 'direct', ok: true, host, port: opened.tcp, result: await tcpReach(host, opened.tcp) });
  }
  return Boolean(tcp && udp && xcp && disc);
}

async function main(): Promise<void> {
  const request = JSON.parse(process.argv[2] ?? '{}') as SessionRequest | ReachRequest;
  const emit = (line: StepLine): void => void process.stdout.write(JSON.stringify(line) + '\n');
  if (request.mode === 'reach') {
    emit({ step: 'reach', ok: true, host: request.host, port: request.port, result: await tcpReach(request.host, request.port) });
    return;
  }
  const ok = await runSession(request, emit);
  process.exitCode = ok ? 0 : 1;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) await main();
