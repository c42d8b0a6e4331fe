/**
 * TLS 1.3 with mutual authentication against a private CA (`ctun certs`). The files
 * are read and checked once at start, so a wrong path or a key that does not belong
 * to its certificate is a usage error before anything listens or connects.
 */
import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { CtunError, ExitCode, formatHostPort } from '../../common/index.js';
import { encode, ErrorCode, MessageType } from '../protocol.js';
import { KEY_BYTES } from './aead.js';
import type { Direction, KeyDeriver } from './sealer.js';

export interface TlsFiles {
  /** PEM file of the CA that signed the peers' certificates. */
  ca: string;
  /** PEM certificate of this end. */
  cert: string;
  /** PEM private key of this end (0600). */
  key: string;
  /** Optional PEM CRL of the CA (`ctun certs revoke`): revoked peers are refused. */
  crl?: string;
}

/** Loaded, checked material: what TLS needs plus what the logs say. */
export interface TlsMaterial {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  crl: Buffer | undefined;
  /** Subject of this end's certificate, e.g. "CN=server". */
  subject: string;
  expires: Date;
  files: TlsFiles;
  /** Problems that do not stop a start, for the log. */
  warnings: string[];
}

function readPem(path: string, flag: string, what: string): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (e) {
    throw new CtunError('TLS_FILE', `cannot read ${flag} ${path}: ${(e as Error).message}`, { hint: `give the ${what} made by: ctun certs`, exitCode: ExitCode.Usage, cause: e });
  }
  if (!data.includes('-----BEGIN ')) {
    throw new CtunError('TLS_FILE', `${flag} ${path} is not a PEM file`, { hint: `give the ${what} made by: ctun certs`, exitCode: ExitCode.Usage });
  }
  return data;
}

/** Reads and checks --ca/--cert/--key/--crl. Throws a usage CtunError naming the flag. */
export function loadTlsMaterial(files: TlsFiles, now: Date = new Date()): TlsMaterial {
  const ca = readPem(files.ca, '--ca', 'CA certificate (ca.crt)');
  const cert = readPem(files.cert, '--cert', 'certificate');
  const key = readPem(files.key, '--key', 'private key');
  const crl = files.crl === undefined ? undefined : readPem(files.crl, '--crl', 'CRL (ca.crl)');
  let x509: X509Certificate;
  let caX509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
    caX509 = new X509Certificate(ca);
  } catch (e) {
    throw new CtunError('TLS_FILE', `--cert ${files.cert} or --ca ${files.ca} holds no valid certificate`, { exitCode: ExitCode.Usage, cause: e });
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (e) {
    throw new CtunError('TLS_FILE', `--key ${files.key} holds no valid private key`, { exitCode: ExitCode.Usage, cause: e });
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new CtunError('TLS_KEY_MISMATCH', `--key ${files.key} does not belong to --cert ${files.cert}`, { hint: 'give the .key file written beside that .crt', exitCode: ExitCode.Usage });
  }
  // Not fatal: the peer may trust another CA than ours (but then it will refuse us).
  const warnings: string[] = [];
  if (!x509.verify(caX509.publicKey)) warnings.push(`--cert ${files.cert} was not issued by --ca ${files.ca}; the peer will refuse it unless it trusts its issuer`);
  const expires = new Date(x509.validTo);
  // Also a warning: the peer refuses it and says so, which is the clearer message.
  if (expires.getTime() <= now.getTime()) warnings.push(`--cert ${files.cert} expired on ${expires.toISOString()}; issue a new one with ctun certs server|client`);
  return { ca, cert, key, crl, subject: x509.subject.replace(/\n/g, ', '), expires, files, warnings };
}

const common = (m: TlsMaterial) => ({
  ca: m.ca,
  cert: m.cert,
  key: m.key,
  ...(m.crl === undefined ? {} : { crl: m.crl }),
  minVersion: 'TLSv1.3' as const,
  maxVersion: 'TLSv1.3' as const,
});

/**
 * Server side: a client must present a certificate of our CA (and not be revoked).
 * OpenSSL verifies it during the handshake; Node's server-side `rejectUnauthorized`
 * would then drop the socket without saying why, so the server checks
 * `unauthorizedReason()` on every new connection before reading a byte: the
 * reason is logged and the client told (Error NotAuthorized), then it is closed.
 */
export function serverTlsOptions(m: TlsMaterial, handshakeTimeoutMs: number): tls.TlsOptions {
  return { ...common(m), requestCert: true, rejectUnauthorized: false, handshakeTimeout: handshakeTimeoutMs };
}

/** Why a connected client is not authorized, or undefined when its certificate verified. */
export function unauthorizedReason(socket: tls.TLSSocket): string | undefined {
  if (socket.authorized) return undefined;
  const code = String(socket.authorizationError ?? 'no certificate');
  if (code === 'no certificate' || socket.getPeerCertificate()?.subject === undefined) return 'the client presented no certificate';
  return `${tlsFailure({ code }).reason} (${code})`;
}

/** Client side: the server's certificate must be from our CA and name the host we dial. */
export function clientTlsOptions(m: TlsMaterial, host: string, port: number): tls.ConnectionOptions {
  return {
    ...common(m),
    host,
    port,
    // SNI carries only DNS names; for an IP the check below matches the IP SANs.
    ...(isIP(host) === 0 ? { servername: host } : {}),
    rejectUnauthorized: true,
    checkServerIdentity: (_name, cert) => tls.checkServerIdentity(host, cert),
  };
}

/** The `security` field of the start-up log line. */
export function describeProtection(m: TlsMaterial | undefined, transport: 'udp' | 'tcp'): string {
  if (m === undefined) return 'none: plain mode, traffic is not encrypted or authenticated (trusted networks only)';
  const how =
    transport === 'tcp'
      ? 'TLS 1.3, then frames in records sealed with AES-256-GCM under its keys where both ends can (else inside TLS)'
      : 'TLS 1.3 handshake on TCP, datagrams sealed with AES-256-GCM, replay window 2048';
  return `mutual TLS: ${how}; peers need a certificate from ${m.files.ca}${m.crl === undefined ? '' : `, revocations from ${m.files.crl}`}; this end is ${m.subject}, valid until ${m.expires.toISOString()}`;
}

/** The peer's certificate common name, for logs. */
export function peerIdentity(socket: tls.TLSSocket): string {
  const cert = socket.getPeerCertificate();
  const cn = cert?.subject?.CN;
  return Array.isArray(cn) ? cn.join(',') : (cn ?? 'unknown');
}

/**
 * Serial numbers (lowercase hex, no leading zeros) listed in a PEM CRL. Loaded lazily:
 * only a server reloading its CRL (SIGHUP) needs the X.509 library.
 */
export async function revokedSerials(crl: Buffer): Promise<Set<string>> {
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  const parsed = new x509.X509Crl(crl.toString('utf8'));
  return new Set(parsed.entries.map((e) => normalSerial(e.serialNumber)));
}

export function normalSerial(hex: string): string {
  return hex.toLowerCase().replace(/^0+(?=.)/, '');
}

/** Whether a live TLS peer's certificate is in `revoked`. */
export function peerRevoked(socket: tls.TLSSocket, revoked: Set<string>): boolean {
  const serial = socket.getPeerCertificate()?.serialNumber;
  return serial !== undefined && revoked.has(normalSerial(serial));
}

/** The SHA-256 fingerprint of the peer's certificate: what a session is bound to (a CN may repeat). */
export function peerFingerprint(socket: tls.TLSSocket): string {
  return socket.getPeerCertificate()?.fingerprint256 ?? 'none';
}

/** Exporter labels (RFC 8446 §7.5), one per direction of the sealed UDP data. */
export const EXPORTER_LABEL: Record<Direction, string> = { c2s: 'EXPORTER-ctun-udp-c2s', s2c: 'EXPORTER-ctun-udp-s2c' };
/** The same for the sealed records of TCP --tls after its switch: other keys than UDP's. */
export const STREAM_EXPORTER_LABEL: Record<Direction, string> = { c2s: 'EXPORTER-ctun-tcp-c2s', s2c: 'EXPORTER-ctun-tcp-s2c' };

/** Key derivation from a live TLS session: the epoch is the exporter context. */
export function tlsKeyDeriver(socket: tls.TLSSocket, labels: Record<Direction, string> = EXPORTER_LABEL): KeyDeriver {
  return (direction, epoch) => {
    const context = Buffer.alloc(4);
    context.writeUInt32BE(epoch >>> 0, 0);
    return socket.exportKeyingMaterial(KEY_BYTES, labels[direction], context);
  };
}

/**
 * The one record the server sends on the TCP control connection of a UDP session,
 * after it has verified the client: `CTUK` | version (1) | key id (u32).
 */
export const KEY_RECORD_SIZE = 9;
export const KEY_RECORD_MAGIC = Buffer.from('CTUK', 'ascii');

export function encodeKeyRecord(keyId: number): Buffer {
  const b = Buffer.alloc(KEY_RECORD_SIZE);
  KEY_RECORD_MAGIC.copy(b, 0);
  b.writeUInt8(1, 4);
  b.writeUInt32BE(keyId, 5);
  return b;
}

/** Parses the key record; throws a plain Error (the connection is then dropped). */
export function decodeKeyRecord(b: Buffer): number {
  if (b.length !== KEY_RECORD_SIZE || !b.subarray(0, 4).equals(KEY_RECORD_MAGIC)) throw new Error('not a ctun key record: is the server running with --tls?');
  if (b.readUInt8(4) !== 1) throw new Error(`key record version ${b.readUInt8(4)} is not supported`);
  return b.readUInt32BE(5);
}

export function randomKeyId(): number {
  return randomBytes(4).readUInt32BE(0);
}

/**
 * A readable reason for a TLS failure. `peer` is true when the other end refused us
 * (an alert), false when this end refused the other's certificate.
 */
export function tlsFailure(e: unknown): { reason: string; refusal: boolean; byPeer: boolean } {
  const err = e as { code?: string; message?: string; reason?: string };
  const code = err?.code ?? '';
  const own: Record<string, string> = {
    CERT_HAS_EXPIRED: 'the peer certificate has expired',
    CERT_NOT_YET_VALID: 'the peer certificate is not yet valid',
    CERT_REVOKED: 'the peer certificate is revoked',
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the peer certificate is not from our CA',
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the peer certificate is not from our CA',
    UNABLE_TO_GET_ISSUER_CERT: 'the peer certificate is not from our CA',
    DEPTH_ZERO_SELF_SIGNED_CERT: 'the peer certificate is self-signed, not from our CA',
    SELF_SIGNED_CERT_IN_CHAIN: 'the peer certificate chains to another CA',
    CERT_SIGNATURE_FAILURE: 'the peer certificate signature is invalid',
    ERR_TLS_CERT_ALTNAME_INVALID: `the server certificate does not name the host dialled (${err?.reason ?? err?.message ?? ''})`,
    UNABLE_TO_GET_CRL: 'no CRL for the peer certificate',
    CRL_HAS_EXPIRED: 'the CRL has expired; issue a new one with ctun certs revoke',
  };
  if (code in own) return { reason: own[code]!, refusal: true, byPeer: false };
  const alert = /ALERT_([A-Z_]+)$/.exec(code);
  if (alert) {
    const name = alert[1]!.toLowerCase().replace(/_/g, ' ');
    return { reason: `the peer refused our certificate (TLS alert: ${name})`, refusal: true, byPeer: true };
  }
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE' || /peer did not return a certificate/i.test(err?.message ?? '')) {
    return { reason: 'the peer presented no certificate', refusal: true, byPeer: false };
  }
  if (/wrong version number|unsupported protocol|http request|packet length too long/i.test(err?.message ?? '')) {
    return { reason: `not a TLS peer: ${err?.message ?? code}`, refusal: false, byPeer: false };
  }
  return { reason: err?.message ?? String(e), refusal: false, byPeer: false };
}

/** "address:port" of a socket's peer, for logs and the pending gate. */
export function peerOf(s: { remoteAddress?: string; remotePort?: number } | undefined | null): string {
  return s == null ? 'unknown' : formatHostPort(s.remoteAddress ?? 'unknown', s.remotePort ?? '?');
}

/** What the server transports report about TLS peers (see ServerTransportHandlers). */
export interface TlsRefusalHandler {
  refused?(peer: string, reason: string, refusal: boolean): void;
}

/** A failed handshake: told to the server with whether it was a refusal of either side. */
export function reportTlsError(handlers: TlsRefusalHandler, e: Error, s: { remoteAddress?: string; remotePort?: number } | undefined | null): void {
  const f = tlsFailure(e);
  handlers.refused?.(peerOf(s), f.reason, f.refusal);
}

/**
 * Checks a newly connected TLS client before anything it sent is read. A refused one
 * is told why (Error NotAuthorized, inside TLS: the client verified us already) and
 * closed. Returns whether it may go on.
 */
export function admitClient(handlers: TlsRefusalHandler, socket: tls.TLSSocket): boolean {
  const why = unauthorizedReason(socket);
  if (why === undefined) return true;
  handlers.refused?.(peerOf(socket), why, true);
  socket.end(encode({ type: MessageType.Error, code: ErrorCode.NotAuthorized, reason: `refused by the server: ${why}` }));
  setTimeout(() => socket.destroy(), 1000).unref();
  return false;
}
