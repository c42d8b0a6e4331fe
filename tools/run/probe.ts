import { connect } from 'node:net';
import { IMAGE_NODE_BINARY } from '../image/index.js';

/**
 * The simulator readiness probe: a TCP connect that completes proves a listener, on
 * any simulator. It runs where the deployment's traffic comes from (see ProbePoint):
 * inside a container, as a one-line script of the tunnel's own Node runtime, or from
 * the Docker host.
 */

/**
 * How one attempt went: the port accepted, or why not (`ECONNREFUSED`, `timeout`, …);
 * `unprobeable` when no attempt can ever succeed there (no runtime to probe with).
 */
export type ProbeOutcome = { open: true } | { open: false; reason: string; unprobeable?: boolean };

/** Bound on one connect attempt; a wait makes many. */
export const PROBE_ATTEMPT_MS = 2000;

// Prints one word and exits 0 only when the connect completed. No data is sent: a
// simulator sees an accept and a close, as from a port scan.
const PROBE_SCRIPT = [
  "const [h,p,t]=process.argv.slice(1);",
  "const s=require('net').connect({host:h,port:Number(p)});",
  "s.setTimeout(Number(t),()=>{console.log('timeout');process.exit(1)});",
  "s.on('connect',()=>{console.log('open');s.destroy();process.exit(0)});",
  "s.on('error',(e)=>{console.log(e.code||e.message);process.exit(1)});",
].join('');

/** argv of one attempt inside a container that has the tunnel's runtime. */
export function probeArgv(host: string, port: number, timeoutMs = PROBE_ATTEMPT_MS): string[] {
  return [IMAGE_NODE_BINARY, '-e', PROBE_SCRIPT, host, String(port), String(timeoutMs)];
}

/** Reads the answer of {@link probeArgv} run by `docker exec`. */
export function probeOutcome(exitCode: number, output: string): ProbeOutcome {
  const word = output.trim().split('\n').pop()?.trim() ?? '';
  if (exitCode === 0 && word === 'open') return { open: true };
  // 126/127: the shell found no runtime to run (an image without the tunnel).
  if (exitCode === 126 || exitCode === 127 || /no such file|not found|executable file/i.test(output)) {
    return { open: false, reason: `cannot run the probe (${IMAGE_NODE_BINARY} is not in that container)`, unprobeable: true };
  }
  return { open: false, reason: word || `probe exited with ${exitCode}` };
}

/** One attempt from this machine (the Docker host), for deployments without a tunnel. */
export function probeFromHost(host: string, port: number, timeoutMs = PROBE_ATTEMPT_MS): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (o: ProbeOutcome): void => {
      s.destroy();
      resolve(o);
    };
    s.setTimeout(timeoutMs, () => done({ open: false, reason: 'timeout' }));
    s.on('connect', () => done({ open: true }));
    s.on('error', (e: NodeJS.ErrnoException) => done({ open: false, reason: e.code ?? e.message }));
  });
}
