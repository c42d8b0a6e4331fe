/**
 * The tunnel over an IPv6-only underlay (issue 18): the PC and the simulator's host
 * are joined by a veth carrying only fd77::/64 addresses; the server listens on `::`
 * and the client dials an IPv6 address, `[addr]`, or a name that only this test
 * defines (in the PC namespace's own hosts file, /etc/netns/NAME/hosts, which
 * `ip netns exec` puts over /etc/hosts: getaddrinfo answers it from there, no
 * resolver is asked). UDP, TCP, and both with --tls.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { manifest, renderManifests } from '../../tools/k8s/index.js';
import { NODE, netnsUnavailable, Scope } from './harness/netns.js';
import { clientTlsArgs, makePki, removePki, serverTlsArgs } from './harness/pki.js';

const skip = netnsUnavailable();
const scope = new Scope();
const hostsDirs: string[] = [];
afterEach(async () => {
  await scope.dispose();
  for (const d of hostsDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const SIM6 = 'fd77::2';
const PC6 = 'fd77::1';
const NAME = 'ctun-sim.test';

let pki = '';
beforeAll(async () => {
  if (skip === undefined) pki = await makePki({ serverNames: [SIM6, NAME], clients: ['alice'] });
});
afterAll(() => removePki(pki));

/** pc ── veth (IPv6 only) ── sim, a configured TAP in pc, NAME → SIM6 in pc's hosts file. */
async function ipv6OnlyHosts() {
  const sim = await scope.ns('sim');
  const pc = await scope.ns('pc');
  const veth = `v6${pc.name.slice(-8)}`;
  await pc.ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', `w6${sim.name.slice(-8)}`, 'netns', sim.name);
  // nodad: usable at once, not after duplicate address detection.
  await pc.ip('addr', 'add', `${PC6}/64`, 'dev', veth, 'nodad');
  await sim.ip('addr', 'add', `${SIM6}/64`, 'dev', `w6${sim.name.slice(-8)}`, 'nodad');
  await pc.ip('link', 'set', veth, 'up');
  await sim.ip('link', 'set', `w6${sim.name.slice(-8)}`, 'up');
  const dir = `/etc/netns/${pc.name}`;
  mkdirSync(dir, { recursive: true });
  hostsDirs.push(dir);
  writeFileSync(`${dir}/hosts`, `127.0.0.1 localhost\n${SIM6} ${NAME}\n`);
  await pc.ctun(['configure', '--tap', 'dstap0', '192.168.100.100', '--non-interactive']);
  // The underlay really is IPv6 only: no IPv4 address on either end of the veth.
  expect(await pc.ip('-4', '-o', 'addr', 'show', 'dev', veth)).toBe('');
  expect(await sim.ip('-4', '-o', 'addr', 'show', 'dev', `w6${sim.name.slice(-8)}`)).toBe('');
  return { sim, pc };
}

/** `logged`: how the client's log lines name the server (an IPv6 address bracketed before its port). */
const cases = [
  { transport: 'udp', tls: false, host: NAME, logged: `${NAME}:1723` },
  { transport: 'tcp', tls: false, host: SIM6, logged: `[${SIM6}]:1723` },
  { transport: 'udp', tls: true, host: `[${SIM6}]`, logged: `[${SIM6}]:1723` },
  { transport: 'tcp', tls: true, host: NAME, logged: `${NAME}:1723` },
] as const;

describe.skipIf(skip)('the tunnel over an IPv6-only underlay', () => {
  for (const c of cases) {
    it(`${c.transport}${c.tls ? ' --tls' : ''} to ${c.host}: the client connects and pings through its TAP`, async () => {
      const { sim, pc } = await ipv6OnlyHosts();
      const server = scope.track(sim.spawnCtun(['server', '--listen', '::', '--transport', c.transport, ...(c.tls ? serverTlsArgs(pki) : [])]));
      await server.waitFor(/server-listening .*address=::/, 15_000);
      const client = scope.track(pc.spawnCtun(['client', c.host, '--transport', c.transport, ...(c.tls ? clientTlsArgs(pki, 'alice') : [])]));
      const connected = await client.waitFor(/client-connected .*/, 15_000);
      expect(await pc.pingUntilReply('192.168.100.1', 10)).toBe(true);
      // host:port as a user types it back: `[fd77::1]:40756`, never `fd77::1:40756`.
      expect(connected).toContain(`server=${c.logged} `);
      expect(server.output).toMatch(new RegExp(`client-connected peer=\\[${PC6}\\]:\\d+ `));
    });
  }
});

describe.skipIf(skip)('the Kubernetes manifests\' tunnel server on an IPv6 pod address', () => {
  it('with the rendered flags (--listen ::, --metrics [::]:9723) the kubelet\'s HTTP probes and a client reach it at its IPv6 address', async () => {
    const { sim, pc } = await ipv6OnlyHosts();
    const ctun = (manifest(renderManifests(), 'integrated').objects[0] as any).spec.template.spec.containers.find((c: any) => c.name === 'ctun');
    // The image's entrypoint is `ctun server --mode local`; the manifest adds its args.
    const server = scope.track(sim.spawnCtun(['server', '--mode', 'local', ...ctun.args]));
    await server.waitFor(/"event":"server-listening".*"address":"::"/, 15_000);
    // As the kubelet probes: from outside the pod, to the pod IP, on the port the probe names.
    for (const probe of [ctun.readinessProbe, ctun.livenessProbe]) {
      const port = ctun.ports.find((p: any) => p.name === probe.httpGet.port).containerPort;
      const url = `http://[${SIM6}]:${port}${probe.httpGet.path}`;
      const r = await pc.exec(NODE, ['-e', 'fetch(process.argv[1], { signal: AbortSignal.timeout(5000) }).then(async (r) => console.log(r.status, await r.text()))', url], { reject: false });
      expect(r.stdout, `${url}: ${r.all}`).toMatch(/^200 /);
    }
    const client = scope.track(pc.spawnCtun(['client', SIM6]));
    await client.waitFor(/client-connected /, 15_000);
    expect(await pc.pingUntilReply('192.168.100.1', 10)).toBe(true);
  });
});
