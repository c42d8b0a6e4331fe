/**
 * The addon's batch UDP socket on loopback: runs of equal-sized datagrams leave as
 * one GSO message and arrive as one GRO run; with the offload forced off (the path of
 * a kernel without it) they travel one by one. Either way every datagram must come
 * out whole, in order, and garbage inside a run must be dropped one datagram at a time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BatchUdpSocket } from '../../tools/tunnel/link/batch-udp.js';

const sockets: BatchUdpSocket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

function pair(offload: { rx?: boolean; tx?: boolean } = {}): { rx: BatchUdpSocket; tx: BatchUdpSocket; got: Buffer[] } {
  const rx = BatchUdpSocket.bind('127.0.0.1', 0, { offload: offload.rx });
  const tx = BatchUdpSocket.bind('127.0.0.1', 0, { offload: offload.tx });
  sockets.push(rx, tx);
  tx.connect('127.0.0.1', rx.port);
  const got: Buffer[] = [];
  rx.onDatagrams((d) => got.push(Buffer.from(d)));
  return { rx, tx, got };
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

const frame = (i: number, size: number): Buffer => {
  const f = Buffer.alloc(size, i & 0xff);
  f.writeUInt32BE(i, 0);
  return f;
};

// 300 frames: runs of 1514-byte frames broken by small and odd-sized ones.
const SIZES = Array.from({ length: 300 }, (_, i) => (i % 50 === 49 ? 60 : i % 77 === 0 ? 999 : 1514));

/** Sends the 300 frames and checks each came out whole, in order, as its own Data datagram; returns the receiver. */
async function sendMixedRuns(offload: { rx?: boolean; tx?: boolean }): Promise<BatchUdpSocket> {
  const { rx, tx, got } = pair(offload);
  const frames = SIZES.map((size, i) => frame(i, size));
  let sent = 0;
  for (let i = 0; i < frames.length; i += 100) sent += tx.sendFrames(frames.slice(i, i + 100));
  expect(sent).toBe(300);
  await until(() => got.length >= 300);
  expect(got.length).toBe(300);
  got.forEach((d, i) => {
    expect(d.readUInt8(0)).toBe(1); // Data
    expect(d.readUInt16BE(2)).toBe(SIZES[i]);
    expect(d.subarray(4).equals(frames[i]!)).toBe(true);
  });
  return rx;
}

describe.skipIf(!BatchUdpSocket.available())('batch UDP socket', () => {
  // Linux has had UDP GSO since 4.18 and GRO since 5.0; on loopback a GSO run reaches
  // a GRO socket unsplit, so the offload path shows as datagrams received in runs.
  it('frames of mixed sizes, with runs of equal size, leave as GSO runs and arrive as GRO runs, whole, in order', async () => {
    const rx = await sendMixedRuns({});
    expect(rx.coalesced).toBeGreaterThan(0);
  });

  it('with the offload forced off on either side, no run is coalesced and every frame still arrives whole, in order', async () => {
    // Sender without GSO: one datagram per message, so a GRO receiver has no run to keep.
    expect((await sendMixedRuns({ tx: false })).coalesced).toBe(0);
    // Receiver without GRO: the kernel splits the sender's GSO runs before delivery.
    expect((await sendMixedRuns({ rx: false })).coalesced).toBe(0);
  });

  it('garbage of the same size inside a run is dropped datagram by datagram; the good ones pass', async () => {
    const { rx, tx, got } = pair();
    const good = Array.from({ length: 40 }, (_, i) => Buffer.concat([Buffer.from([1, 0, 0x05, 0xea]), frame(i, 1514)]));
    const garbage = Array.from({ length: 40 }, (_, i) => Buffer.alloc(1518, 0x42 + (i % 3)));
    const mixed = good.flatMap((g, i) => [g, garbage[i]!]);
    expect(tx.sendDatagrams(mixed)).toBe(80);
    await until(() => got.length >= 40 && rx.filtered >= 40);
    expect(got.length).toBe(40);
    expect(rx.filtered).toBe(40);
    got.forEach((d, i) => expect(d.equals(good[i]!)).toBe(true));
  });
});
