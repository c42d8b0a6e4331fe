import type { ErrorCode } from './error-codes.js';

export { ERROR_CODES, type ErrorCode } from './error-codes.js';

/**
 * The one error class of ctun. `message` is the one-line cause a user reads, `hint`
 * says what to do about it, `exitCode` is what the CLI exits with, and `cause` keeps
 * the original error for `--verbose`.
 */
export class CtunError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(
    code: ErrorCode,
    message: string,
    options: { hint?: string; exitCode?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CtunError';
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? ExitCode.Failure;
  }
}

/**
 * Exit codes. 1, 2 and 4 are those of the seed's configure script; the others are
 * ours and distinct so scripts and Kubernetes restart policies can tell them apart.
 */
export const ExitCode = {
  Ok: 0,
  Usage: 1,
  Privileges: 2,
  AddressInUse: 3,
  Aborted: 4,
  Rejected: 5,
  Device: 6,
  Failure: 7,
  Interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export function isCtunError(e: unknown): e is CtunError {
  return e instanceof CtunError;
}

/** Walks `cause` links, for `--verbose` output. */
export function causeChain(e: unknown): string[] {
  const lines: string[] = [];
  let current: unknown = e;
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    if (current instanceof Error) {
      lines.push(`${current.name}: ${current.message}`);
      current = (current as Error & { cause?: unknown }).cause;
    } else {
      lines.push(String(current));
      break;
    }
  }
  return lines;
}

/** Node system errors (EPERM, EADDRINUSE, ...) carry their errno name in `code`. */
export function errnoCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const code = (e as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
