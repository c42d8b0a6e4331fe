import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { CtunError, ExitCode } from '../common/index.js';

/**
 * The public key of a package server (the .NET feed), as the user hands it over:
 * ASCII-armored (`microsoft.asc`) or binary. It is dearmored here, on the build host,
 * into a binary keyring that apt's `signed-by` names for that one source only; the
 * image needs no gpg and no key lands in apt's global trust.
 */
export interface PublicKeyFile {
  path: string;
  armored: boolean;
  /** The binary OpenPGP packets (a keyring apt reads with `signed-by`). */
  keyring: Buffer;
  /** User IDs found in the key (for messages and the plan). */
  userIds: string[];
}

const ARMOR = /-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n([\s\S]*?)-----END PGP PUBLIC KEY BLOCK-----/;

/** ASCII armor to binary (RFC 4880 §6.2): headers, a blank line, base64, `=CRC`. */
export function dearmor(text: string): Buffer | undefined {
  const m = ARMOR.exec(text);
  if (!m) return undefined;
  const lines = m[1]!.split(/\r?\n/);
  const blank = lines.findIndex((l) => l.trim() === '');
  const body = (blank >= 0 && lines.slice(0, blank).every((l) => /^[A-Za-z-]+: /.test(l)) ? lines.slice(blank + 1) : lines)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^=[A-Za-z0-9+/]{4}$/.test(l));
  const data = Buffer.from(body.join(''), 'base64');
  return data.length ? data : undefined;
}

interface Packet {
  tag: number;
  body: Buffer;
}

/** Splits binary OpenPGP data into packets; undefined when it is not OpenPGP. */
export function readPackets(data: Buffer): Packet[] | undefined {
  const packets: Packet[] = [];
  let i = 0;
  while (i < data.length) {
    const h = data[i]!;
    if ((h & 0x80) === 0) return undefined;
    let tag: number;
    let len: number;
    let start: number;
    if (h & 0x40) {
      tag = h & 0x3f;
      const o = data[i + 1];
      if (o === undefined) return undefined;
      if (o < 192) {
        len = o;
        start = i + 2;
      } else if (o < 224) {
        len = ((o - 192) << 8) + (data[i + 2] ?? 0) + 192;
        start = i + 3;
      } else if (o === 255) {
        len = data.readUInt32BE(i + 2);
        start = i + 6;
      } else {
        return undefined; // partial lengths do not occur in keys
      }
    } else {
      tag = (h >> 2) & 0x0f;
      const lt = h & 3;
      if (lt === 0) {
        len = data[i + 1] ?? 0;
        start = i + 2;
      } else if (lt === 1) {
        len = data.readUInt16BE(i + 1);
        start = i + 3;
      } else if (lt === 2) {
        len = data.readUInt32BE(i + 1);
        start = i + 5;
      } else {
        return undefined;
      }
    }
    if (start + len > data.length) return undefined;
    packets.push({ tag, body: data.subarray(start, start + len) });
    i = start + len;
  }
  return packets;
}

/** Parses a key file; a CtunError (DOTNET_KEY_INVALID) when it is not a public key. */
export function parsePublicKey(path: string, content: Buffer): PublicKeyFile {
  const text = content.toString('latin1');
  const armoredLike = text.includes('-----BEGIN PGP');
  const binary = armoredLike ? dearmor(text) : content;
  const packets = binary ? readPackets(binary) : undefined;
  const what = armoredLike ? 'an ASCII-armored block that holds no OpenPGP public key' : 'neither an ASCII-armored nor a binary OpenPGP public key';
  if (!binary || !packets?.length || packets[0]!.tag !== 6) {
    const first = packets?.[0]?.tag;
    throw new CtunError(
      'DOTNET_KEY_INVALID',
      `the key file ${path} is ${first === 5 ? 'a secret key, not a public one' : what}`,
      {
        hint: 'give the package server\'s public key, e.g. https://packages.microsoft.com/keys/microsoft.asc saved to a file (armored or binary)',
        exitCode: ExitCode.Usage,
      },
    );
  }
  return {
    path,
    armored: armoredLike,
    keyring: binary,
    userIds: packets.filter((p) => p.tag === 13).map((p) => p.body.toString('utf8')),
  };
}

export async function readPublicKey(path: string): Promise<PublicKeyFile> {
  const content = await readFile(path).catch((e: unknown) => {
    throw new CtunError('DOTNET_KEY_MISSING', `the key file ${path} cannot be read`, {
      hint: 'give the path of the package server\'s public key file (MICROSOFT_PUBLIC_KEY_FILE, --dotnetKey)',
      exitCode: ExitCode.Usage,
      cause: e,
    });
  });
  return parsePublicKey(path, content);
}

/**
 * gpg's own verdict on a key file, when gpg is installed: `gpg --show-keys` in a
 * throw-away home, so no keyring of the host is touched. Returns the fingerprints, or
 * undefined when gpg is not there (our own parse has already accepted the file).
 */
export async function gpgShowKeys(path: string): Promise<string[] | undefined> {
  const home = await mkdtemp(join(tmpdir(), 'ctun-gpg-'));
  try {
    const r = await execa('gpg', ['--homedir', home, '--batch', '--with-colons', '--show-keys', path], { reject: false, timeout: 15_000 });
    if (r.failed && (r as { code?: string }).code === 'ENOENT') return undefined;
    const fprs = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('fpr:'))
      .map((l) => l.split(':')[9]!)
      .filter(Boolean);
    if (r.exitCode !== 0 || fprs.length === 0) {
      throw new CtunError('DOTNET_KEY_INVALID', `gpg cannot read a public key from ${path}`, {
        hint: 'give the package server\'s public key file (armored or binary); gpg says: ' + (r.stderr.split('\n')[0] || 'nothing'),
        exitCode: ExitCode.Usage,
      });
    }
    return fprs;
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}
