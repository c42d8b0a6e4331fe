import { describe, expect, it, vi } from 'vitest';
import { LearningSwitch, type SwitchPort } from './switch.js';

function port(id: string): SwitchPort & { got: Buffer[] } {
  const got: Buffer[] = [];
  return { id, got, deliver: (f) => (got.push(f), true) };
}

function ethernet(dst: string, src: string): Buffer {
  return Buffer.concat([Buffer.from(dst.replace(/:/g, ''), 'hex'), Buffer.from(src.replace(/:/g, ''), 'hex'), Buffer.from([0x08, 0x00]), Buffer.alloc(46)]);
}

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const BROADCAST = 'ff:ff:ff:ff:ff:ff';

describe('learning switch', () => {
  it('floods unknown and broadcast, then forwards unicast to the learned port only', () => {
    const sw = new LearningSwitch();
    const [a, b, c] = [port('a'), port('b'), port('c')];
    [a, b, c].forEach((p) => sw.addPort(p));
    sw.forward(ethernet(BROADCAST, A), a);
    expect([a.got.length, b.got.length, c.got.length]).toEqual([0, 1, 1]);
    sw.forward(ethernet(A, B), b);
    expect([a.got.length, b.got.length, c.got.length]).toEqual([1, 1, 1]);
    expect(sw.counters).toMatchObject({ forwarded: 1, flooded: 1 });
    sw.forward(ethernet(B, A), a);
    expect([a.got.length, b.got.length, c.got.length]).toEqual([1, 2, 1]);
  });

  it('forgets entries after the ageing time and when a port goes', () => {
    let now = 0;
    const sw = new LearningSwitch({ ageingMs: 1000, now: () => now });
    const [a, b, c] = [port('a'), port('b'), port('c')];
    [a, b, c].forEach((p) => sw.addPort(p));
    sw.forward(ethernet(BROADCAST, A), a);
    expect(sw.macsOf(a)).toEqual(['02000000000a']);
    now = 2000;
    sw.forward(ethernet(A, B), b);
    expect(c.got).toHaveLength(2); // flooded again: the entry for A had expired
    sw.removePort(b);
    expect(sw.macsOf(b)).toEqual([]);
    const before = b.got.length;
    sw.forward(ethernet(B, A), a);
    expect(b.got).toHaveLength(before); // a removed port gets nothing, not even floods
    expect(c.got).toHaveLength(3);
  });

  it('drops a frame whose destination sits behind the port it came from', () => {
    const sw = new LearningSwitch();
    const [a, b] = [port('a'), port('b')];
    sw.addPort(a);
    sw.addPort(b);
    sw.forward(ethernet(BROADCAST, A), a);
    sw.forward(ethernet(A, B), a);
    expect(sw.counters.filtered).toBe(1);
    expect(b.got).toHaveLength(1);
  });

  it('bounds its table, so a MAC flood cannot grow memory', () => {
    const sw = new LearningSwitch({ maxEntries: 8 });
    const a = port('a');
    sw.addPort(a);
    for (let i = 0; i < 100; i++) sw.forward(ethernet(BROADCAST, `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`), a);
    expect(sw.size).toBe(8);
    expect(sw.counters.tableFull).toBe(92);
  });

  it('a flood of new MACs into a full table scans it at most once a second, and learns again once entries age', () => {
    let now = 0;
    const sw = new LearningSwitch({ maxEntries: 8, ageingMs: 5000, now: () => now });
    const a = port('a');
    sw.addPort(a);
    const mac = (i: number): string => `02:00:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    for (let i = 0; i < 8; i++) sw.forward(ethernet(BROADCAST, mac(i)), a);
    const scans = vi.spyOn(sw, 'expire');
    for (let i = 8; i < 10_008; i++) sw.forward(ethernet(BROADCAST, mac(i)), a);
    expect(scans).toHaveBeenCalledTimes(1);
    expect(sw.counters.tableFull).toBe(10_000);
    now = 6000; // every entry has aged: the next new MAC finds room after one scan
    sw.forward(ethernet(BROADCAST, mac(20_000)), a);
    expect(scans).toHaveBeenCalledTimes(2);
    expect(sw.macsOf(a)).toEqual([mac(20_000).replace(/:/g, '')]);
  });

  it('never moves a pinned MAC (the server TAP\'s): a frame claiming it is dropped and counted', () => {
    let now = 0;
    const sw = new LearningSwitch({ now: () => now });
    const tap = { ...port('tap'), uplink: true };
    const [a, b] = [port('a'), port('b')];
    [tap, a, b].forEach((p) => sw.addPort(p));
    const SERVER = '02:c7:c0:a8:64:01';
    sw.pin(SERVER, tap);
    now = 3_600_000; // long past the ageing time: a pinned entry does not age
    // b claims the server's MAC as its source...
    expect(sw.forward(ethernet(BROADCAST, SERVER), b)).toBe(false);
    expect(sw.counters.spoofed).toBe(1);
    expect(tap.got.length + a.got.length).toBe(0);
    // ...and a's frames to the server still reach the TAP only.
    sw.forward(ethernet(SERVER, A), a);
    expect(tap.got).toHaveLength(1);
    expect(b.got).toHaveLength(0);
  });

  it('keeps a MAC behind a connected port; it moves only once that port is gone or disconnected and quiet', () => {
    let now = 0;
    const sw = new LearningSwitch({ now: () => now, moveHoldMs: 1000 });
    const a = { ...port('a'), attached: true };
    const [b, c] = [port('b'), port('c')];
    [a, b, c].forEach((p) => sw.addPort(p));
    sw.forward(ethernet(BROADCAST, A), a);
    now = 60_000; // long after, but a is still connected and its entry has not aged out
    expect(sw.forward(ethernet(BROADCAST, A), b)).toBe(false);
    sw.forward(ethernet(A, B), c);
    expect(a.got).toHaveLength(1); // traffic for A still goes to a
    expect(b.got.filter((f) => f.subarray(0, 6).toString('hex') === '02000000000a')).toHaveLength(0);
    // a sends once more, then disconnects: within the hold time A stays with a, after it b
    // may take it (a client that restarted after a crash comes back on a new session).
    sw.forward(ethernet(BROADCAST, A), a);
    a.attached = false;
    now = 60_500;
    expect(sw.forward(ethernet(BROADCAST, A), b)).toBe(false);
    now = 61_500;
    expect(sw.forward(ethernet(BROADCAST, A), b)).toBe(true);
    expect(sw.macsOf(b)).toEqual(['02000000000a']);
  });

  it('isolates client ports from each other, not from the uplink', () => {
    const sw = new LearningSwitch({ isolateClients: true });
    const tap = { ...port('tap'), uplink: true };
    const [a, b] = [port('a'), port('b')];
    [tap, a, b].forEach((p) => sw.addPort(p));
    sw.forward(ethernet(BROADCAST, A), a);
    expect([tap.got.length, b.got.length]).toEqual([1, 0]); // a's broadcast reaches the TAP only
    sw.forward(ethernet(BROADCAST, B), b);
    expect(sw.forward(ethernet(A, B), b)).toBe(false); // unicast b -> a dropped
    expect(sw.counters.isolated).toBe(1);
    expect(a.got).toHaveLength(0);
    sw.forward(ethernet(BROADCAST, '02:c7:c0:a8:64:01'), tap); // the TAP's broadcast reaches both
    sw.forward(ethernet(A, '02:c7:c0:a8:64:01'), tap);
    expect([a.got.length, b.got.length]).toEqual([2, 1]);
  });
  it('reports every change of a MAC\'s port (learned, moved, aged out, port gone), not refreshes', () => {
    let now = 0;
    const changes: string[] = [];
    const sw = new LearningSwitch({ ageingMs: 1000, moveHoldMs: 100, now: () => now, onChange: (mac, p) => changes.push(`${mac}>${p?.id ?? '-'}`) });
    const a = { ...port('a'), attached: false };
    const [b, c] = [port('b'), port('c')];
    [a, b, c].forEach((p) => sw.addPort(p));
    sw.forward(ethernet(BROADCAST, A), a);
    sw.forward(ethernet(BROADCAST, A), a);
    expect(changes).toEqual(['02000000000a>a']);
    now = 200; // a is disconnected and A quiet past the hold: A may move
    sw.forward(ethernet(BROADCAST, A), b);
    sw.forward(ethernet(BROADCAST, B), c);
    expect(changes).toEqual(['02000000000a>a', '02000000000a>b', '02000000000b>c']);
    sw.removePort(b);
    now = 2000;
    sw.expire();
    expect(changes.slice(3)).toEqual(['02000000000a>-', '02000000000b>-']);
  });

  it('touch keeps a MAC learned by traffic that bypassed forward (the native fast path), never backwards', () => {
    let now = 0;
    const sw = new LearningSwitch({ ageingMs: 1000, now: () => now });
    const [a, b] = [port('a'), port('b')];
    [a, b].forEach((p) => sw.addPort(p));
    sw.forward(ethernet(BROADCAST, A), a);
    now = 900;
    sw.touch('02000000000a', 800);
    sw.touch('02000000000a', 100);
    now = 1500;
    sw.expire();
    expect(sw.macsOf(a)).toEqual(['02000000000a']);
    now = 1801;
    sw.expire();
    expect(sw.macsOf(a)).toEqual([]);
  });
});
