/**
 * Certificates for --tls tests, made by the project's own `ctun certs` code in a
 * temporary folder, and the command-line flags that hand them to a server or client.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa, issueClient, issueServer } from '../../../tools/certs/index.js';

/** A CA in a new temporary folder; with a server certificate for `serverNames` and a client certificate for each of `clients`. Remove it with removePki. */
export async function makePki(o: { serverNames?: string[]; clients?: string[] } = {}): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ctun-pki-'));
  await initCa({ out: dir });
  if (o.serverNames !== undefined) await issueServer({ out: dir, names: o.serverNames });
  for (const name of o.clients ?? []) await issueClient({ out: dir, name });
  return dir;
}

export function removePki(dir: string): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** `ctun server` flags for the server certificate of the CA in `pki`. */
export const serverTlsArgs = (pki: string, extra: string[] = []): string[] => ['--tls', '--ca', join(pki, 'ca.crt'), '--cert', join(pki, 'server.crt'), '--key', join(pki, 'server.key'), ...extra];

/** `ctun client` flags for client `name`, whose certificate is in `dir`, trusting the CA in `pki`. */
export const clientTlsArgs = (pki: string, name: string, dir = pki): string[] => ['--tls', '--ca', join(pki, 'ca.crt'), '--cert', join(dir, `${name}.crt`), '--key', join(dir, `${name}.key`)];
