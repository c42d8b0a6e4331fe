import { createPrivateKey, createPublicKey, sign, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CtunError, ExitCode, type ErrorCode } from '../../common/index.js';

/**
 * The signature of a bundle: a detached signature over the bytes of manifest.json
 * (SHA-256; ECDSA for the keys of `ctun certs`, DER-encoded as `openssl dgst` writes
 * it) and the signer's X.509 certificate (PEM). Both are standard, so the site can
 * check them without ctun:
 *
 *   openssl verify -CAfile ca.crt signer.crt
 *   openssl x509 -in signer.crt -pubkey -noout > signer.pub
 *   openssl dgst -sha256 -verify signer.pub -signature manifest.json.sig manifest.json
 *
 * The manifest holds the sha256 of every member (images, SBOMs, files), so the
 * signature covers the whole bundle.
 */
export const SIGNATURE_MEMBER = 'manifest.json.sig';
export const SIGNER_MEMBER = 'signer.crt';
/** Extended key usage id-kp-codeSigning (RFC 5280): what `ctun certs signer` certifies. */
export const CODE_SIGNING_OID = '1.3.6.1.5.5.7.3.3';

export interface ManifestSignature {
  signature: Buffer;
  /** The signer's certificate, PEM. */
  certificate: string;
}

export interface SignerInfo {
  /** How it was checked: against a CA certificate or a bare public key. */
  trust: 'ca' | 'public-key';
  /** The signer certificate's subject (CN=…), when one came with the bundle. */
  subject?: string;
  serial?: string;
  issuer?: string;
  notAfter?: string;
}

function keyError(path: string, why: string, cause?: unknown): CtunError {
  return new CtunError('SIGN_KEY_INVALID', `${path} ${why}`, {
    hint: 'give the private key of a signing certificate: ctun certs signer NAME --out pki writes pki/NAME.key and pki/NAME.crt',
    exitCode: ExitCode.Usage,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** `x.key` → `x.crt`: where `ctun certs` puts a key's certificate. */
export function certificateBeside(keyPath: string): string {
  return keyPath.replace(/\.key$/, '') + '.crt';
}

/**
 * Signs the manifest's bytes with `keyPath`; `certPath` (default beside the key) must
 * be the key's certificate, valid now and certified for code signing — a bundle
 * signed with anything else would be refused at the site, so it is refused here.
 */
export async function signManifest(manifest: Buffer, keyPath: string, certPath = certificateBeside(keyPath), now = new Date()): Promise<ManifestSignature> {
  let key: KeyObject;
  try {
    key = createPrivateKey(await readFile(keyPath));
  } catch (e) {
    throw keyError(keyPath, 'is not a readable private key (PEM)', e);
  }
  let cert: X509Certificate;
  let certificate: string;
  try {
    certificate = await readFile(certPath, 'utf8');
    cert = new X509Certificate(certificate);
  } catch (e) {
    throw keyError(certPath, 'is not a readable certificate (the signing key\'s certificate is put into the bundle)', e);
  }
  if (!cert.checkPrivateKey(key)) throw keyError(certPath, `is not the certificate of ${keyPath}`);
  if (!(cert.keyUsage ?? []).includes(CODE_SIGNING_OID)) throw keyError(certPath, `(${cert.subject.replace(/\n/g, ', ')}) is not certified for code signing (extended key usage codeSigning)`);
  if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) throw keyError(certPath, `is not valid now (valid ${new Date(cert.validFrom).toISOString()} to ${new Date(cert.validTo).toISOString()})`);
  return { signature: sign('sha256', manifest, key), certificate };
}

function refused(code: ErrorCode, file: string, why: string, hint: string): CtunError {
  return new CtunError(code, `the bundle ${file} is refused: ${why}`, { hint: `${hint}; nothing was loaded`, exitCode: ExitCode.Rejected });
}

type Trust = { kind: 'ca'; cert: X509Certificate } | { kind: 'public-key'; key: KeyObject };

/** Reads `--verify`: a CA certificate, or a public key (PEM). */
export async function readTrust(path: string): Promise<Trust> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new CtunError('VERIFY_TRUST_MISSING', `--verify ${path} cannot be read`, { hint: 'give the CA certificate (ctun certs init wrote ca.crt) or the signer\'s public key', exitCode: ExitCode.Usage, cause: e });
  }
  try {
    if (text.includes('-----BEGIN CERTIFICATE-----')) return { kind: 'ca', cert: new X509Certificate(text) };
    if (text.includes('-----BEGIN PUBLIC KEY-----')) return { kind: 'public-key', key: createPublicKey(text) };
  } catch (e) {
    throw new CtunError('VERIFY_TRUST_INVALID', `--verify ${path} is not a readable certificate or public key: ${(e as Error).message}`, { hint: 'give a PEM file: the CA certificate or a public key', exitCode: ExitCode.Usage, cause: e });
  }
  throw new CtunError('VERIFY_TRUST_INVALID', `--verify ${path} holds neither a certificate nor a public key (PEM)`, { hint: 'give the CA certificate (ca.crt) or a public key (-----BEGIN PUBLIC KEY-----)', exitCode: ExitCode.Usage });
}

const name = (dn: string) => dn.replace(/\n/g, ', ');

/**
 * Checks a bundle's signature against what the site trusts, before anything of it is
 * used. Each way to fail has its own code: unsigned, a manifest that does not match
 * its signature (a changed byte), a signer the CA did not certify, a signing
 * certificate outside its validity, one not certified for code signing. The signing
 * certificate must be valid now: without a trusted timestamp, "valid when it signed"
 * could not be told from a backdated manifest.
 */
export async function verifyManifest(
  file: string,
  manifest: Buffer,
  signed: { signature?: Buffer; certificate?: string },
  trustPath: string,
  now = new Date(),
): Promise<SignerInfo> {
  const trust = await readTrust(trustPath);
  if (!signed.signature) {
    throw refused('BUNDLE_UNSIGNED', file, `it is not signed, and --verify ${trustPath} asks for a signature`, 'ask its maker for a bundle made with ctun-build bundle --sign KEY');
  }
  if (trust.kind === 'public-key') {
    if (!verify('sha256', manifest, trust.key, signed.signature)) {
      throw refused('BUNDLE_SIGNATURE_INVALID', file, `its manifest does not match its signature under the public key ${trustPath} (changed after signing, or signed with another key)`, 'copy it again from its maker, and check that the key is the signer\'s');
    }
    return { trust: 'public-key' };
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(signed.certificate ?? '');
  } catch {
    throw refused('BUNDLE_SIGNER_MISSING', file, `its signer certificate (${SIGNER_MEMBER}) is missing or unreadable`, 'ask its maker to sign it again with a key and its certificate');
  }
  const signer: SignerInfo = { trust: 'ca', subject: name(cert.subject), serial: cert.serialNumber.toLowerCase(), issuer: name(cert.issuer), notAfter: new Date(cert.validTo).toISOString() };
  if (!verify('sha256', manifest, cert.publicKey, signed.signature)) {
    throw refused('BUNDLE_SIGNATURE_INVALID', file, `its manifest does not match its signature by ${signer.subject} (changed after signing)`, 'copy it again from its maker (compare `sha256sum` at both ends)');
  }
  const ca = trust.cert;
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    throw refused('BUNDLE_SIGNER_UNTRUSTED', file, `its signer ${signer.subject} was certified by ${signer.issuer}, not by the CA ${name(ca.subject)} of --verify ${trustPath}`, 'verify it with the CA of its maker, or ask for a bundle signed with a key that CA certified');
  }
  for (const [what, c] of [['signing certificate', cert], ['CA certificate', ca]] as const) {
    const from = new Date(c.validFrom);
    const to = new Date(c.validTo);
    if (now < from || now > to) {
      throw refused('BUNDLE_SIGNER_EXPIRED', file, `the ${what} ${name(c.subject)} is ${now > to ? `expired (valid until ${to.toISOString()})` : `not valid yet (from ${from.toISOString()})`}`, 'ask its maker to sign it again with a current certificate (ctun certs signer)');
    }
  }
  if (!(cert.keyUsage ?? []).includes(CODE_SIGNING_OID)) {
    throw refused('BUNDLE_SIGNER_NOT_CODESIGNING', file, `its signer ${signer.subject} is not certified for code signing (no extended key usage codeSigning)`, 'ask its maker to sign with a key from ctun certs signer');
  }
  return signer;
}
