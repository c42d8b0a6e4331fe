/**
 * What every bin shares: printing a CtunError as a one-line cause and a hint (the
 * cause chain with --verbose), and exiting with the error's code.
 */
import { CtunError, ExitCode, createLogger, printError, type LogFormat, type Logger } from '../common/index.js';
import { defaultProgress, type ProgressMode } from '../steps/index.js';

// printError's home is tools/common (the demo uses it too); kept importable from here.
export { printError };

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

/** The --progress a user gave, else what fits stdout (a TTY gets the rich renderer). */
export function progressOf(argv: { progress?: string }): ProgressMode {
  return (argv.progress as ProgressMode | undefined) ?? defaultProgress(process.stdout.isTTY);
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
