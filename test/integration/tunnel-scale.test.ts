/**
 * The tunnel at site scale (issue 18), against the real kernel: a server in one
 * namespace holds hundreds of sessions from the load generator (bench/loadgen.ts, on
 * the server namespace's loopback) while a real client from another namespace still
 * gets through its TAP; `--max-clients` refuses the one beyond with ServerFull.
 */
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { Daemon, link, netnsUnavailable, NODE, ROOT, Scope, type Netns } from './harness/netns.js';

const skip = netnsUnavailable();
const scope = new Scope();
afterEach(() => scope.dispose());

const LOADGEN = `${ROOT}bench/loadgen.ts`;

/** The load generator inside `ns`, toward the server on that namespace's loopback. */
function loadgen(ns: Netns, sessions: number, seconds: number): Daemon {
  const args = ['netns', 'exec', ns.name, NODE, '--import', 'tsx', LOADGEN, '--port', '1723', '--sessions', String(sessions), '--seconds', String(seconds)];
  return scope.track(new Daemon(spawn('ip', args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), `${ns.name}: loadgen ${sessions}`));
}

/** sim (server) ── veth ── pc (a configured TAP, no client yet). */
async function twoHosts(serverArgs: string[]) {
  const sim = await scope.ns('sim');
  const pc = await scope.ns('pc');
  await link(pc, '10.78.0.1/24', sim, '10.78.0.2/24');
  await pc.ctun(['configure', '--tap', 'dstap0', '192.168.100.100', '--non-interactive']);
  const server = scope.track(sim.spawnCtun(['server', ...serverArgs]));
  await server.waitFor(/server-listening/, 15_000);
  return { sim, pc, server };
}

describe.skipIf(skip)('the tunnel at site scale', () => {
  it('holds 200 load-generator sessions with keepalives while a real client still gets through', async () => {
    const { sim, pc, server } = await twoHosts(['--max-clients', '300']);
    const load = loadgen(sim, 200, 40);
    const established = await load.waitFor(/\{"event":"established".*\}/, 20_000);
    expect(JSON.parse(established)).toMatchObject({ welcomed: 200, refused: {} });
    // All held (pinged and answered) before the real client comes: each session's pings
    // start at a random phase within its first keepalive, so a count taken sooner
    // (a client that starts fast) would miss sessions not yet pinged, not lost ones.
    await load.waitFor(/\{"event":"held","held":200,/, 10_000);

    const client = scope.track(pc.spawnCtun(['client', '10.78.0.2']));
    await client.waitFor(/client-connected/, 15_000);
    expect(await pc.pingUntilReply('192.168.100.1', 10)).toBe(true);
    expect(await pc.ping('192.168.100.1')).toBe(true);

    server.kill('SIGUSR1');
    expect(await server.waitFor(/stats sessions=\d+/, 5000)).toBe('stats sessions=201');
    // Every generated session is still answered after the client came and went through.
    const from = load.output.length;
    const held = JSON.parse(await load.waitFor(/\{"event":"held".*\}/, 5000, from));
    expect(held).toMatchObject({ held: 200, welcomed: 200 });
    expect(held.pongs).toBeGreaterThan(200);
    expect(server.output).not.toMatch(/client-silent|session-ended/);
  });

  it('--max-clients: the client beyond is refused with ServerFull and retries; it gets in once a seat frees', async () => {
    const { sim, pc, server } = await twoHosts(['--max-clients', '3']);
    const load = loadgen(sim, 3, 60);
    expect(JSON.parse(await load.waitFor(/\{"event":"established".*\}/, 15_000))).toMatchObject({ welcomed: 3 });
    // Held (pinged and answered): confirmed sessions, which a full server never evicts for a newcomer.
    await load.waitFor(/\{"event":"held","held":3,/, 10_000);

    const client = scope.track(pc.spawnCtun(['client', '10.78.0.2']));
    await client.waitFor(/reconnect-scheduled .*server refused for now \(ServerFull\): server has its maximum of 3 clients \(--max-clients\)/, 15_000);
    expect(client.output).not.toContain('client-connected');
    expect(server.output).toMatch(/client-rejected .*code=ServerFull/);
    expect(await pc.ping('192.168.100.1', 1)).toBe(false);

    // The generator says bye: seats free, and the waiting client is admitted on its own.
    load.kill('SIGTERM');
    await load.exited;
    await client.waitFor(/client-connected/, 15_000);
    // The refused ping above left the server's neighbour entry FAILED, which answers
    // later pings at once with "unreachable": forget it, as a user's next ARP would.
    await pc.ip('neigh', 'flush', 'dev', 'dstap0');
    expect(await pc.pingUntilReply('192.168.100.1', 10)).toBe(true);
  });

  it('--max-clients 0 is bad usage: exit 1, what is wrong and what to do, and no TAP left behind', async () => {
    const sim = await scope.ns('sim');
    const r = await sim.ctun(['server', '--max-clients', '0'], { reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('ctun: error: --max-clients must be a whole number from 1 to 65536, got 0');
    expect(r.stderr).toContain('hint: give --max-clients a count');
    expect(await sim.ip('-o', 'link', 'show')).not.toContain('ctun0');
  });
});
