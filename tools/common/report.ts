import { causeChain, ExitCode, isCtunError } from './errors.js';

/**
 * Prints an error as the bins and `npm run demo` show it: a CtunError as a one-line
 * cause and a hint (the cause chain with --verbose), anything else as an internal
 * error. Returns the exit code to end with.
 */
export function printError(program: string, e: unknown, verbose: boolean, write: (s: string) => void = (s) => process.stderr.write(s)): number {
  if (isCtunError(e)) {
    write(`${program}: error: ${e.message}\n`);
    if (e.hint) write(`${program}: hint: ${e.hint}\n`);
    // The code is what the README's error-code table is keyed by.
    if (verbose) write(`${program}: code: ${e.code} (exit ${e.exitCode})\n`);
    if (verbose) for (const line of causeChain(e.cause)) write(`  caused by ${line}\n`);
    return e.exitCode;
  }
  write(`${program}: internal error: ${(e as Error)?.message ?? String(e)}\n`);
  if (verbose && e instanceof Error && e.stack) write(e.stack + '\n');
  else write(`${program}: hint: run again with --verbose for details, and report it\n`);
  return ExitCode.Failure;
}

/**
 * Turns SIGINT and SIGTERM into an abort while `body` runs (the step runner then
 * undoes what was started), saying so once on stderr; the handlers go afterwards.
 */
export async function abortOnSignals<T>(program: string, body: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (s: NodeJS.Signals): void => {
    if (!controller.signal.aborted) process.stderr.write(`${program}: ${s}: undoing what was started …\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await body(controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
