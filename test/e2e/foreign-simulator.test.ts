/**
 * Any simulator image, not the stand-in: ctun-run finds a simulator ready by what any
 * simulator has — a TCP port that accepts (27027 by default), probed from the
 * deployment's own network — and the tunnel reaches a port it opens at run time.
 *
 * The images are built here, from test/fixtures/foreign/, and print nothing ctun
 * knows: the separated deployment runs a plain image FROM debian:12 (socat, no
 * Python, no supervisord, not built by ctun-build); the integrated one a tarball NOT
 * in dSPACE's layout (setup.sh and a Python script, no install.sh, no VERSION) built
 * by `ctun-build veos … --installCtun yes --installCommand … --entryPoint …`. Their
 * port mapper answers the number of an echo port chosen at run time. The PC is a
 * network namespace whose only path to the Docker host is one veth (tools/demo/pc.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, metadata, TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { connectDocker } from '../../tools/docker/index.js';
import { EULA_LITERAL, executeBuildPlan, makeSeedWheels, planCtun, projectPaths } from '../../tools/image/index.js';
import { Pc } from '../../tools/demo/pc.js';
import { ctunBuild, dockerCli } from '../fixtures/build/images.js';
import { CTUN, CTUN_RUN, deployUnavailable, leftovers, NODE, removeDeployment, ROOT } from './harness/deploy.js';

const skip = await deployUnavailable();
const PREFIX = 'ctun-e2e-foreign';
const FIXTURE = join(ROOT, 'test/fixtures/foreign');
const IMAGES = {
  plain: `${PREFIX}/acme-sim:1`,
  integrated: `${PREFIX}/acme/sim:1-ctun`,
  separateServer: `${PREFIX}/${metadata.images.separateServer}`,
};
// The foreign simulators ignore it; ctun-run passes it as DS_CMU_SERVER as for any simulator.
const LICENSE = '22350@127.0.0.1';

/** From the PC: ask the port mapper for the run-time port, then echo a line through it. */
const SESSION = [
  "const net=require('net');const host=process.argv[1];",
  'const ask=(port,send)=>new Promise((ok,fail)=>{const s=net.connect({host,port});let d="";',
  's.setTimeout(5000,()=>{s.destroy();fail(new Error(`no answer from ${host}:${port}`))});',
  "s.on('connect',()=>{if(send)s.write(send)});s.on('data',(b)=>{d+=b;if(d.includes('\\n')){s.destroy();ok(d.trim())}});",
  "s.on('error',fail);s.on('end',()=>ok(d.trim()))});",
  '(async()=>{const port=Number(await ask(27027));const echo=await ask(port,"ping over the tunnel\\n");',
  'console.log(JSON.stringify({port,echo}))})().catch((e)=>{console.log(JSON.stringify({error:String(e.message)}));process.exit(1)});',
].join('');

async function session(pc: Pc, host: string): Promise<{ port?: number; echo?: string; error?: string }> {
  const r = await pc.exec(NODE, ['-e', SESSION, host], { timeout: 30_000 });
  return JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{')) ?? JSON.stringify({ error: r.all }));
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

describe.skipIf(skip)('a simulator image that is not the stand-in', () => {
  beforeAll(async () => {
    const started = Date.now();
    const docker = connectDocker();
    const built: string[] = [];
    if (!(await docker.imageExists('debian:12'))) throw new Error('needs the base image debian:12: ctun-build base --distro debian --suite bookworm');
    const plain = await dockerCli(['build', '-q', '--label', 'io.ctun.test=foreign-simulator', '-t', IMAGES.plain, FIXTURE], 300_000);
    if (plain.exitCode !== 0) throw new Error(`docker build of ${IMAGES.plain} failed:\n${plain.all}`);
    // Built every run: a tag left by an earlier run may hold an older tunnel (the build
    // caches make a rebuild of unchanged code quick).
    {
      const paths = projectPaths();
      await executeBuildPlan(planCtun({ eula: EULA_LITERAL, baseImage: 'debian:12', tagPrefix: PREFIX }, paths, ['separate-server']), {
        docker,
        logger: createLogger({ level: 'warn' }),
        paths,
        progress: 'silent',
      });
      built.push(IMAGES.separateServer);
    }
    {
      const work = await mkdtemp(join(tmpdir(), 'ctun-e2e-foreign-'));
      try {
        await makeSeedWheels({ outDir: join(work, 'wheels'), logger: createLogger({ level: 'warn' }) });
        const tarball = join(work, 'acme-sim-1.0.tar.gz');
        await execa('tar', ['-czf', tarball, '-C', FIXTURE, 'acme-sim-1.0']);
        const r = await ctunBuild([
          'veos', 'online', EULA_LITERAL, 'acme/sim:1-ctun', tarball, '--installCtun', 'yes',
          '--installCommand', 'sh ./setup.sh', '--entryPoint', 'python3 -u /opt/acme/acme_sim.py', '--installDir', '/opt/acme',
          '--baseImage', 'debian:12', '--wheels', join(work, 'wheels'), '--tagPrefix', PREFIX, '--progress', 'plain',
        ]);
        if (r.exitCode !== 0) throw new Error(`ctun-build veos of the foreign tarball failed:\n${r.all}`);
      } finally {
        await rm(work, { recursive: true, force: true });
      }
      built.push(IMAGES.integrated);
    }
    console.log(`foreign simulator images ready in ${((Date.now() - started) / 1000).toFixed(0)} s${built.length ? ` (built ${built.join(', ')})` : ''}`);
  }, 900_000);
  // The images stay (like the other tests' images) so that a rerun reuses their layers;
  // all carry the ctun-e2e-foreign/ prefix, the plain one also the io.ctun.test label.

  it('separated: ctun-run separate finds it ready on 27027 (probed from the tunnel server) and the PC reaches its run-time port through the tunnel', async () => {
    const name = 'ctun-e2e-foreign-sep';
    const port = 17272;
    await removeDeployment(name);
    const pc = await Pc.create({ index: 72, prefix: 'ctunfor' });
    cleanups.push(() => pc.destroy(), () => removeDeployment(name));

    const r = await execa(
      NODE,
      [
        CTUN_RUN, 'separate', IMAGES.plain, LICENSE, '--ctunDockerImage', IMAGES.separateServer,
        '--host', pc.hostAddress, '--publishAddress', pc.hostAddress, '--hostPort', String(port),
        '--veosDockerContainer', name, '--ctunDockerContainer', `${name}-ctun`, '--dockerNetwork', `${name}-net`, '--progress', 'plain', '--timeout', '60',
      ],
      { reject: false, all: true, timeout: 120_000 },
    );
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toContain('simulator: ready (tcp:27027 accept)');
    expect(r.all).toMatch(/wait for the simulator accepting on TCP 27027 and the tunnel server/);
    // It printed nothing at all: readiness came from the port alone.
    expect((await dockerCli(['logs', name])).all).toBe('');
    const command = /^ {2}(ctun client .*)$/m.exec(r.stdout)![1]!;
    const dest = /--dest (\S+)$/.exec(command)![1]!;
    expect(await pc.routeTo(dest)).toBe(false);

    expect((await pc.exec(NODE, [CTUN, 'configure', '--tap', TUNNEL_DEFAULTS.clientTap, TUNNEL_DEFAULTS.clientAddress, '--non-interactive'])).exitCode).toBe(0);
    const client = pc.spawn(NODE, [CTUN, ...command.split(' ').slice(1)], { label: command });
    cleanups.push(() => client.stop());
    await client.waitFor(/client-connected/, 20_000);

    const s = await session(pc, dest);
    expect(s.error).toBeUndefined();
    expect(s.port).toBeGreaterThanOrEqual(20000);
    expect(s.echo).toBe('ping over the tunnel');

    expect(await client.stop()).toBe(0);
    await execa(NODE, [CTUN_RUN, 'clean', '--deployment', name]);
    expect(await leftovers(name)).toEqual([]);
  });

  it('integrated: ctun-run veos --startCtun yes --connect on an image built from a tarball of another layout; the port chosen at run time answers over the tunnel', async () => {
    const name = 'ctun-e2e-foreign-int';
    const port = 17271;
    await removeDeployment(name);
    const pc = await Pc.create({ index: 71, prefix: 'ctunfor' });
    cleanups.push(() => pc.destroy(), () => removeDeployment(name));

    const run = pc.spawn(
      NODE,
      [
        CTUN_RUN, 'veos', IMAGES.integrated, LICENSE, '--startCtun', 'yes', '--connect',
        '--host', pc.hostAddress, '--publishAddress', pc.hostAddress, '--hostPort', String(port),
        '--veosDockerContainer', name, '--progress', 'plain', '--timeout', '60',
      ],
      { label: 'ctun-run veos --connect' },
    );
    cleanups.push(() => run.stop());
    await run.waitFor(/^connected: the simulator is at 192\.168\.100\.1 \(port mapper 27027\)/m, 90_000);
    expect(run.output).toContain('simulator: ready (tcp:27027 accept), at 192.168.100.1 through the tunnel');
    // supervisord and the tunnel server log; the simulator itself says nothing ctun knows.
    expect((await dockerCli(['logs', name])).all).not.toMatch(/stand-in|portmapper=/);

    const s = await session(pc, TUNNEL_DEFAULTS.serverAddress);
    expect(s.error).toBeUndefined();
    expect(s.echo).toBe('ping over the tunnel');

    run.kill('SIGINT');
    expect(await run.exited).toBe(0);
    expect(await leftovers(name)).toEqual([]);
  });

  it('a ready port that never opens: the wait ends after --timeout, saying what was probed, from where, how often', async () => {
    const name = 'ctun-e2e-foreign-late';
    await removeDeployment(name);
    cleanups.push(() => removeDeployment(name));
    const r = await execa(
      NODE,
      [
        CTUN_RUN, 'separate', IMAGES.plain, LICENSE, '--ctunDockerImage', IMAGES.separateServer, '--readyPort', 'tcp:4444', '--timeout', '5',
        '--hostPort', '17273', '--publishAddress', '127.0.0.1', '--veosDockerContainer', name, '--ctunDockerContainer', `${name}-ctun`, '--dockerNetwork', `${name}-net`, '--progress', 'plain',
      ],
      { reject: false, all: true, timeout: 90_000 },
    );
    expect(r.exitCode, r.all).toBe(7);
    expect(r.stderr).toMatch(
      new RegExp(`ctun-run: error: waited 5 s for the simulator accepting on TCP 4444 \\(\\d+\\.\\d+\\.\\d+\\.\\d+:4444 from container ${name}-ctun: \\d+ attempts, last ECONNREFUSED\\) in container ${name}`),
    );
    expect(r.stderr).toContain('--readyPort tcp:N');
    expect(await leftovers(name)).toEqual([]);
  });
});
