/**
 * Fuzz targets for every decoder of hostile input: the datagram codec, the TCP stream
 * decoder, the hello, the key record and the sealed-datagram opener. Inputs are
 * mutations of valid seeds (bit flips, interesting bytes, length fields, truncation,
 * extension, splices) and plain random bytes, from a seeded generator, so a failure
 * is reproducible from its seed and index.
 *
 * Each input must end in "accepted" or a typed error (ProtocolError, SealError, or
 * the key record's Error); anything else — another exception, an output larger than
 * its input, a stream decoder holding more than one message — is a finding and
 * throws FuzzFinding. `npm test` runs a slice; `bench/fuzz.ts` runs a million.
 */
import { createSealer } from './native-sealer.js';
import { AeadSealer, SealError, type DatagramSealer, type SealerOptions } from './sealer.js';
import { decodeKeyRecord, encodeKeyRecord } from './tls.js';
import {
  decodeDatagram,
  decodePayload,
  encode,
  ErrorCode,
  HEADER_SIZE,
  MAX_FRAME,
  MessageType,
  PROTOCOL_VERSION,
  ProtocolError,
  StreamDecoder,
  TunnelMode,
  type Message,
} from '../protocol.js';

export class FuzzFinding extends Error {
  constructor(
    readonly target: string,
    readonly seed: number,
    readonly index: number,
    readonly input: Buffer,
    cause: unknown,
  ) {
    super(`${target}: input ${index} of seed ${seed} (${input.toString('hex').slice(0, 200)}): ${cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)}`, { cause });
    this.name = 'FuzzFinding';
  }
}

/** xorshift32: fast, seeded, reproducible. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

const INTERESTING = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x7f, 0x80, 0xc5, 0xfe, 0xff];

/** One mutation of a seed (or pure noise), at most `maxLen` bytes. */
export function mutate(seeds: readonly Buffer[], next: () => number, maxLen = 10_000): Buffer {
  const pick = next() % 16;
  if (pick === 0) {
    const len = next() % 128;
    const b = Buffer.allocUnsafe(len);
    for (let i = 0; i < len; i++) b[i] = next() & 0xff;
    return b;
  }
  let b = Buffer.from(seeds[next() % seeds.length]!);
  const rounds = 1 + (next() % 4);
  for (let r = 0; r < rounds; r++) {
    switch (next() % 8) {
      case 0:
        if (b.length > 0) b[next() % b.length]! ^= 1 << (next() % 8);
        break;
      case 1:
        if (b.length > 0) b[next() % b.length] = INTERESTING[next() % INTERESTING.length]!;
        break;
      case 2:
        // A 16-bit field (length, code, version) set to an edge value.
        if (b.length > 2) b.writeUInt16BE([0, 1, 13, 14, 32, 512, 9216, 9217, 0xfffe, 0xffff][next() % 10]!, next() % (b.length - 1));
        break;
      case 3:
        b = b.subarray(0, next() % (b.length + 1));
        break;
      case 4: {
        const extra = Buffer.allocUnsafe(next() % 64);
        for (let i = 0; i < extra.length; i++) extra[i] = next() & 0xff;
        b = Buffer.concat([b, extra]);
        break;
      }
      case 5: {
        const other = seeds[next() % seeds.length]!;
        b = Buffer.concat([b.subarray(0, next() % (b.length + 1)), other.subarray(next() % (other.length + 1))]);
        break;
      }
      case 6:
        b = Buffer.concat([b, b.subarray(0, next() % (b.length + 1))]);
        break;
      case 7:
        if (b.length > 0) b[0] = next() & 0xff;
        break;
    }
  }
  return b.length > maxLen ? b.subarray(0, maxLen) : b;
}

export interface FuzzResult {
  target: string;
  inputs: number;
  accepted: number;
  /** Typed rejections by error name and code/reason. */
  rejected: Record<string, number>;
}

export interface FuzzTarget {
  name: string;
  seeds: Buffer[];
  /** Returns "accepted" or throws a typed error; anything else is a finding. */
  run(input: Buffer, next: () => number): 'accepted';
  /** Whether an error is one of the target's typed rejections; returns its label. */
  typed(e: unknown): string | undefined;
}

function protocolTyped(e: unknown): string | undefined {
  return e instanceof ProtocolError ? `ProtocolError:${ErrorCode[e.code] ?? e.code}` : undefined;
}

function messageBytes(m: Message): number {
  switch (m.type) {
    case MessageType.Data:
      return m.frame.length;
    case MessageType.Error:
    case MessageType.Bye:
      return m.reason.length; // UTF-16 units: at most one per byte decoded
    default:
      return 32;
  }
}

function protocolSeeds(): Buffer[] {
  const hello = encode({ type: MessageType.Hello, version: PROTOCOL_VERSION, mode: TunnelMode.Separate, flags: 0, mtu: 1400, sessionId: Buffer.alloc(16, 7), destination: '10.1.2.3' });
  const welcome = encode({ type: MessageType.Welcome, version: PROTOCOL_VERSION, resumed: true, mtu: 1400, sessionId: Buffer.alloc(16, 9), serverAddress: '192.168.100.1', prefix: 24, keepaliveMs: 1000 });
  const data = encode({ type: MessageType.Data, frame: Buffer.alloc(60, 0xab) });
  const ping = encode({ type: MessageType.Ping, nonce: 42n });
  const error = encode({ type: MessageType.Error, code: ErrorCode.NoSession, reason: 'say hello' });
  const bye = encode({ type: MessageType.Bye, reason: 'bye' });
  return [hello, welcome, data, ping, error, bye, Buffer.concat([data, ping, data]), Buffer.concat([hello, data])];
}

/** decodeDatagram: whole messages or a ProtocolError; never more output than input. */
export const datagramTarget: FuzzTarget = {
  name: 'datagram',
  seeds: protocolSeeds(),
  run(input) {
    const messages = decodeDatagram(input);
    let total = 0;
    for (const m of messages) total += messageBytes(m) + HEADER_SIZE;
    if (total > input.length + 32 * messages.length) throw new Error(`decoded ${total} bytes from ${input.length}`);
    return 'accepted';
  },
  typed: protocolTyped,
};

/** StreamDecoder: the input in random chunks; buffered bytes never exceed one message. */
export const streamTarget: FuzzTarget = {
  name: 'stream',
  seeds: protocolSeeds(),
  run(input, next) {
    const d = new StreamDecoder(MAX_FRAME);
    let offset = 0;
    while (offset < input.length) {
      const n = 1 + (next() % (input.length - offset));
      d.push(input.subarray(offset, offset + n));
      offset += n;
      if (d.buffered > MAX_FRAME + HEADER_SIZE) throw new Error(`stream decoder holds ${d.buffered} bytes`);
    }
    return 'accepted';
  },
  typed: protocolTyped,
};

/** The hello payload (what an unauthenticated peer controls first). */
export const helloTarget: FuzzTarget = {
  name: 'hello',
  seeds: [protocolSeeds()[0]!.subarray(HEADER_SIZE)],
  run(input) {
    const m = decodePayload(MessageType.Hello, input);
    if (m.type !== MessageType.Hello || m.sessionId.length !== 16) throw new Error('hello decoded into something else');
    return 'accepted';
  },
  typed: protocolTyped,
};

/** The key record a TLS server sends (a client must survive a hostile server too). */
export const keyRecordTarget: FuzzTarget = {
  name: 'key-record',
  seeds: [encodeKeyRecord(0x01020304)],
  run(input) {
    decodeKeyRecord(input);
    return 'accepted';
  },
  typed: (e) => (e instanceof Error && e.constructor === Error ? 'Error' : undefined),
};

/**
 * The sealed-datagram opener, with a real sealer pair. Seeds are genuine sealed
 * datagrams, so mutations probe tag, counter, key id and truncation handling; each
 * input goes to a fresh receiver half the time, so the replay window does not hide
 * the authentication path. Once with TypeScript's sealer and once with the addon's,
 * whose C++ parses every datagram the native data path receives.
 */
export function openerTarget(name = 'opener', make: (o: SealerOptions) => DatagramSealer = (o) => new AeadSealer(o)): FuzzTarget {
  const keys = new Map<string, Buffer>();
  const derive = (direction: string, epoch: number): Buffer => {
    const k = `${direction}/${epoch}`;
    if (!keys.has(k)) keys.set(k, Buffer.alloc(32, (epoch * 2 + (direction === 'c2s' ? 1 : 0)) & 0xff));
    return keys.get(k)!;
  };
  const sender = make({ keyId: 77, sends: 'c2s', derive, rekeyInterval: 4n });
  const seeds = protocolSeeds().map((p) => sender.seal(p));
  let receiver = make({ keyId: 77, sends: 's2c', derive, rekeyInterval: 4n });
  return {
    name,
    seeds,
    run(input, next) {
      if ((next() & 1) === 0) receiver = make({ keyId: 77, sends: 's2c', derive, rekeyInterval: 4n });
      const plain = receiver.open(input);
      if (plain.length > input.length) throw new Error(`opened ${plain.length} bytes from ${input.length}`);
      return 'accepted';
    },
    typed: (e) => (e instanceof SealError ? `SealError:${e.reason}` : undefined),
  };
}

export function allTargets(): FuzzTarget[] {
  return [datagramTarget, streamTarget, helloTarget, keyRecordTarget, openerTarget(), openerTarget('native opener', createSealer)];
}

/** Runs `count` inputs against a target; throws FuzzFinding on the first finding. */
export function fuzz(target: FuzzTarget, count: number, seed = 1, deadlineMs = Number.POSITIVE_INFINITY): FuzzResult {
  const next = rng(seed);
  const result: FuzzResult = { target: target.name, inputs: 0, accepted: 0, rejected: {} };
  const stopAt = Date.now() + deadlineMs;
  for (let i = 0; i < count; i++) {
    if ((i & 1023) === 0 && Date.now() > stopAt) break;
    const input = mutate(target.seeds, next);
    result.inputs++;
    try {
      target.run(input, next);
      result.accepted++;
    } catch (e) {
      const label = target.typed(e);
      if (label === undefined) throw new FuzzFinding(target.name, seed, i, input, e);
      result.rejected[label] = (result.rejected[label] ?? 0) + 1;
    }
  }
  return result;
}
