/**
 * How the bench's load programs (loadgen.ts, traffic.ts, downstream.ts) run as
 * programs: their events as JSON lines on stdout, SIGTERM/SIGINT ending the run early
 * (they still say bye), the figures as a last `done` line, an error as one line on
 * stderr and exit code 1.
 */
import { pathToFileURL } from 'node:url';

export type Report = (event: string, fields: Record<string, unknown>) => void;

/** True when the module at `moduleUrl` is the program node was started with. */
export function isMain(moduleUrl: string): boolean {
  return moduleUrl === pathToFileURL(process.argv[1] ?? '').href;
}

export async function runAsProgram(name: string, run: (report: Report, signal: AbortSignal) => Promise<object>): Promise<void> {
  const line: Report = (event, fields) => void process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
  const stop = new AbortController();
  process.once('SIGTERM', () => stop.abort());
  process.once('SIGINT', () => stop.abort());
  try {
    line('done', { ...(await run(line, stop.signal)) });
  } catch (e) {
    process.stderr.write(`${name}: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
