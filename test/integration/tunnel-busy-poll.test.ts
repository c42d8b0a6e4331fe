/**
 * Busy polling (native/busy_poll.h, `--busy-poll`) between real TAPs in namespaces:
 * in a lockstep exchange (flood ping: the next request leaves as the reply arrives,
 * the shape of a co-simulation's steps) neither end's event loop goes to sleep per
 * frame, where with `--busy-poll 0` each sleeps about twice per echo; and where the
 * gaps are longer than the limit (pings 2 ms apart), the spins that wait for them soon
 * stop (the stats line's busyPoll figures), while those that wait for a reply go on.
 *
 * What a user sees of it is the round trip (bench: `npm run bench -- tunnel
 * --round-trips`); what can be asserted without timing it is whether the ends slept
 * (voluntary context switches of the main thread) and the CPU they used.
 */
import { TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { afterEach, describe, expect, it } from 'vitest';
import { netnsUnavailable, pcAndSim, Scope, statsOf, type Daemon, type Netns } from './harness/netns.js';

const skip = netnsUnavailable();
const scope = new Scope();
afterEach(() => scope.dispose());

const LOCKSTEP_ECHOES = 2000;
const SPACED_ECHOES = 500;

interface EndFigures {
  sleepsPerEcho: number;
  cpuUsPerEcho: number;
}

/** A connected client and server with `extra` arguments on both, over `transport`. */
async function tunnel(transport: 'udp' | 'tcp', extra: string[]): Promise<{ pc: Netns; ends: Daemon[] }> {
  const { pc, sim } = await pcAndSim(scope);
  const server = scope.track(sim.spawnCtun(['server', '--transport', transport, ...extra]));
  await server.waitFor(/server-listening/, 15_000);
  const client = scope.track(pc.spawnCtun(['client', '10.79.0.2', '--transport', transport, ...extra]));
  await client.waitFor(/client-connected/, 15_000);
  expect(await pc.ping(TUNNEL_DEFAULTS.serverAddress)).toBe(true);
  return { pc, ends: [client, server] };
}

/** Runs ping with `args` and returns each end's sleeps and main-thread CPU per echo answered. */
async function perEcho(pc: Netns, ends: Daemon[], args: string[]): Promise<EndFigures[]> {
  const before = ends.map((e) => e.mainThread());
  const r = await pc.exec('ping', ['-q', ...args, '-W', '2', TUNNEL_DEFAULTS.serverAddress], { timeout: 60_000, reject: false });
  const after = ends.map((e) => e.mainThread());
  const echoes = Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
  expect(echoes, r.stdout + r.stderr).toBeGreaterThan(0);
  return ends.map((_, i) => ({
    sleepsPerEcho: (after[i]!.sleeps - before[i]!.sleeps) / echoes,
    cpuUsPerEcho: ((after[i]!.cpuSeconds - before[i]!.cpuSeconds) * 1e6) / echoes,
  }));
}

const show = (label: string, figures: EndFigures[]): string =>
  `${label}: ` + figures.map((f, i) => `${i === 0 ? 'client' : 'server'} ${f.sleepsPerEcho.toFixed(2)} sleeps, ${f.cpuUsPerEcho.toFixed(0)} µs CPU per echo`).join('; ');

describe.skipIf(skip)('busy polling', () => {
  for (const transport of ['udp', 'tcp'] as const) {
    it(`over ${transport}, a lockstep exchange does not put either end to sleep per frame; --busy-poll 0 does`, async () => {
      const spinning = await tunnel(transport, []);
      const on = await perEcho(spinning.pc, spinning.ends, ['-f', '-c', String(LOCKSTEP_ECHOES)]);
      await scope.dispose();
      const sleeping = await tunnel(transport, ['--busy-poll', '0']);
      const off = await perEcho(sleeping.pc, sleeping.ends, ['-f', '-c', String(LOCKSTEP_ECHOES)]);
      console.log(show(`${transport} on`, on));
      console.log(show(`${transport} off`, off));
      for (const end of [0, 1]) {
        // Without it an end sleeps waiting for the reply and again for the next request.
        expect(off[end]!.sleepsPerEcho, show('off', off)).toBeGreaterThanOrEqual(0.9);
        expect(on[end]!.sleepsPerEcho, show('on', on)).toBeLessThan(0.5);
      }
    });
  }

  it('where the gaps outlast the limit (pings 2 ms apart), the spins that do not pay stop', async () => {
    const { pc, ends } = await tunnel('udp', []);
    const before = await Promise.all(ends.map(statsOf));
    const r = await pc.exec('ping', ['-q', '-i', '0.002', '-c', String(SPACED_ECHOES), '-W', '2', TUNNEL_DEFAULTS.serverAddress], { timeout: 60_000, reject: false });
    expect(Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0), r.stdout).toBeGreaterThanOrEqual(SPACED_ECHOES - 5);
    const after = await Promise.all(ends.map(statsOf));
    for (const end of [0, 1]) {
      const d = (k: string): number => after[end]![`busyPoll.${k}`]! - before[end]![`busyPoll.${k}`]!;
      const figures = `${end === 0 ? 'client' : 'server'}: ${d('spins')} spins, ${d('caught')} ended by a frame, ${d('spunUs')} µs spun, ${d('missedUs')} µs of it for nothing, over ${SPACED_ECHOES} echoes`;
      console.log(figures);
      // Each end forwards two frames per echo; after one of them the next comes 2 ms
      // later. Spinning the whole limit (200 µs) there each time would waste 200 µs an
      // echo; learned, those spins stop after a few halvings.
      expect(d('missedUs') / SPACED_ECHOES, figures).toBeLessThan(40);
      // The other spin, waiting for the reply (client) or the kernel's answer (server), pays.
      expect(d('caught'), figures).toBeGreaterThan(SPACED_ECHOES / 2);
    }
  });
});
