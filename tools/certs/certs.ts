/**
 * A private CA for the tunnel's mutual TLS, as the seed thesis does with cfssl: a CA,
 * server certificates listing the host names and addresses clients dial (subject
 * alternative names), client certificates naming a client (CN), and a CRL for
 * revoked ones. ECDSA P-256 keys, SHA-256 signatures; X.509 encoding by
 * @peculiar/x509 on Node's WebCrypto. Private keys are written 0600.
 */
import 'reflect-metadata';
import { webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { CtunError, ExitCode } from '../common/index.js';

x509.cryptoProvider.set(webcrypto as never);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

export interface CertsOptions {
  /** Folder of the CA and the certificates; default ./ctun-certs. */
  out: string;
  /** Validity in days; defaults: CA 3650, certificates 825. */
  days?: number;
  /** Start of validity; default now (one minute back, for clock skew). */
  notBefore?: Date;
  /** Overwrite existing files; default false. */
  force?: boolean;
}

export interface IssuedFiles {
  cert: string;
  key: string;
  serial: string;
  subject: string;
  notAfter: Date;
  /** Subject alternative names, for server certificates. */
  names?: string[];
}

function pem(der: ArrayBuffer, label: string): string {
  return x509.PemConverter.encode(der, label) + '\n';
}

/**
 * Writes a key and its certificate, or neither: every path is checked before the
 * first is written, so a folder holding only ca.crt (or only alice.crt) is not left
 * with a new key beside a certificate it does not belong to.
 */
function writeAll(files: Array<{ path: string; data: string; mode: number }>, force: boolean): void {
  const existing = force ? undefined : files.find((f) => existsSync(f.path));
  if (existing !== undefined) {
    throw new CtunError('CERTS_EXIST', `${existing.path} exists already`, { hint: 'use --force to replace it, or another --out folder', exitCode: ExitCode.Usage });
  }
  for (const { path, data, mode } of files) {
    writeFileSync(path, data, { mode });
    chmodSync(path, mode); // writeFileSync keeps the mode of a file it replaces
  }
}

function daysOf(o: CertsOptions, defaultDays: number): number {
  const days = o.days ?? defaultDays;
  if (!Number.isFinite(days) || days <= 0) throw new CtunError('USAGE', `--days must be a positive number, got ${days}`, { exitCode: ExitCode.Usage });
  return days;
}

function validity(o: CertsOptions, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const days = daysOf(o, defaultDays);
  const notBefore = o.notBefore ?? new Date(Date.now() - 60_000);
  return { notBefore, notAfter: new Date(notBefore.getTime() + days * DAY) };
}

function serial(): string {
  // Positive, 16 random bytes: unique enough for a private CA, and a valid INTEGER.
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0]! & 0x7f) | 0x01;
  return Buffer.from(b).toString('hex');
}

function cnOf(name: string, flag: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/.test(name)) {
    throw new CtunError('USAGE', `${flag} "${name}" is not a valid name (letters, digits, . _ @ -, up to 64)`, { exitCode: ExitCode.Usage });
  }
  return name;
}

async function exportKey(key: CryptoKey): Promise<string> {
  return pem(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** Creates ca.crt and ca.key in `out`. */
export async function initCa(o: CertsOptions & { name?: string }): Promise<IssuedFiles> {
  mkdirSync(o.out, { recursive: true, mode: 0o700 });
  const name = cnOf(o.name ?? 'ctun-ca', '--name');
  const keys = await newKeys();
  const { notBefore, notAfter } = validity(o, 3650);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const files = { cert: join(o.out, 'ca.crt'), key: join(o.out, 'ca.key') };
  writeAll([{ path: files.key, data: await exportKey(keys.privateKey), mode: 0o600 }, { path: files.cert, data: cert.toString('pem') + '\n', mode: 0o644 }], o.force ?? false);
  return { ...files, serial: cert.serialNumber, subject: cert.subject, notAfter };
}

interface Ca {
  cert: x509.X509Certificate;
  key: CryptoKey;
}

async function loadCa(out: string): Promise<Ca> {
  const certPath = join(out, 'ca.crt');
  const keyPath = join(out, 'ca.key');
  if (!existsSync(certPath) || !existsSync(keyPath)) {
    throw new CtunError('CA_MISSING', `no CA in ${out} (ca.crt and ca.key)`, { hint: `create one first: ctun certs init --out ${out}`, exitCode: ExitCode.Usage });
  }
  try {
    const cert = new x509.X509Certificate(readFileSync(certPath, 'utf8'));
    const der = x509.PemConverter.decode(readFileSync(keyPath, 'utf8'))[0]!;
    const key = await webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']);
    return { cert, key };
  } catch (e) {
    throw new CtunError('CA_INVALID', `the CA in ${out} cannot be read: ${(e as Error).message}`, { hint: 'ca.key must be the ECDSA P-256 key ctun certs init wrote', exitCode: ExitCode.Usage, cause: e });
  }
}

/** What a certificate is for: its extended key usage. */
type Usage = 'server' | 'client' | 'signer';
const EKU: Record<Usage, string> = {
  server: x509.ExtendedKeyUsage.serverAuth,
  client: x509.ExtendedKeyUsage.clientAuth,
  signer: x509.ExtendedKeyUsage.codeSigning,
};

async function issue(o: CertsOptions, cn: string, fileBase: string, usage: Usage, names: string[]): Promise<IssuedFiles> {
  // ca.crt and ca.key are the CA's: a certificate named "ca" would replace them (with --force).
  if (fileBase === 'ca') throw new CtunError('USAGE', '--name "ca" is the CA\'s own file name (ca.crt, ca.key)', { hint: 'choose another name', exitCode: ExitCode.Usage });
  const ca = await loadCa(o.out);
  const keys = await newKeys();
  const { notBefore, notAfter } = validity(o, 825);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([EKU[usage]], false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
  ];
  if (names.length > 0) {
    extensions.push(new x509.SubjectAlternativeNameExtension(names.map((n) => (isIP(n) !== 0 ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n })), false));
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${cn}`,
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: ALG,
    extensions,
  });
  const files = { cert: join(o.out, `${fileBase}.crt`), key: join(o.out, `${fileBase}.key`) };
  writeAll([{ path: files.key, data: await exportKey(keys.privateKey), mode: 0o600 }, { path: files.cert, data: cert.toString('pem') + '\n', mode: 0o644 }], o.force ?? false);
  return { ...files, serial: cert.serialNumber, subject: cert.subject, notAfter, names };
}

const HOST_NAME = /^(?=.{1,253}$)([A-Za-z0-9*]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * A server certificate: `names` are every DNS name and IP address clients dial
 * (the client checks the host it dials against them). At least one is needed.
 */
export async function issueServer(o: CertsOptions & { name?: string; names: string[] }): Promise<IssuedFiles> {
  const names = [...new Set(o.names.flatMap((n) => n.split(',')).map((n) => n.trim()).filter((n) => n !== ''))];
  if (names.length === 0) {
    throw new CtunError('USAGE', 'a server certificate needs the names clients dial', { hint: 'add --host NAME_OR_IP (repeatable), e.g. --host 127.0.0.1 --host ctun.example', exitCode: ExitCode.Usage });
  }
  for (const n of names) {
    if (isIP(n) !== 0) continue;
    // A name whose last label is a number is a mistyped address (300.1.1.1, 10.0.0.256,
    // 10.0.1), not a DNS name (no top-level domain is numeric): as a DNS name in the
    // certificate it would match no address a client dials.
    if (/(^|\.)[0-9]+$/.test(n)) throw new CtunError('USAGE', `--host "${n}" is not a valid IP address`, { hint: 'an IPv4 address has four numbers 0-255, e.g. 10.0.0.5', exitCode: ExitCode.Usage });
    if (!HOST_NAME.test(n)) throw new CtunError('USAGE', `--host "${n}" is neither an IP address nor a DNS name`, { exitCode: ExitCode.Usage });
  }
  const cn = cnOf(o.name ?? 'server', '--name');
  return issue(o, cn, cn, 'server', names);
}

/** A client certificate whose CN names the client (the server logs it). */
export async function issueClient(o: CertsOptions & { name: string }): Promise<IssuedFiles> {
  const cn = cnOf(o.name, '--name');
  return issue(o, cn, cn, 'client', []);
}

/**
 * A signing certificate (extended key usage codeSigning, CN naming the signer): its key
 * signs air-gap bundles (`ctun-build bundle --sign`), and a site that trusts this CA
 * for the tunnel verifies the bundles with it too (`ctun-build load --verify ca.crt`).
 */
export async function issueSigner(o: CertsOptions & { name: string }): Promise<IssuedFiles> {
  const cn = cnOf(o.name, '--name');
  return issue(o, cn, cn, 'signer', []);
}

/**
 * Revokes certificates (by file or serial) in `out`/revoked.txt and writes a new
 * `out`/ca.crl signed by the CA; servers started with `--crl` refuse them.
 */
export async function revoke(o: CertsOptions & { certs?: string[]; serials?: string[] }): Promise<{ crl: string; revoked: string[] }> {
  const days = daysOf(o, 3650);
  const ca = await loadCa(o.out);
  const listPath = join(o.out, 'revoked.txt');
  const known = existsSync(listPath) ? readFileSync(listPath, 'utf8').split('\n').map((s) => s.trim()).filter((s) => s !== '') : [];
  const added: string[] = [];
  for (const path of o.certs ?? []) {
    let c: NodeX509;
    try {
      c = new NodeX509(readFileSync(path));
    } catch (e) {
      throw new CtunError('USAGE', `cannot read certificate ${path}: ${(e as Error).message}`, { exitCode: ExitCode.Usage, cause: e });
    }
    added.push(c.serialNumber.toLowerCase());
  }
  for (const s of o.serials ?? []) {
    if (!/^[0-9a-fA-F]{1,40}$/.test(s)) throw new CtunError('USAGE', `--serial "${s}" is not a hexadecimal serial number`, { exitCode: ExitCode.Usage });
    added.push(s.toLowerCase());
  }
  const all = [...new Set([...known, ...added.map((s) => s.replace(/^0+(?=.)/, ''))])];
  const now = new Date();
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subject,
    thisUpdate: new Date(now.getTime() - 60_000),
    nextUpdate: new Date(now.getTime() + days * DAY),
    entries: all.map((serialNumber) => ({ serialNumber, revocationDate: now })),
    signingAlgorithm: ALG,
    signingKey: ca.key,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca.cert)],
  });
  writeFileSync(listPath, all.join('\n') + '\n', { mode: 0o644 });
  const crlPath = join(o.out, 'ca.crl');
  writeFileSync(crlPath, pem(crl.rawData, 'X509 CRL'), { mode: 0o644 });
  return { crl: crlPath, revoked: all };
}
