/**
 * The client's end of a TLS connection (TCP with --tls, and the control connection
 * of sealed UDP), and the error a refusal becomes: exit code 5, no retry.
 */
import tls from 'node:tls';
import { CtunError, ExitCode, formatHostPort } from '../../common/index.js';
import { clientTlsOptions, tlsFailure, type TlsMaterial } from './tls.js';

/** A refusal during the TLS handshake or just after it: the client stops with exit code 5. */
export function refusedError(host: string, port: number, reason: string): CtunError {
  return new CtunError('TLS_REFUSED', `TLS with ${formatHostPort(host, port)} refused: ${reason}`, {
    hint: 'both ends need certificates from the same CA (ctun certs), valid, not revoked, and the server certificate must list the host dialled (--host of ctun certs server)',
    exitCode: ExitCode.Rejected,
  });
}

/** Opens the client's TLS connection; resolves once this end has verified the server. */
export async function connectTls(material: TlsMaterial, host: string, port: number, timeoutMs: number): Promise<tls.TLSSocket> {
  const socket = tls.connect({ ...clientTlsOptions(material, host, port), noDelay: true } as tls.ConnectionOptions);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`TLS handshake with ${formatHostPort(host, port)} timed out after ${timeoutMs} ms`)), timeoutMs);
      socket.once('error', (e) => {
        clearTimeout(timer);
        const f = tlsFailure(e);
        reject(f.refusal ? refusedError(host, port, f.reason) : e);
      });
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  } catch (e) {
    socket.destroy();
    throw e;
  }
  return socket;
}
