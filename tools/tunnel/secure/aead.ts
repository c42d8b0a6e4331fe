/**
 * The AEAD primitive under the sealer: one keyed context per key (epoch and
 * direction) that seals `header | ciphertext | tag` and opens it again. The native
 * context (the addon's `Aead`, OpenSSL through Node's own symbols) keeps the key
 * schedule between datagrams; Node's createCipheriv builds a cipher per call, about
 * 6× slower, and is the fallback when the addon is missing and the twin in tests.
 * Nonce: 4 zero bytes and the header's 8-byte counter; the header is the associated data.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { loadAddon } from '../native.js';
import { HEADER_SIZE, MessageType } from '../protocol.js';

export type Cipher = 'aes-256-gcm' | 'chacha20-poly1305';

/** First byte of every sealed datagram; no plain message type has it. */
export const SEALED_MARKER = 0xc5;
/** Sealed header: marker (u8) | key id (u32 BE) | counter (u64 BE); the associated data. */
export const KEY_ID_OFFSET = 1;
export const COUNTER_OFFSET = 5;
export const HEADER_BYTES = 13;
export const TAG_BYTES = 16;
/** AES-256-GCM and ChaCha20-Poly1305 both take 32-byte keys. */
export const KEY_BYTES = 32;
/** 4 zero bytes, then the header's counter. */
export const NONCE_BYTES = 12;

export interface AeadContext {
  /** header (13 bytes) | ciphertext of the parts | tag. */
  seal(header: Buffer, parts: readonly Buffer[]): Buffer;
  /**
   * Seals each frame as one Data message under counters first, first+1, …, one after
   * another into `out` (lengths[i] each); returns how many fitted. No allocation per
   * datagram: the batch path of the sender.
   */
  sealFrames(frames: readonly Buffer[], keyId: number, first: bigint, out: Buffer, lengths: Uint32Array): number;
  /**
   * The plaintext of a sealed datagram, or undefined if it does not authenticate. It
   * may be decrypted in place (a view of `datagram`, whose bytes change either way).
   */
  open(datagram: Buffer): Buffer | undefined;
}

export type AeadFactory = (key: Buffer, cipher: Cipher) => AeadContext;

function nonceOf(header: Buffer): Buffer {
  const n = Buffer.alloc(NONCE_BYTES);
  header.copy(n, NONCE_BYTES - 8, COUNTER_OFFSET, HEADER_BYTES);
  return n;
}

/** The header (and associated data) of a sealed datagram. */
export function sealedHeader(keyId: number, counter: bigint): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h[0] = SEALED_MARKER;
  h.writeUInt32BE(keyId, KEY_ID_OFFSET);
  h.writeBigUInt64BE(counter, COUNTER_OFFSET);
  return h;
}

/** Node's crypto: a cipher object per datagram. */
export const nodeAead: AeadFactory = (key, cipher) => ({
  sealFrames(frames, keyId, first, out, lengths) {
    let off = 0;
    let i = 0;
    for (; i < frames.length && i < lengths.length; i++) {
      const f = frames[i]!;
      if (off + HEADER_BYTES + HEADER_SIZE + f.length + TAG_BYTES > out.length) break;
      const data = Buffer.from([MessageType.Data, 0, f.length >> 8, f.length & 255]);
      const sealed = this.seal(sealedHeader(keyId, first + BigInt(i)), [data, f]);
      sealed.copy(out, off);
      lengths[i] = sealed.length;
      off += sealed.length;
    }
    return i;
  },
  seal(header, parts) {
    const c = createCipheriv(cipher as 'aes-256-gcm', key, nonceOf(header), { authTagLength: TAG_BYTES });
    c.setAAD(header);
    const out: Buffer[] = [header];
    for (const p of parts) out.push(c.update(p));
    out.push(c.final(), c.getAuthTag());
    return Buffer.concat(out);
  },
  open(datagram) {
    const end = datagram.length - TAG_BYTES;
    try {
      const d = createDecipheriv(cipher as 'aes-256-gcm', key, nonceOf(datagram), { authTagLength: TAG_BYTES });
      d.setAAD(datagram.subarray(0, HEADER_BYTES));
      d.setAuthTag(datagram.subarray(end));
      return Buffer.concat([d.update(datagram.subarray(HEADER_BYTES, end)), d.final()]);
    } catch {
      return undefined;
    }
  },
});

interface NativeAead {
  seal(header: Buffer, parts: readonly Buffer[]): Buffer;
  sealFrames(frames: readonly Buffer[], keyId: number, counterHi: number, counterLo: number, out: Buffer, lengths: Uint32Array): number;
  /** Decrypts in place: the plaintext's length after the header, or -1. */
  open(datagram: Buffer): number;
}

/** The addon's context; throws if the addon is missing or predates it. */
export const nativeAead: AeadFactory = (key, cipher) => {
  const Aead = (loadAddon() as unknown as { Aead?: new (key: Buffer, cipher: string) => NativeAead }).Aead;
  if (Aead === undefined) throw new Error('the addon has no Aead (rebuild it: npm ci)');
  const ctx = new Aead(key, cipher);
  return {
    seal: (header, parts) => ctx.seal(header, parts),
    sealFrames: (frames, keyId, first, out, lengths) => ctx.sealFrames(frames, keyId, Number(first >> 32n), Number(first & 0xffffffffn), out, lengths),
    open: (datagram) => {
      const n = ctx.open(datagram);
      return n < 0 ? undefined : datagram.subarray(HEADER_BYTES, HEADER_BYTES + n);
    },
  };
};

let chosen: AeadFactory | undefined;

/** The native context when the addon has it, else Node's crypto. */
export function defaultAead(): AeadFactory {
  if (chosen !== undefined) return chosen;
  try {
    nativeAead(Buffer.alloc(KEY_BYTES), 'aes-256-gcm');
    chosen = nativeAead;
  } catch {
    chosen = nodeAead;
  }
  return chosen;
}

/**
 * Whether the addon's AEAD works with the Node running it: a datagram sealed by the
 * addon (OpenSSL through Node's own symbols, resolved only when first called) opens
 * with node:crypto, for each cipher. `ctun --version --verbose` reports it, so a
 * prebuilt addon is checked against the Node a host actually has.
 */
export function nativeAeadAgrees(): boolean {
  const key = Buffer.alloc(KEY_BYTES, 0x5a);
  return (['aes-256-gcm', 'chacha20-poly1305'] as const).every((cipher) => {
    const sealed = nativeAead(key, cipher).seal(sealedHeader(1, 7n), [Buffer.from('ctun')]);
    return nodeAead(key, cipher).open(sealed)?.toString() === 'ctun';
  });
}
