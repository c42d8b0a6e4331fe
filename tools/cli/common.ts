/**
 * What every bin shares: printing a CtunError as a one-line cause and a hint (the
 * cause chain with --verbose), and exiting with the error's code.
 */
import { causeChain, CtunError, ExitCode, isCtunError, createLogger, type LogFormat, type Logger } from '../common/index.js';

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

/** Runs a command body; any error becomes its message, hint and exit code. */
export async function runCommandBody(program: string, verbose: boolean, body: () => Promise<number | void>): Promise<never> {
  let code: number;
  try {
    code = (await body()) ?? ExitCode.Ok;
  } catch (e) {
    code = printError(program, e, verbose);
  }
  process.exit(code);
}

export function usageError(message: string, hint?: string): CtunError {
  return new CtunError('USAGE', message, { hint, exitCode: ExitCode.Usage });
}

export function cliLogger(argv: { 'log-format'?: string; verbose?: boolean }): Logger {
  return createLogger({ format: (argv['log-format'] as LogFormat | undefined) ?? 'text', level: argv.verbose ? 'debug' : 'info' });
}

/** Resolves on the first of the given signals. */
export function onceSignal(signals: NodeJS.Signals[]): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const handler = (s: NodeJS.Signals): void => {
      for (const x of signals) process.off(x, handler);
      resolve(s);
    };
    for (const s of signals) process.on(s, handler);
  });
}
