/**
 * The server fast path's TypeScript half against an in-memory twin of the addon's
 * table: it tells the addon where each session is and which MACs the switch learned
 * behind it, and brings what the addon moved back into what users see (session and
 * TAP statistics, liveness, MAC ageing). That the addon forwards for real is
 * test/integration/tunnel-fast-path.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { NativeServerFastPath } from './native.js';
import type { PeerLink } from './link/index.js';
import { ServerFastPath } from './server-fast-path.js';
import { Session } from './session.js';
import { createStats } from './stats.js';
import { LearningSwitch } from './switch.js';

/** The addon's table as plain maps; counters scripted by the test as the addon would count. */
class NativeTwin implements NativeServerFastPath {
  peers = new Map<number, { ip: number; port: number; destIp: number; c: number[] }>();
  macs = new Map<number, { id: number; ms: number }>();
  tap = [0, 0, 0, 0, 0];
  closed = false;
  setPeer(id: number, ip: number, port: number, destIp: number): void {
    this.peers.set(id, { ip, port, destIp, c: this.peers.get(id)?.c ?? [0, 0, 0, 0, 0, -1] });
  }
  removePeer(id: number): void {
    this.peers.delete(id);
    for (const [mac, m] of this.macs) if (m.id === id) this.macs.delete(mac);
  }
  learn(mac: number, id: number): void {
    this.macs.set(mac, { id, ms: -1 });
  }
  forget(mac: number): void {
    this.macs.delete(mac);
  }
  counters(): number[] {
    return [...this.tap, this.peers.size, ...[...this.peers].flatMap(([id, p]) => [id, ...p.c]), this.macs.size, ...[...this.macs].flatMap(([mac, m]) => [mac, m.ms])];
  }
  close(): void {
    this.closed = true;
  }
}

function link(ip: string, port: number): PeerLink {
  const [a, b, c, d] = ip.split('.').map(Number) as [number, number, number, number];
  return { id: `${ip}:${port}`, transport: 'udp', source: ip, send: () => true, sendFrames: (f) => f.length, close: () => {}, nativeAddress: { ip: ((a << 24) | (b << 16) | (c << 8) | d) >>> 0, port } };
}

const MAC_A = '02000000000a';

function lab() {
  let now = 100_000;
  const native = new NativeTwin();
  let path: ServerFastPath | undefined;
  const sw = new LearningSwitch({ now: () => now, ageingMs: 10_000, onChange: (mac, port) => path?.switchChanged(mac, port) });
  const tapStats = createStats();
  const attached: unknown[] = [];
  const end = { fd: 3, attachFastPath: (p: unknown) => attached.push(p) };
  path = ServerFastPath.over(native, [end], { tapMac: '02:c7:c0:a8:64:01', separate: true, serverAddress: '192.168.100.1', sw, tapStats, now: () => now });
  const session = new Session('s1', link('10.0.0.7', 40000), '172.17.0.2', now, { source: '10.0.0.7', identityKey: undefined, version: 2 });
  sw.addPort(session);
  return { native, path, sw, tapStats, session, attached, clock: { get: () => now, set: (t: number) => (now = t) } };
}

/** A frame from `src` to the server's TAP MAC: how the switch learns `src` behind a port. */
function frameFrom(src: string): Buffer {
  return Buffer.concat([Buffer.from('02c7c0a86401', 'hex'), Buffer.from(src, 'hex'), Buffer.from([0x08, 0x00]), Buffer.alloc(46)]);
}

describe('server fast path (TypeScript half)', () => {
  it('gives the addon the session\'s address and destination, and the MACs the switch learns, moves and forgets', () => {
    const { native, path, sw, session } = lab();
    path.track(session);
    expect([...native.peers.values()][0]).toMatchObject({ ip: 0x0a000007, port: 40000, destIp: 0xac110002 });
    sw.forward(frameFrom(MAC_A), session);
    expect(native.macs.get(0x02000000000a)).toEqual({ id: 1, ms: -1 });
    // Detached: no address, so the addon sends nothing natively to it.
    session.detach(0);
    path.track(session);
    expect([...native.peers.values()][0]).toMatchObject({ ip: 0, port: 0 });
    // Removed from the switch (the session ended): the MAC leaves the addon too.
    sw.removePort(session);
    expect(native.macs.size).toBe(0);
  });

  it('brings the native counters into the session and TAP statistics once each, with liveness and MAC ageing', () => {
    const { native, path, sw, tapStats, session, clock } = lab();
    path.track(session);
    sw.forward(frameFrom(MAC_A), session);
    session.confirmed = false;
    const t0 = clock.get();
    // The addon moved 10 frames in (1000 bytes) and 8 out (800), 1 dropped; heard 50 ms ago; A seen 20 ms ago.
    native.peers.get(1)!.c = [10, 1000, 8, 800, 1, 50];
    native.tap = [8, 800, 10, 1000, 2];
    native.macs.get(0x02000000000a)!.ms = 20;
    clock.set(t0 + 9_000);
    path.sync();
    path.sync();
    expect(session.stats).toMatchObject({ framesIn: 10, bytesIn: 1000, framesOut: 8, bytesOut: 800, dropsQueue: 1 });
    expect(tapStats).toMatchObject({ framesIn: 8, bytesIn: 800, framesOut: 10, bytesOut: 1000, dropsQueue: 2 });
    expect(path.frames).toEqual({ rx: 10, tx: 8 });
    expect(session.lastSeen).toBe(t0 + 9_000 - 50);
    expect(session.confirmed).toBe(true);
    // A was refreshed at t0 + 8980: still learned 10 s after t0, when it would have aged out.
    clock.set(t0 + 12_000);
    sw.expire();
    expect(sw.macsOf(session)).toEqual([MAC_A]);
  });

  it('counts a session\'s last frames when it ends, and after close hands the readers back to JavaScript', () => {
    const { native, path, session, attached } = lab();
    path.track(session);
    native.peers.get(1)!.c = [3, 300, 0, 0, 0, 5];
    path.remove(session);
    expect(session.stats.framesIn).toBe(3);
    expect(native.peers.size).toBe(0);
    path.close();
    expect(native.closed).toBe(true);
    expect(attached.at(-1)).toBeUndefined();
  });
});
