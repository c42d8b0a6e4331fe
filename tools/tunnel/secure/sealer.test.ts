import { describe, expect, it } from 'vitest';
import { AeadSealer, SealError, SEAL_OVERHEAD, type DatagramSealer, type KeyDeriver, type SealerOptions } from './sealer.js';
import { createSealer, NativeSealer } from './native-sealer.js';
import { ReplayWindow } from './replay.js';
import { nativeAead, nodeAead, type Cipher } from './aead.js';

const derive: KeyDeriver = (direction, epoch) => Buffer.alloc(32, epoch * 2 + (direction === 'c2s' ? 1 : 0));

// The two implementations of one behaviour: TypeScript's and the addon's (whose
// counter and window the native data path shares). Each is held to every test.
const implementations: [string, (o: SealerOptions) => DatagramSealer][] = [
  ['AeadSealer (TypeScript)', (o) => new AeadSealer(o)],
  ['NativeSealer (addon)', (o) => createSealer(o)],
];
const reason = (f: () => unknown): string => {
  try {
    f();
    return 'accepted';
  } catch (e) {
    return e instanceof SealError ? e.reason : `untyped ${(e as Error).message}`;
  }
};

describe.each(implementations)('%s', (_name, make) => {
  const pair = (rekeyInterval?: bigint) => ({
    client: make({ keyId: 9, sends: 'c2s', derive, rekeyInterval }),
    server: make({ keyId: 9, sends: 's2c', derive, rekeyInterval }),
  });

  it('seals and opens both ways, adding 29 bytes', () => {
    const { client, server } = pair();
    const d = client.seal(Buffer.from('hello'));
    expect(d.length).toBe(5 + SEAL_OVERHEAD);
    expect(server.open(d).toString()).toBe('hello');
    expect(client.open(server.seal([Buffer.from('a'), Buffer.from('b')])).toString()).toBe('ab');
  });

  it('drops tampered, replayed, truncated, wrong-key and reflected datagrams, and keeps working', () => {
    const { client, server } = pair();
    const d = client.seal(Buffer.from('frame'));
    const tampered = Buffer.from(d);
    tampered[SEAL_OVERHEAD - 16 + 1]! ^= 1;
    expect(reason(() => server.open(tampered))).toBe('bad-tag');
    expect(reason(() => server.open(d))).toBe('accepted');
    expect(reason(() => server.open(d))).toBe('replayed');
    expect(reason(() => server.open(d.subarray(0, 20)))).toBe('truncated');
    const other = make({ keyId: 9, sends: 'c2s', derive: () => Buffer.alloc(32, 0xee) });
    // Counters past the ones seen, so the window lets them through to authentication.
    const last = <T>(f: () => T): T => (f(), f(), f());
    expect(reason(() => server.open(last(() => other.seal(Buffer.from('x')))))).toBe('bad-tag');
    // Its own datagram sent back (reflection) is under the other direction's key.
    expect(reason(() => server.open(last(() => server.seal(Buffer.from('x')))))).toBe('bad-tag');
    expect(reason(() => server.open(Buffer.concat([Buffer.from([0xc5, 0, 0, 0, 8]), Buffer.alloc(30)])))).toBe('unknown-key');
    expect(server.drops).toMatchObject({ 'bad-tag': 3, replayed: 1, truncated: 1, 'unknown-key': 1 });
    expect(server.open(client.seal(Buffer.from('still'))).toString()).toBe('still');
  });

  it('rekeys every interval and accepts reordering across an epoch boundary', () => {
    const { client, server } = pair(4n);
    const sealed = Array.from({ length: 12 }, (_, i) => client.seal(Buffer.from(`m${i}`)));
    expect(client.epochs.send).toBe(2);
    // Epoch 1 arrives before the end of epoch 0: both open.
    const order = [0, 1, 4, 2, 3, 5, 6, 7, 8, 9, 10, 11];
    expect(order.map((i) => server.open(sealed[i]!).toString())).toEqual(order.map((i) => `m${i}`));
    expect(server.epochs.receive).toBe(2);
    // Datagrams of an epoch two behind are too late.
    expect(reason(() => server.open(sealed[0]!))).toBe('replayed');
  });

  it('seals a batch across a rekey, each datagram under its own epoch\'s key', () => {
    const { client, server } = pair(5n);
    client.seal(Buffer.from('first')); // counter 0: the batch starts at 1 and crosses into epoch 1 at 5
    const frames = Array.from({ length: 12 }, (_, i) => Buffer.alloc(60 + i * 100, i));
    const sealed = client.sealFrames(frames).map((d) => Buffer.from(d));
    expect(sealed.map((d) => d.length)).toEqual(frames.map((f) => f.length + 4 + SEAL_OVERHEAD));
    expect(client.epochs.send).toBe(2);
    expect(sealed.map((d) => server.open(d).subarray(4))).toEqual(frames);
    expect(reason(() => server.open(sealed[3]!))).toBe('replayed');
  });

  it('a deriver that cannot give a key (its TLS session is gone) costs the datagram, never the process', () => {
    let alive = true;
    const sender = make({ keyId: 9, sends: 'c2s', derive: (d, e) => { if (!alive) throw new Error('socket gone'); return derive(d, e); }, rekeyInterval: 2n });
    const receiver = make({ keyId: 9, sends: 's2c', derive, rekeyInterval: 2n });
    const first = sender.sealFrames([Buffer.alloc(64, 1), Buffer.alloc(64, 2)]).map((d) => Buffer.from(d));
    expect(first).toHaveLength(2);
    alive = false; // epoch 1 needs a new key now
    expect(sender.sealFrames([Buffer.alloc(64, 3)])).toEqual([]);
    expect(reason(() => sender.seal(Buffer.from('x')))).toBe('exhausted');
    expect(first.map((d) => receiver.open(d)[4])).toEqual([1, 2]);
  });
});

describe('the addon\'s sealer and TypeScript\'s on the wire', () => {
  it('talk to each other both ways, across rekeys, on both ciphers', () => {
    for (const cipher of ['aes-256-gcm', 'chacha20-poly1305'] as Cipher[]) {
      const client = createSealer({ keyId: 7, sends: 'c2s', derive, cipher, rekeyInterval: 3n });
      const server = new AeadSealer({ keyId: 7, sends: 's2c', derive, cipher, aead: nodeAead, rekeyInterval: 3n });
      expect(client).toBeInstanceOf(NativeSealer);
      for (let i = 0; i < 8; i++) {
        const up = client.sealFrames([Buffer.alloc(100, i)]).map((d) => Buffer.from(d));
        expect(server.open(up[0]!).subarray(4)).toEqual(Buffer.alloc(100, i));
        expect(client.open(server.seal(Buffer.from(`down ${i}`))).toString()).toBe(`down ${i}`);
      }
      expect(client.epochs).toEqual({ send: 2, receive: 2 });
    }
  });
});

describe('AEAD contexts', () => {
  // The addon's context and Node's crypto must be interchangeable on the wire: a
  // peer on either opens what the other sealed, and both refuse a flipped bit.
  for (const cipher of ['aes-256-gcm', 'chacha20-poly1305'] as Cipher[]) {
    it(`${cipher}: the native context and Node's crypto seal the same bytes and open each other's`, () => {
      const key = Buffer.alloc(32, 0x5a);
      const native = nativeAead(key, cipher);
      const node = nodeAead(key, cipher);
      const header = Buffer.from([0xc5, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 1, 2]);
      const parts = [Buffer.from([1, 0, 0, 1400]), Buffer.alloc(1400, 7)];
      const sealed = native.seal(header, parts);
      expect(sealed).toEqual(node.seal(header, parts));
      expect(node.open(sealed)).toEqual(Buffer.concat(parts));
      expect(native.open(node.seal(header, [Buffer.alloc(0)]))).toEqual(Buffer.alloc(0));
      for (const at of [0, 5, 20, sealed.length - 1]) {
        const bad = Buffer.from(sealed);
        bad[at]! ^= 1;
        expect(native.open(bad)).toBeUndefined();
        expect(node.open(bad)).toBeUndefined();
      }
      expect(native.open(nodeAead(Buffer.alloc(32, 1), cipher).seal(header, parts))).toBeUndefined();
    });
  }

  it('sealFrames: a batch across a rekey, on either context, opens frame by frame as Data messages', () => {
    for (const aead of [nativeAead, nodeAead]) {
      const client = new AeadSealer({ keyId: 4, sends: 'c2s', derive, aead, rekeyInterval: 5n });
      const server = new AeadSealer({ keyId: 4, sends: 's2c', derive, aead: aead === nativeAead ? nodeAead : nativeAead, rekeyInterval: 5n });
      client.seal(Buffer.from('first')); // counter 0: the batch starts at 1 and crosses into epoch 1 at 5
      const frames = Array.from({ length: 12 }, (_, i) => Buffer.alloc(60 + i * 100, i));
      const sealed = client.sealFrames(frames);
      expect(sealed.map((d) => d.length)).toEqual(frames.map((f) => f.length + 4 + SEAL_OVERHEAD));
      expect(client.epochs.send).toBe(2);
      sealed.forEach((d, i) => {
        const plain = server.open(d);
        expect(plain.subarray(0, 4)).toEqual(Buffer.from([1, 0, frames[i]!.length >> 8, frames[i]!.length & 255]));
        expect(plain.subarray(4)).toEqual(frames[i]);
      });
      expect(reason(() => server.open(sealed[3]!))).toBe('replayed');
    }
  });

  it('the sealer on the native context and one on Node\'s crypto talk to each other', () => {
    const client = new AeadSealer({ keyId: 3, sends: 'c2s', derive, aead: nativeAead });
    const server = new AeadSealer({ keyId: 3, sends: 's2c', derive, aead: nodeAead });
    expect(server.open(client.seal(Buffer.from('up'))).toString()).toBe('up');
    expect(client.open(server.seal(Buffer.from('down'))).toString()).toBe('down');
  });
});

describe('ReplayWindow', () => {
  it('accepts each counter once, within 2048 of the highest', () => {
    const w = new ReplayWindow(2048);
    for (const c of [5n, 3n, 4n, 3000n]) {
      expect(w.check(c)).toBe('fresh');
      w.mark(c);
    }
    expect(w.check(5n)).toBe('too-old');
    expect(w.check(953n)).toBe('fresh');
    expect(w.check(952n)).toBe('too-old');
    expect(w.check(3000n)).toBe('replayed');
    w.mark(2999n);
    expect(w.check(2999n)).toBe('replayed');
    w.mark(10_000n);
    expect(w.check(9000n)).toBe('fresh');
    expect(w.check(3000n)).toBe('too-old');
  });
});
