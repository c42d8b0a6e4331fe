/**
 * Sealed UDP datagrams (PROTOCOL.md, "Secured transport"). The TLS handshake runs on
 * TCP; each direction of the UDP data then has its own AEAD key exported from that TLS
 * session. A datagram is
 *
 *   marker (u8 0xC5) | key id (u32) | counter (u64) | ciphertext | tag (16)
 *
 * The header is the associated data, the counter the nonce (never reused: it only
 * grows), and the key changes every REKEY_INTERVAL datagrams (an epoch) by a new
 * export with the epoch as context, so no key protects more than 2^24 datagrams.
 * The receiver keeps a sliding replay window over the counter.
 *
 * The data path calls `sealFrames()` (a batch of frames), `seal()` (control
 * messages) and `open()`; the AEAD itself runs in the native addon when it is there
 * (aead.ts), else in Node's crypto.
 */
import { defaultAead, HEADER_BYTES, KEY_ID_OFFSET, COUNTER_OFFSET, SEALED_MARKER, sealedHeader, TAG_BYTES, type AeadContext, type AeadFactory, type Cipher } from './aead.js';
import type { NativeSealerHandle } from '../native.js';
import { ReplayWindow } from './replay.js';

export type { Cipher } from './aead.js';

export { SEALED_MARKER };
export const SEALED_HEADER = HEADER_BYTES;
export const TAG_SIZE = TAG_BYTES;
export const SEAL_OVERHEAD = SEALED_HEADER + TAG_SIZE;
/** Datagrams per key: a new key (epoch) after this many. */
export const REKEY_INTERVAL = 1n << 24n;
/** A sender stops (and the link must handshake again) long before the counter could wrap. */
export const MAX_COUNTER = 1n << 60n;

export type Direction = 'c2s' | 's2c';

/** Why a datagram was not opened; each one is a counted drop, never a crash. */
export type SealFailure = 'truncated' | 'not-sealed' | 'unknown-key' | 'bad-tag' | 'replayed' | 'too-old' | 'exhausted';

export class SealError extends Error {
  constructor(
    readonly reason: SealFailure,
    message: string,
  ) {
    super(message);
    this.name = 'SealError';
  }
}

/** A drop tally with every reason at 0. */
export function noDrops(): Record<SealFailure, number> {
  return { truncated: 0, 'not-sealed': 0, 'unknown-key': 0, 'bad-tag': 0, replayed: 0, 'too-old': 0, exhausted: 0 };
}

/** What the data path needs: seal what goes out, open what comes in. */
export interface DatagramSealer {
  /** Bytes a sealed datagram adds to its plaintext. */
  readonly overhead: number;
  /** The key id carried in every datagram of this session. */
  readonly keyId: number;
  /** Seals one plaintext datagram (one or more encoded messages). Throws SealError('exhausted'). */
  seal(plaintext: Buffer | readonly Buffer[]): Buffer;
  /**
   * Seals each frame as a datagram of one Data message, in one batch. The datagrams
   * are views of a buffer the next call reuses: send them before calling again.
   * Fewer come back than went in only when the counter is exhausted.
   */
  sealFrames(frames: readonly Buffer[]): Buffer[];
  /** Authenticates and decrypts; throws SealError for anything that is not a fresh datagram of this session. */
  open(datagram: Buffer): Buffer;
  /** Drops so far, by reason. */
  readonly drops: Readonly<Record<SealFailure, number>>;
  /** The current epoch of each direction, for logs and tests. */
  readonly epochs: { send: number; receive: number };
  /** The addon's sealer, which the native data path seals and opens with (absent: this sealer is TypeScript's). */
  readonly native?: NativeSealerHandle;
}

/**
 * Derives the key of one direction and epoch: 32 bytes. Over TLS this is
 * `tlsSocket.exportKeyingMaterial(32, label(direction), epoch)`.
 */
export type KeyDeriver = (direction: Direction, epoch: number) => Buffer;

export interface SealerOptions {
  keyId: number;
  /** Which direction this end sends: the client sends c2s, the server s2c. */
  sends: Direction;
  derive: KeyDeriver;
  /** Default aes-256-gcm. */
  cipher?: Cipher;
  /** Datagrams per epoch; default REKEY_INTERVAL. Tests make it small to exercise rekeying. */
  rekeyInterval?: bigint;
  /** Replay window in bits; default 2048. */
  window?: number;
  /** The AEAD implementation; default the addon's, else Node's crypto. */
  aead?: AeadFactory;
}

/** Reads the key id of a sealed datagram without authenticating it; undefined if it cannot be one. */
export function peekKeyId(datagram: Buffer): number | undefined {
  if (datagram.length < SEAL_OVERHEAD || datagram[0] !== SEALED_MARKER) return undefined;
  return datagram.readUInt32BE(KEY_ID_OFFSET);
}

/** sealFrames' output, reused batch after batch (grown when a batch needs more). */
export class SealScratch {
  private out = Buffer.alloc(0);
  private lengths = new Uint32Array(0);

  /** Room for `frames` sealed one per datagram. */
  fit(frames: readonly Buffer[]): { out: Buffer; lengths: Uint32Array } {
    let bytes = 0;
    for (const f of frames) bytes += f.length + 4 + SEAL_OVERHEAD;
    if (this.out.length < bytes) this.out = Buffer.allocUnsafeSlow(Math.max(bytes, 2 * this.out.length));
    if (this.lengths.length < frames.length) this.lengths = new Uint32Array(Math.max(frames.length, 2 * this.lengths.length));
    return { out: this.out, lengths: this.lengths };
  }

  /** The first `count` sealed datagrams of the last fit, as views. */
  views(count: number): Buffer[] {
    const views: Buffer[] = [];
    for (let i = 0, offset = 0; i < count; i++) {
      const len = this.lengths[i]!;
      views.push(this.out.subarray(offset, offset + len));
      offset += len;
    }
    return views;
  }
}

/** The sealer in TypeScript over one AEAD context per key (the twin of the addon's, secure/native-sealer.ts). */
export class AeadSealer implements DatagramSealer {
  readonly overhead = SEAL_OVERHEAD;
  readonly keyId: number;
  private readonly receives: Direction;
  private readonly cipher: Cipher;
  private readonly aead: AeadFactory;
  private readonly interval: bigint;
  private readonly window: ReplayWindow;
  private sendCounter = 0n;
  private sendEpoch = -1;
  private sendKey: AeadContext | undefined;
  private readonly scratch = new SealScratch();
  /** Receive keys by epoch: at most the current, the one before (reordering) and the one after. */
  private readonly recvKeys = new Map<number, AeadContext>();
  private recvEpoch = 0;
  readonly drops = noDrops();

  constructor(private readonly o: SealerOptions) {
    if (!Number.isInteger(o.keyId) || o.keyId < 0 || o.keyId > 0xffffffff) throw new RangeError(`key id ${o.keyId} is not a u32`);
    this.keyId = o.keyId;
    this.receives = o.sends === 'c2s' ? 's2c' : 'c2s';
    this.cipher = o.cipher ?? 'aes-256-gcm';
    this.aead = o.aead ?? defaultAead();
    this.interval = o.rekeyInterval ?? REKEY_INTERVAL;
    this.window = new ReplayWindow(o.window ?? 2048);
  }

  sealFrames(frames: readonly Buffer[]): Buffer[] {
    const { out: scratch, lengths } = this.scratch.fit(frames);
    const out: Buffer[] = [];
    let done = 0;
    let offset = 0;
    while (done < frames.length) {
      const counter = this.sendCounter;
      if (counter >= MAX_COUNTER) {
        this.drops.exhausted++;
        break;
      }
      const key = this.sendKeyFor(counter);
      if (key === undefined) {
        this.drops.exhausted++;
        break;
      }
      // A batch never straddles a rekey: the rest goes under the next epoch's key.
      const epochEnd = (BigInt(this.sendEpoch) + 1n) * this.interval;
      const left = (epochEnd < MAX_COUNTER ? epochEnd : MAX_COUNTER) - counter;
      const take = Math.min(frames.length - done, Number(left < 1n << 30n ? left : 1n << 30n));
      const part = done === 0 && take === frames.length ? frames : frames.slice(done, done + take);
      const sealed = key.sealFrames(part, this.keyId, counter, scratch.subarray(offset), lengths);
      for (let i = 0; i < sealed; i++) {
        const len = lengths[i]!;
        out.push(scratch.subarray(offset, offset + len));
        offset += len;
      }
      this.sendCounter += BigInt(sealed);
      done += sealed;
      if (sealed < take) break; // cannot happen: the scratch was sized for the batch
    }
    return out;
  }

  /** The key for `counter`; undefined when its epoch's key cannot be derived (the TLS session is gone). */
  private sendKeyFor(counter: bigint): AeadContext | undefined {
    const epoch = Number(counter / this.interval);
    if (epoch !== this.sendEpoch || this.sendKey === undefined) {
      const key = this.derived(this.o.sends, epoch);
      if (key === undefined) return undefined;
      this.sendKey = key;
      this.sendEpoch = epoch;
    }
    return this.sendKey;
  }

  private derived(direction: Direction, epoch: number): AeadContext | undefined {
    try {
      return this.aead(this.o.derive(direction, epoch), this.cipher);
    } catch {
      return undefined;
    }
  }

  seal(plaintext: Buffer | readonly Buffer[]): Buffer {
    const counter = this.sendCounter;
    if (counter >= MAX_COUNTER) {
      this.drops.exhausted++;
      throw new SealError('exhausted', 'datagram counter exhausted: a new handshake is needed');
    }
    const key = this.sendKeyFor(counter);
    if (key === undefined) {
      this.drops.exhausted++;
      throw new SealError('exhausted', 'no key for the next datagram: the TLS session that gives them is gone');
    }
    this.sendCounter++;
    return key.seal(sealedHeader(this.keyId, counter), Buffer.isBuffer(plaintext) ? [plaintext] : (plaintext as readonly Buffer[]));
  }

  open(datagram: Buffer): Buffer {
    if (datagram.length < SEAL_OVERHEAD) return this.fail('truncated', `datagram of ${datagram.length} bytes is shorter than the ${SEAL_OVERHEAD}-byte seal`);
    if (datagram[0] !== SEALED_MARKER) return this.fail('not-sealed', 'datagram is not sealed (plain-mode peer?)');
    if (datagram.readUInt32BE(KEY_ID_OFFSET) !== this.keyId) return this.fail('unknown-key', `datagram for key ${datagram.readUInt32BE(KEY_ID_OFFSET)}, this session has ${this.keyId}`);
    const counter = datagram.readBigUInt64BE(COUNTER_OFFSET);
    if (counter >= MAX_COUNTER) return this.fail('bad-tag', 'counter beyond the limit');
    const seen = this.window.check(counter);
    if (seen !== 'fresh') return this.fail(seen, `datagram ${counter} ${seen === 'replayed' ? 'was already received' : 'is older than the replay window'}`);
    const epoch = Number(counter / this.interval);
    // Only the epochs next to the current one have keys; anything else is forged or
    // far too late, and must not make us derive keys without bound.
    if (epoch < this.recvEpoch - 1 || epoch > this.recvEpoch + 1) return this.fail('bad-tag', `datagram of key epoch ${epoch}, current ${this.recvEpoch}`);
    const plain = this.recvKey(epoch)?.open(datagram);
    if (plain === undefined) return this.fail('bad-tag', 'authentication failed (tampered, or sealed under another key)');
    this.window.mark(counter);
    if (epoch > this.recvEpoch) {
      this.recvEpoch = epoch;
      for (const e of this.recvKeys.keys()) if (e < epoch - 1) this.recvKeys.delete(e);
    }
    return plain;
  }

  /** The current epoch of each direction, for logs and tests. */
  get epochs(): { send: number; receive: number } {
    return { send: Math.max(this.sendEpoch, 0), receive: this.recvEpoch };
  }

  private recvKey(epoch: number): AeadContext | undefined {
    let key = this.recvKeys.get(epoch);
    if (key === undefined) {
      key = this.derived(this.receives, epoch);
      if (key !== undefined) this.recvKeys.set(epoch, key);
    }
    return key;
  }

  private fail(reason: SealFailure, message: string): never {
    this.drops[reason]++;
    throw new SealError(reason, message);
  }
}
