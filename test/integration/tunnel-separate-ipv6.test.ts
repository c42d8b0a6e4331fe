/**
 * Separate mode to an IPv6 target (issue 18): pc ── gw ── tgt, the server on gw. pc
 * has no route to the target until the client names it with --dest; then gw's kernel
 * forwards and masquerades (ip6tables) toward it, and clamps the MSS of TCP SYNs to
 * the path MTU. The target sits behind a 1280-byte link (IPv6's minimum), so a SYN
 * that crossed gw unclamped would carry the MSS of pc's 1400-byte TAP: the target sees
 * what the clamp did. Over an IPv6-only underlay and over an IPv4 one; and the IPv4
 * path's own clamp, with the same picture.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { CTUN, link, netnsUnavailable, NODE, Scope, type Netns } from './harness/netns.js';

const skip = netnsUnavailable();
const scope = new Scope();
afterEach(() => scope.dispose());

const SYN_MSS = fileURLToPath(new URL('../fixtures/syn-mss.py', import.meta.url));
const TARGET6 = 'fd00:5::2';
const TARGET4 = '172.31.10.2';
/** The target's link: IPv6's minimum MTU, below pc's TAP (1400). */
const TARGET_MTU = 1280;
/** The server's IPv6 tunnel address for its default 192.168.100.1/24 (tools/tunnel/address.ts). */
const SERVER6 = 'fd63:7475:6e00::c0a8:6401';
const CLIENT6 = 'fd63:7475:6e00::c0a8:6464';

let vethCount = 0;

/** A veth between two namespaces with addresses of both families (IPv6 without duplicate detection, usable at once). */
async function veth(a: Netns, aAddrs: string[], b: Netns, bAddrs: string[], mtu?: number): Promise<void> {
  const n = vethCount++;
  const [an, bn] = [`x${a.name.slice(-7)}${n}`, `y${b.name.slice(-7)}${n}`];
  await a.ip('link', 'add', an, 'type', 'veth', 'peer', 'name', bn, 'netns', b.name);
  for (const [ns, dev, addrs] of [[a, an, aAddrs], [b, bn, bAddrs]] as const) {
    for (const addr of addrs) await ns.ip('addr', 'add', addr, 'dev', dev, ...(addr.includes(':') ? ['nodad'] : []));
    await ns.ip('link', 'set', dev, 'up', ...(mtu === undefined ? [] : ['mtu', String(mtu)]));
  }
}

/** pc ── gw over `underlay`, gw ── tgt (IPv6 and IPv4, MTU 1280); pc's TAP configured. Returns the server's address for the client. */
async function world(underlay: 4 | 6): Promise<{ pc: Netns; gw: Netns; tgt: Netns; server: string }> {
  const pc = await scope.ns('pc');
  const gw = await scope.ns('gw');
  const tgt = await scope.ns('tgt');
  if (underlay === 6) await veth(pc, ['fd77::1/64'], gw, ['fd77::2/64']);
  else await link(pc, '10.81.0.1/24', gw, '10.81.0.2/24');
  await veth(gw, ['fd00:5::1/64', '172.31.10.1/24'], tgt, [`${TARGET6}/64`, `${TARGET4}/24`], TARGET_MTU);
  await pc.ctun(['configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--non-interactive']);
  return { pc, gw, tgt, server: underlay === 6 ? 'fd77::2' : '10.81.0.2' };
}

/** Every rule of every table that carries ctun's tag, in both families. */
async function ctunRules(gw: Netns): Promise<string[]> {
  const found: string[] = [];
  for (const iptables of ['iptables', 'ip6tables']) {
    for (const table of ['filter', 'nat', 'mangle']) {
      const out = await gw.run(iptables, ['-w', '-t', table, '-S']);
      found.push(...out.split('\n').filter((l) => l.includes('ctun:')).map((l) => `${iptables} -t ${table} ${l}`));
    }
  }
  return found;
}

async function sysctl(ns: Netns, key: string): Promise<string> {
  return (await ns.run('sysctl', ['-n', key])).trim();
}

/** Opens a TCP port on the target, watches for its SYN there, connects from pc: the echo, and the MSS the target saw. */
async function tcpWithMss(pc: Netns, tgt: Netns, target: string): Promise<{ echo: unknown; mss: number | null }> {
  const server = await tgt.startProbe('tcp-server', target.includes(':') ? '::' : '0.0.0.0');
  scope.track(server.daemon);
  const port = String(server.first.port);
  const watch = scope.track(tgt.spawn('python3', [SYN_MSS, port, '15'], { label: `syn-mss ${port}` }));
  await watch.waitFor(/"listening"/, 10_000);
  const echo = await pc.probe('tcp-send', target, port, 'through-gw');
  const seen = JSON.parse(await watch.waitFor(/^\{"ok".*\}$/m, 15_000)) as { ok: boolean; mss: number | null };
  expect(seen.ok).toBe(true);
  return { echo, mss: seen.mss };
}

describe.skipIf(skip)('separate mode to an IPv6 target', () => {
  for (const c of [
    { underlay: 6, transport: 'udp' },
    { underlay: 4, transport: 'tcp' },
  ] as const) {
    it(`over an IPv${c.underlay} underlay (${c.transport}): no route before; TCP, UDP and ping6 after, SYN MSS clamped; every rule gone after stop`, async () => {
      const { pc, gw, tgt, server: host } = await world(c.underlay);
      const before = await pc.exec('ip', ['-6', 'route', 'get', TARGET6], { reject: false });
      expect(before.exitCode).not.toBe(0);
      expect(before.stderr).toMatch(/unreachable/i);
      // A new namespace inherits the host's IPv4 forwarding (Docker turns it on), IPv6's starts off.
      const ipv4Forwarding = await sysctl(gw, 'net.ipv4.ip_forward');

      const server = scope.track(gw.spawnCtun(['server', '--mode', 'separate', '--listen', c.underlay === 6 ? '::' : '0.0.0.0', '--transport', c.transport]));
      await server.waitFor(/server-listening/, 15_000);
      // IPv6 forwarding stays off until a client asks for an IPv6 destination.
      expect(await sysctl(gw, 'net.ipv6.conf.all.forwarding')).toBe('0');
      const client = scope.track(pc.spawnCtun(['client', host, '--transport', c.transport, '--dest', TARGET6]));
      await client.waitFor(new RegExp(`route-added dest=${TARGET6} via=${SERVER6} dev=${TUNNEL_DEFAULTS.clientTap}`), 15_000);
      expect(client.output).toContain(`address-added address=${CLIENT6}/120 dev=${TUNNEL_DEFAULTS.clientTap}`);
      expect(server.output).toMatch(/forwarding-enabled family=6 subnet=fd63:7475:6e00::c0a8:6400\/120/);
      expect(await sysctl(gw, 'net.ipv6.conf.all.forwarding')).toBe('1');

      // Ports opened only now, on a host with no route back to the tunnel: replies come through gw's NAT.
      const { echo, mss } = await tcpWithMss(pc, tgt, TARGET6);
      expect(echo).toMatchObject({ ok: true, reply: 'tcp-echo:through-gw' });
      // pc offered 1400 - 60 = 1340; gw clamped it to the target link's 1280 - 60.
      expect(mss).toBe(TARGET_MTU - 60);
      const udp = await tgt.startProbe('udp-server', '::');
      scope.track(udp.daemon);
      expect(await pc.probe('udp-send', TARGET6, String(udp.first.port), 'dgram6')).toMatchObject({ ok: true, reply: 'udp-echo:dgram6' });
      expect(await pc.ping(TARGET6)).toBe(true);
      // What did it: the rules a user would list (after the traffic, so a missing rule shows as the traffic it breaks).
      expect(await ctunRules(gw)).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^ip6tables -t nat -A POSTROUTING -s fd63:7475:6e00::c0a8:6400\/120 ! -o ctun0 .*-j MASQUERADE/),
          expect.stringMatching(/^ip6tables -t mangle -A FORWARD -p tcp .*--tcp-flags SYN,RST SYN .*-j TCPMSS --clamp-mss-to-pmtu/),
          expect.stringMatching(new RegExp(`^ip6tables -t filter -A FORWARD -d ${TARGET6}/128 -i ctun0 .*-j ACCEPT`)),
        ]),
      );

      expect(await client.stop()).toBe(0);
      expect((await pc.exec('ip', ['-6', 'route', 'get', TARGET6], { reject: false })).exitCode).not.toBe(0);
      expect(await pc.ip('-6', 'addr', 'show', 'dev', TUNNEL_DEFAULTS.clientTap)).not.toContain('fd63:');
      expect(await server.stop()).toBe(0);
      expect(await ctunRules(gw)).toEqual([]);
      expect(await sysctl(gw, 'net.ipv6.conf.all.forwarding')).toBe('0');
      expect(await sysctl(gw, 'net.ipv4.ip_forward')).toBe(ipv4Forwarding);
    });
  }

  it('the IPv4 path clamps too: a SYN to an IPv4 target behind the same link carries 1280 - 40', async () => {
    const { pc, gw, tgt, server: host } = await world(4);
    const server = scope.track(gw.spawnCtun(['server', '--mode', 'separate']));
    await server.waitFor(/server-listening/, 15_000);
    const client = scope.track(pc.spawnCtun(['client', host, '--dest', TARGET4]));
    await client.waitFor(/route-added dest=172\.31\.10\.2 via=192\.168\.100\.1/, 15_000);
    const { echo, mss } = await tcpWithMss(pc, tgt, TARGET4);
    expect(echo).toMatchObject({ ok: true, reply: 'tcp-echo:through-gw' });
    // pc offered 1400 - 40 = 1360.
    expect(mss).toBe(TARGET_MTU - 40);
    // An IPv4-only session never touches the host's IPv6.
    expect(await sysctl(gw, 'net.ipv6.conf.all.forwarding')).toBe('0');
    expect((await ctunRules(gw)).filter((r) => r.startsWith('ip6tables'))).toEqual([]);
  });

  it('a server whose /proc/sys is read-only (as in a container) and IPv6 forwarding off: exit 5 naming the sysctl to set, nothing left', async () => {
    const { pc, gw, server: host } = await world(6);
    // IPv4 forwarding is on already, as a container gets it with --sysctl net.ipv4.ip_forward=1.
    await gw.run('sysctl', ['-w', 'net.ipv4.ip_forward=1']);
    const readOnly = 'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$0" "$@"';
    const server = scope.track(gw.spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', readOnly, NODE, CTUN, 'server', '--mode', 'separate', '--listen', '::'], { label: 'ctun server, /proc/sys read-only' }));
    await server.waitFor(/server-listening/, 15_000);
    const r = await pc.ctun(['client', host, '--dest', TARGET6], { reject: false, timeout: 20_000 });
    expect(r.exitCode).toBe(5);
    // On plain UDP too the whole reason arrives (it fits the error answering a padded hello).
    expect(r.stderr).toContain(
      `ctun: error: the server rejected this client (DestinationRejected): the server could not admit ${TARGET6}: no IPv6 on this server: forwarding is off, /proc/sys read-only (start it with --sysctl net.ipv6.conf.all.forwarding=1)`,
    );
    expect(server.output).toMatch(/WARN  ipv6-unavailable reason="IPv6 forwarding is off and cannot be turned on here/);
    expect(await ctunRules(gw)).toEqual(expect.not.arrayContaining([expect.stringMatching(/^ip6tables/)]));
    expect(await gw.ip('-6', 'addr', 'show', 'dev', 'ctun0')).not.toContain('fd63:');
  });

  it('an IPv6 destination the server has no route to: exit 5 with the reason, nothing set up', async () => {
    const { pc, gw, server: host } = await world(6);
    const server = scope.track(gw.spawnCtun(['server', '--mode', 'separate', '--listen', '::']));
    await server.waitFor(/server-listening/, 15_000);
    const r = await pc.ctun(['client', host, '--dest', 'fd00:99::9'], { reject: false, timeout: 20_000 });
    expect(r.exitCode).toBe(5);
    expect(r.stderr).toContain('ctun: error: the server rejected this client (DestinationRejected): the server has no route to destination fd00:99::9');
    expect(await sysctl(gw, 'net.ipv6.conf.all.forwarding')).toBe('0');
    expect(await pc.ip('-6', 'addr', 'show', 'dev', TUNNEL_DEFAULTS.clientTap)).not.toContain('fd63:');
  });
});
