/**
 * The sealer of a --tls UDP session in the addon (native/sealer.h): the session's keys,
 * its one send counter and its replay window live there, so the native data path
 * (fast-path.ts) seals and opens data frames without JavaScript while the control
 * messages sealed here draw from the same counter — a nonce is never used twice,
 * whichever side sealed. It keeps the semantics of TypeScript's AeadSealer
 * (sealer.ts), its twin, which the unit tests hold both to; keys are still exported
 * from the TLS session here, when an epoch first needs one.
 */
import { loadAddon, type NativeSealerHandle } from '../native.js';
import { HEADER_BYTES } from './aead.js';
import { AeadSealer, noDrops, REKEY_INTERVAL, SEAL_OVERHEAD, SealError, SealScratch, type DatagramSealer, type SealerOptions, type SealFailure } from './sealer.js';

/** The addon's failure codes (Sealer::Failure), 1-based. */
const FAILURES: readonly SealFailure[] = ['truncated', 'not-sealed', 'unknown-key', 'bad-tag', 'replayed', 'too-old'];

/** The failure an addon code (1-based) names; an unknown one is a bad tag. */
export function sealFailureOf(code: number): SealFailure {
  return FAILURES[code - 1] ?? 'bad-tag';
}
const EXPLAINED: Record<SealFailure, string> = {
  truncated: 'datagram shorter than the seal',
  'not-sealed': 'datagram is not sealed (plain-mode peer?)',
  'unknown-key': 'datagram for another session key',
  'bad-tag': 'authentication failed (tampered, sealed under another key, or of an epoch without a key)',
  replayed: 'datagram was already received',
  'too-old': 'datagram is older than the replay window',
  exhausted: 'datagram counter exhausted: a new handshake is needed',
};

export class NativeSealer implements DatagramSealer {
  readonly overhead = SEAL_OVERHEAD;
  readonly drops = noDrops();
  private readonly scratch = new SealScratch();

  constructor(
    readonly native: NativeSealerHandle,
    readonly keyId: number,
  ) {}

  sealFrames(frames: readonly Buffer[]): Buffer[] {
    const { out, lengths } = this.scratch.fit(frames);
    const sealed = this.native.sealFrames(frames, out, lengths);
    if (sealed < frames.length) this.drops.exhausted++;
    return this.scratch.views(sealed);
  }

  seal(plaintext: Buffer | readonly Buffer[]): Buffer {
    const sealed = this.native.seal(Buffer.isBuffer(plaintext) ? [plaintext] : plaintext);
    if (sealed === null) this.fail('exhausted');
    return sealed;
  }

  open(datagram: Buffer): Buffer {
    const n = this.native.open(datagram);
    if (n < 0) this.fail(sealFailureOf(-n));
    return datagram.subarray(HEADER_BYTES, HEADER_BYTES + n);
  }

  get epochs(): { send: number; receive: number } {
    const [send, receive] = this.native.epochs();
    return { send, receive };
  }

  private fail(reason: SealFailure): never {
    this.drops[reason]++;
    throw new SealError(reason, EXPLAINED[reason]);
  }
}

/**
 * The session's sealer: the addon's when it is there (and no AEAD was chosen, as the
 * tests do for TypeScript's), else TypeScript's.
 */
export function createSealer(o: SealerOptions): DatagramSealer {
  const Sealer = o.aead === undefined ? loadSealerClass() : undefined;
  if (Sealer === undefined) return new AeadSealer(o);
  if (!Number.isInteger(o.keyId) || o.keyId < 0 || o.keyId > 0xffffffff) throw new RangeError(`key id ${o.keyId} is not a u32`);
  // A deriver that throws (its TLS session is gone) gives no key: the addon drops.
  const derive = (direction: 'c2s' | 's2c', epoch: number): Buffer | undefined => {
    try {
      return o.derive(direction, epoch);
    } catch {
      return undefined;
    }
  };
  const native = new Sealer(o.keyId, o.sends === 'c2s', o.cipher ?? 'aes-256-gcm', Number(o.rekeyInterval ?? REKEY_INTERVAL), o.window ?? 2048, derive);
  return new NativeSealer(native, o.keyId);
}

function loadSealerClass(): ReturnType<typeof loadAddon>['Sealer'] {
  try {
    return loadAddon().Sealer;
  } catch {
    return undefined;
  }
}
