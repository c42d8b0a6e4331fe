/**
 * Server and client in one process over loopback, with in-memory TAP twins and a
 * recording twin of the kernel configuration: the whole session logic (hello,
 * switching, keepalive, resume, rejection) without root.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryLogger } from '../common/index.js';
import { TunnelClient } from './client.js';
import { createMemoryDevicePair, type MemoryDevice } from './device.js';
import { TunnelServer } from './server.js';
import { recordingNet } from './testing.js';

function ethernet(dst: string, src: string, payload = 'x'): Buffer {
  return Buffer.concat([Buffer.from(dst, 'hex'), Buffer.from(src, 'hex'), Buffer.from([0x08, 0x00]), Buffer.from(payload.padEnd(46, '.'))]);
}

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

let nextPort = 21000 + (process.pid % 2000) * 4;

async function startServer(transport: 'udp' | 'tcp', extra: { mode?: 'local' | 'separate'; port?: number; graceMs?: number; keepaliveMs?: number; routes?: Record<string, string>; listen?: string; missing?: string[] } = {}) {
  const [simTap, simKernel] = createMemoryDevicePair(['ctun0', 'kernel']);
  const { net, calls, forwarding, forwarding6 } = recordingNet(extra.routes, '', { missing: extra.missing });
  const log = createMemoryLogger();
  const server = new TunnelServer({ listen: extra.listen ?? '127.0.0.1', port: extra.port ?? nextPort++, transport, mode: extra.mode, graceMs: extra.graceMs, keepaliveMs: extra.keepaliveMs, deadAfterMs: 1500, logger: log, openDevice: () => simTap, net });
  const bound = await server.start();
  stops.push(() => server.stop());
  return { server, port: bound.port, kernel: simKernel, log, calls, forwarding, forwarding6 };
}

async function startClient(transport: 'udp' | 'tcp', port: number, dest?: string, host = '127.0.0.1') {
  const [pcTap, pcKernel] = createMemoryDevicePair(['dstap0', 'pc-kernel']);
  // The TAP as `ctun configure` left it: an IPv6 --dest makes the client's IPv6 tunnel address from its IPv4 one.
  const { net, calls } = recordingNet({}, '', { links: { dstap0: ['192.168.100.100/24'] } });
  const log = createMemoryLogger();
  const client = new TunnelClient({ host, port, transport, dest, logger: log, openDevice: () => pcTap, checkTap: false, net, keepaliveMs: 200, deadAfterMs: 1000, backoff: { initialMs: 50, maxMs: 200 } });
  await client.start();
  stops.push(() => client.stop());
  return { client, kernel: pcKernel, log, calls };
}

/** Collects frames arriving at a memory device's far end. */
function sink(device: MemoryDevice): Buffer[] {
  const got: Buffer[] = [];
  device.onFrames((f) => got.push(...f));
  return got;
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.each(['udp', 'tcp'] as const)('tunnel session over %s (in-memory TAPs)', (transport) => {
  it('carries frames both ways and switches between two clients', async () => {
    const { port, kernel: sim } = await startServer(transport);
    const a = await startClient(transport, port);
    const b = await startClient(transport, port);
    await a.client.waitConnected(3000);
    await b.client.waitConnected(3000);
    const atSim = sink(sim);
    const atA = sink(a.kernel);
    const atB = sink(b.kernel);

    a.kernel.writeFrames([ethernet('ffffffffffff', '02000000000a', 'who-has')]);
    await until(() => atSim.length === 1 && atB.length === 1);
    sim.writeFrames([ethernet('02000000000a', '02c7c0a86401', 'reply')]);
    await until(() => atA.length === 1);
    expect(atA[0]!.toString()).toContain('reply');
    expect(atB).toHaveLength(1); // unicast to A was not flooded to B
    b.kernel.writeFrames([ethernet('02000000000a', '02000000000b', 'b-to-a')]);
    await until(() => atA.length === 2);
    expect(atSim).toHaveLength(1);
  });

  it('is back by itself with a new session after its server restarts on the same port', async () => {
    const first = await startServer(transport, { graceMs: 10_000 });
    const c = await startClient(transport, first.port);
    await c.client.waitConnected(3000);
    await first.server.stop('restart');
    const second = await startServer(transport, { port: first.port });
    await until(() => c.log.lines.some((l) => l.event === 'client-reconnected'), 8000);
    const line = c.log.lines.find((l) => l.event === 'client-reconnected')!;
    expect(line.fields.outageMs).toBeGreaterThanOrEqual(0);
    // A restarted server has lost every session: this is a new one, not a resume.
    expect(line.fields.resumed).toBe(false);
    const atSim = sink(second.kernel);
    c.kernel.writeFrames([ethernet('ffffffffffff', '02000000000a')]);
    await until(() => atSim.length === 1);
    expect(c.client.stats.reconnects).toBe(1);
  });
});

describe.each(['udp', 'tcp'] as const)('IPv6 underlay over %s (loopback)', (transport) => {
  it('--listen :: serves IPv6 clients (also written [::1]) and, dual stack, IPv4 ones; frames cross both', async () => {
    const { port, kernel: sim, server } = await startServer(transport, { listen: '::' });
    const v6 = await startClient(transport, port, undefined, '::1');
    const bracketed = await startClient(transport, port, undefined, '[::1]');
    const v4 = await startClient(transport, port, undefined, '127.0.0.1');
    for (const c of [v6, bracketed, v4]) await c.client.waitConnected(3000);
    expect(server.sessionCount).toBe(3);
    const atSim = sink(sim);
    v6.kernel.writeFrames([ethernet('ffffffffffff', '02000000000a', 'from-v6')]);
    v4.kernel.writeFrames([ethernet('ffffffffffff', '02000000000b', 'from-v4')]);
    await until(() => atSim.length === 2);
    const atV6 = sink(v6.kernel);
    sim.writeFrames([ethernet('02000000000a', '02c7c0a86401', 'to-v6')]);
    // The v4 client's broadcast may still be on its way to the v6 client: wait for the unicast itself.
    await until(() => atV6.some((f) => f.toString().includes('to-v6')), 5000);
  });

  it('--listen ::1 narrows to IPv6: an IPv4 client gets no welcome', async () => {
    const { port, server } = await startServer(transport, { listen: '::1' });
    const v4 = await startClient(transport, port, undefined, '127.0.0.1');
    await expect(v4.client.waitConnected(1000)).rejects.toMatchObject({ code: 'CONNECT_TIMEOUT' });
    expect(server.sessionCount).toBe(0);
  });
});

describe('separate mode in memory', () => {
  it('sets up forwarding and NAT, routes --dest through the tunnel, and undoes both', async () => {
    const s = await startServer('udp', { mode: 'separate', routes: { '172.31.0.5': 'eth0' } });
    expect(readFileSync(s.forwarding, 'utf8').trim()).toBe('1');
    expect(s.calls).toContain('iptables -w -t nat -A POSTROUTING -s 192.168.100.0/24 ! -o ctun0 -j MASQUERADE -m comment --comment ctun:ctun0');
    const c = await startClient('udp', s.port, '172.31.0.5');
    await c.client.waitConnected(3000);
    await until(() => c.calls.includes('ip route replace 172.31.0.5/32 via 192.168.100.1 dev dstap0'));
    await c.client.stop();
    expect(c.calls).toContain('ip route del 172.31.0.5/32 dev dstap0');
    await s.server.stop();
    expect(s.calls).toContain('iptables -w -t nat -D POSTROUTING -s 192.168.100.0/24 ! -o ctun0 -j MASQUERADE -m comment --comment ctun:ctun0');
  });

  it('rejects a destination without a route, and the client stops with exit code 5', async () => {
    const s = await startServer('tcp', { mode: 'separate' });
    const c = await startClient('tcp', s.port, '10.9.9.9');
    await expect(c.client.waitConnected(3000)).rejects.toMatchObject({ code: 'REJECTED', exitCode: 5 });
    expect(await c.client.done).toMatchObject({ message: expect.stringContaining('no route to destination 10.9.9.9') });
  });

  it('an IPv6 --dest: IPv6 is set up on first use (address, forwarding, ip6tables), the client routes it via the IPv6 next hop, all undone', async () => {
    const s = await startServer('udp', { mode: 'separate', routes: { 'fd00:5::2': 'eth0' } });
    // Nothing IPv6 before a client asks for it.
    expect(s.calls.filter((c) => c.startsWith('ip6tables -w -t nat -A') || c.startsWith('ip -6'))).toEqual([]);
    expect(readFileSync(s.forwarding6, 'utf8').trim()).toBe('0');
    const c = await startClient('udp', s.port, '[fd00:5::2]');
    const welcome = await c.client.waitConnected(3000);
    expect(welcome).toMatchObject({ serverAddress: 'fd63:7475:6e00::c0a8:6401', prefix: 120 });
    expect(s.calls).toEqual(
      expect.arrayContaining([
        'ip -6 addr replace fd63:7475:6e00::c0a8:6401/120 dev ctun0 nodad',
        'ip6tables -w -t nat -A POSTROUTING -s fd63:7475:6e00::c0a8:6400/120 ! -o ctun0 -j MASQUERADE -m comment --comment ctun:ctun0',
        'ip6tables -w -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu -m comment --comment ctun:ctun0',
        'ip6tables -w -t filter -I FORWARD 1 -i ctun0 -d fd00:5::2/128 -j ACCEPT -m comment --comment ctun:ctun0',
      ]),
    );
    expect(readFileSync(s.forwarding6, 'utf8').trim()).toBe('1');
    await until(() => c.calls.includes('ip route replace fd00:5::2/128 via fd63:7475:6e00::c0a8:6401 dev dstap0'));
    expect(c.calls).toContain('ip -6 addr replace fd63:7475:6e00::c0a8:6464/120 dev dstap0 nodad');
    await c.client.stop();
    expect(c.calls).toEqual(expect.arrayContaining(['ip route del fd00:5::2/128 dev dstap0', 'ip addr del fd63:7475:6e00::c0a8:6464/120 dev dstap0']));
    await s.server.stop();
    expect(s.calls).toContain('ip6tables -w -t nat -D POSTROUTING -s fd63:7475:6e00::c0a8:6400/120 ! -o ctun0 -j MASQUERADE -m comment --comment ctun:ctun0');
    expect(readFileSync(s.forwarding6, 'utf8').trim()).toBe('0');
  });

  it('a server without ip6tables refuses an IPv6 --dest with the reason (exit 5), undoes its IPv6 start, and still serves IPv4', async () => {
    const s = await startServer('tcp', { mode: 'separate', routes: { 'fd00:5::2': 'eth0', '172.31.0.5': 'eth0' }, missing: ['ip6tables'] });
    const c = await startClient('tcp', s.port, 'fd00:5::2');
    await expect(c.client.waitConnected(3000)).rejects.toMatchObject({ code: 'REJECTED', exitCode: 5 });
    expect((await c.client.done)?.message).toMatch(/DestinationRejected\): the server could not admit fd00:5::2: no IPv6 on this server: ip6tables is not installed/);
    expect(readFileSync(s.forwarding6, 'utf8').trim()).toBe('0');
    expect(s.calls).toContain('ip addr del fd63:7475:6e00::c0a8:6401/120 dev ctun0');
    expect(s.log.lines.find((l) => l.event === 'ipv6-unavailable')?.fields.reason).toMatch(/ip6tables is not installed/);
    const v4 = await startClient('tcp', s.port, '172.31.0.5');
    await v4.client.waitConnected(3000);
  });

  it('--dest must be an IPv4 or IPv6 address', () => {
    expect(() => new TunnelClient({ host: '127.0.0.1', dest: 'sim.example', logger: createMemoryLogger(), openDevice: () => createMemoryDevicePair()[0] })).toThrow(
      expect.objectContaining({ code: 'BAD_ADDRESS', exitCode: 1, message: '--dest "sim.example" is not an IPv4 or IPv6 address' }),
    );
  });
});

/** Cuts the client's link under it, as a dropped connection or a NAT rebinding does. */
function cutLink(client: TunnelClient): void {
  (client as unknown as { link: { close(): void } }).link.close();
}

describe.each(['udp', 'tcp'] as const)('session resume over %s', (transport) => {
  it('a client whose link drops comes back to the same server within the grace period and resumes its session', async () => {
    const s = await startServer(transport, { graceMs: 10_000 });
    const c = await startClient(transport, s.port);
    await c.client.waitConnected(3000);
    const atSim = sink(s.kernel);
    // The server learns the client's MAC on its switch port; a resumed session keeps it.
    c.kernel.writeFrames([ethernet('ffffffffffff', '02000000000a', 'before')]);
    await until(() => atSim.length === 1);
    // The client's socket goes (a new UDP port after it reconnects, as a NAT rebinding gives; a new TCP connection).
    cutLink(c.client);
    await until(() => c.log.lines.some((l) => l.event === 'client-reconnected'), 5000);
    expect(c.log.lines.find((l) => l.event === 'client-reconnected')!.fields.resumed).toBe(true);
    expect(s.log.lines.filter((l) => l.event === 'client-resumed')).toHaveLength(1);
    expect(s.log.lines.filter((l) => l.event === 'client-connected')).toHaveLength(1);
    expect(s.server.sessionCount).toBe(1);
    // Traffic flows again both ways through the resumed session.
    const atPc = sink(c.kernel);
    s.kernel.writeFrames([ethernet('02000000000a', '02c7c0a86401', 'after')]);
    await until(() => atPc.length === 1);
    expect(atPc[0]!.toString()).toContain('after');
  });
});

describe('session grace period', () => {
  it('keeps a dropped session for the grace period, then frees it', async () => {
    const graceMs = 1500;
    const s = await startServer('tcp', { graceMs, keepaliveMs: 100 });
    const c = await startClient('tcp', s.port);
    await c.client.waitConnected(3000);
    expect(s.server.sessionCount).toBe(1);
    // A client that vanishes without a bye (kill -9): its link closes and it never comes back.
    (c.client as unknown as { connect(): Promise<void> }).connect = async () => {};
    cutLink(c.client);
    await until(() => s.log.lines.some((l) => l.event === 'client-detached'));
    const detachedAt = Date.now();
    // Well inside the grace period (the server sweeps every 100 ms): the session is kept.
    await new Promise((r) => setTimeout(r, graceMs / 2));
    expect(s.server.sessionCount).toBe(1);
    expect(s.log.lines.some((l) => l.event === 'session-ended')).toBe(false);
    // After it: freed, for the reason of the grace period, and not before it was over.
    await until(() => s.server.sessionCount === 0, graceMs + 3000);
    expect(Date.now() - detachedAt).toBeGreaterThanOrEqual(graceMs - 50);
    expect(s.log.lines.find((l) => l.event === 'session-ended')?.fields.reason).toBe('grace period over');
  });
});
