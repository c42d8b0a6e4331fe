/** What every server transport does on listen: errors a user can act on, and the gate for peers not yet known. */
import { CtunError, ExitCode, errnoCode, formatHostPort } from '../../common/index.js';
import { PendingGate } from '../secure/index.js';
import type { ServerTransportOptions, TransportKind } from './types.js';

/** Bounds the connections (or sealed sessions) that have not said hello yet. */
export function gateFor(o: ServerTransportOptions): PendingGate {
  return new PendingGate({ timeoutMs: o.helloTimeoutMs, max: o.maxPending, onDrop: (peer, reason) => o.handlers.pendingDropped?.(peer, reason) });
}

/** A failed bind or listen as an error that says what to do (exit 3 for a port in use). */
export function listenError(e: unknown, host: string, port: number, kind: TransportKind): CtunError {
  const code = errnoCode(e);
  if (code === 'EADDRINUSE') {
    return new CtunError('ADDRESS_IN_USE', `${kind.toUpperCase()} port ${port} on ${host} is already in use`, {
      hint: `stop the other program on port ${port}, or choose another with --port`,
      exitCode: ExitCode.AddressInUse,
      cause: e,
    });
  }
  if (code === 'EACCES') {
    return new CtunError('PORT_PRIVILEGED', `not allowed to listen on port ${port}`, { hint: 'use a port above 1023 or run as root', exitCode: ExitCode.Privileges, cause: e });
  }
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EINVAL') {
    return new CtunError('BAD_LISTEN_ADDRESS', `${host} is not an address of this host`, { hint: 'use --listen 0.0.0.0 or one of this host\'s addresses', exitCode: ExitCode.Usage, cause: e });
  }
  return new CtunError('LISTEN_FAILED', `cannot listen on ${kind} ${formatHostPort(host, port)}: ${(e as Error).message}`, { exitCode: ExitCode.Failure, cause: e });
}
