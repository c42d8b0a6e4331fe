/**
 * `ctun-run separate --tls DIR` end to end, as a user on a remote PC meets it: the real
 * CLI and images, certificates from `ctun certs`, the PC a network namespace whose
 * only path to the Docker host is one veth. The printed client command (with its TLS
 * flags) reaches the simulator's run-time ports; a client without a certificate, one
 * from another CA and a revoked one (the CRL mounted from DIR) get nothing.
 * And the restrictions the Kubernetes manifests put on their containers (drop ALL,
 * NET_ADMIN only for the tunnel server, the runtime's default seccomp profile) are
 * enough for those containers to do their work, checked by running the rendered
 * arguments and probe under the same restrictions in Docker.
 */
import { TUNNEL_DEFAULTS } from '../../tools/common/index.js';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { revoke } from '../../tools/certs/index.js';
import { makePki, removePki } from '../integration/harness/pki.js';
import { Pc } from '../../tools/demo/pc.js';
import { manifest, renderManifests } from '../../tools/k8s/index.js';
import { SIMULATOR_READY_PATTERN } from '../../tools/simulator/index.js';
import { CTUN, CTUN_RUN, deployUnavailable, docker, deploymentWorld, E2E_IMAGES, leftovers, NODE, pcSession, removeDeployment, sessionOverTunnel, startPrintedClient } from './harness/deploy.js';

const skip = await deployUnavailable();

describe.skipIf(skip)('ctun-run separate --tls, seen from a remote PC', () => {
  const { cleanups, license } = deploymentWorld({ licensePort: 22364, licenseName: 'ctun-e2e-tls-license' });

  it('certificates mounted read-only (never ca.key), UDP and TCP published; the printed TLS client reaches dynamic ports; no certificate, another CA or a revoked one get nothing', async () => {
    const name = 'ctun-e2e-veos-tls';
    const port = 17264;
    await removeDeployment(name);
    const pc = await Pc.create({ index: 64, prefix: 'ctune2e' });
    const pki = await makePki({ serverNames: [pc.hostAddress], clients: ['alice', 'bob'] });
    const other = await makePki({ clients: ['mallory'] });
    await revoke({ out: pki, certs: [join(pki, 'bob.crt')] });
    cleanups.push(
      async () => removePki(pki),
      async () => removePki(other),
      () => pc.destroy(),
      () => removeDeployment(name),
    );

    const r = await execa(
      NODE,
      [
        CTUN_RUN, 'separate', E2E_IMAGES.veos, license().server, '--ctunDockerImage', E2E_IMAGES.separateServer,
        '--host', pc.hostAddress, '--publishAddress', pc.hostAddress, '--hostPort', String(port),
        '--veosDockerContainer', name, '--ctunDockerContainer', `${name}-ctun`, '--dockerNetwork', `${name}-net`,
        '--tls', pki, '--tlsClient', 'alice', '--progress', 'plain',
      ],
      { reject: false, all: true, timeout: 120_000 },
    );
    expect(r.exitCode, r.all).toBe(0);
    const command = /^ {2}(ctun client .*)$/m.exec(r.stdout)![1]!;
    const dest = /--dest (\S+)/.exec(command)![1]!;
    expect(command).toBe(`ctun client ${pc.hostAddress} --port ${port} --dest ${dest} --tls --ca ${pki}/ca.crt --cert ${pki}/alice.crt --key ${pki}/alice.key`);
    expect(r.stdout).toContain(`  tunnel:    ${pc.hostAddress}:${port}/udp on the Docker host (and tcp for the TLS handshake), mutual TLS\n`);

    // What the server container got: four files, each read-only, no CA key; both protocols published.
    const info = (await docker.findContainer(`${name}-ctun`))!;
    expect(info.mounts.map((m) => [m.type, m.source, m.target, !m.readOnly]).sort()).toEqual(
      [
        ['bind', join(pki, 'ca.crl'), '/etc/ctun/tls/ca.crl', false],
        ['bind', join(pki, 'ca.crt'), '/etc/ctun/tls/ca.crt', false],
        ['bind', join(pki, 'server.crt'), '/etc/ctun/tls/server.crt', false],
        ['bind', join(pki, 'server.key'), '/etc/ctun/tls/server.key', false],
      ],
    );
    const bindings = (await execa('docker', ['inspect', '-f', '{{json .HostConfig.PortBindings}}', `${name}-ctun`])).stdout;
    expect(Object.keys(JSON.parse(bindings) as object).sort()).toEqual(['1723/tcp', '1723/udp']);
    const serverLog = async () => (await execa('docker', ['logs', `${name}-ctun`], { all: true })).all;
    expect(await serverLog()).toMatch(/server-listening .*security="mutual TLS: TLS 1\.3 handshake on TCP, datagrams sealed with AES-256-GCM.*revocations from \/etc\/ctun\/tls\/ca\.crl/);

    // The printed command, run on the PC as printed.
    const client = await startPrintedClient(pc, command, cleanups);
    await client.waitFor(/client-connected/, 30_000);
    const by = await sessionOverTunnel(pc, dest, 'tls');
    expect(by.direct.result).not.toBe('connected');

    // Clients that must get nothing, each on a TAP of its own.
    expect((await pc.exec(NODE, [CTUN, 'configure', '--tap', 'dstap1', '192.168.100.101', '--non-interactive'])).exitCode).toBe(0);
    const at = [pc.hostAddress, '--port', String(port), '--tap', 'dstap1', '--dest', dest];
    const tls = (dir: string, who: string) => ['--tls', '--ca', join(pki, 'ca.crt'), '--cert', join(dir, `${who}.crt`), '--key', join(dir, `${who}.key`)];
    const revoked = await pc.exec(NODE, [CTUN, 'client', ...at, ...tls(pki, 'bob')], { timeout: 20_000 });
    expect(revoked.exitCode, revoked.all).toBe(5);
    expect(revoked.all).toMatch(/revoked/);
    const foreign = await pc.exec(NODE, [CTUN, 'client', ...at, ...tls(other, 'mallory')], { timeout: 20_000 });
    expect(foreign.exitCode, foreign.all).toBe(5);
    // No certificate at all: plain datagrams are dropped unanswered; it never connects.
    const plain = await pc.exec(NODE, [CTUN, 'client', ...at], { timeout: 8_000 });
    expect(plain.all).toMatch(/client-starting/);
    expect(plain.all).not.toMatch(/client-connected/);
    const log = await serverLog();
    expect(log).toMatch(/client-refused .*revoked/);
    expect(log).toMatch(/client-refused .*not from our CA/);
    expect(log.match(/client-connected/g)).toHaveLength(1);

    // Alice is still served; then everything goes.
    const [again] = await pcSession((f, a, o) => pc.exec(f, a, o), { mode: 'reach', host: dest, port: 27027 });
    expect(again).toMatchObject({ step: 'reach', result: 'connected' });
    expect(await client.stop()).toBe(0);
    await execa(NODE, [CTUN_RUN, 'clean', '--deployment', name]);
    expect(await leftovers(name)).toEqual([]);
  }, 300_000);

  it('integrated: ctun-run veos --tls --connect on the PC starts the server inside with the files and connects with the client certificate; Ctrl-C removes it all', async () => {
    const name = 'ctun-e2e-veos-tls-int';
    const port = 17265;
    await removeDeployment(name);
    const pc = await Pc.create({ index: 65, prefix: 'ctune2e' });
    const pki = await makePki({ serverNames: [pc.hostAddress], clients: ['alice'] });
    cleanups.push(async () => removePki(pki), () => pc.destroy(), () => removeDeployment(name));
    const run = pc.spawn(
      NODE,
      [
        CTUN_RUN, 'veos', E2E_IMAGES.veosCtun, license().server, '--startCtun', 'yes', '--connect', '--tls', pki,
        '--host', pc.hostAddress, '--publishAddress', pc.hostAddress, '--hostPort', String(port),
        '--veosDockerContainer', name, '--progress', 'plain',
      ],
      { label: 'ctun-run veos --tls --connect' },
    );
    cleanups.push(() => run.stop());
    await run.waitFor(/^connected: the simulator is at 192\.168\.100\.1/m, 90_000);
    expect(run.output).toContain(`  ctun client ${pc.hostAddress} --port ${port} --tls --ca ${pki}/ca.crt --cert ${pki}/alice.crt --key ${pki}/alice.key\n`);
    expect(run.output).toMatch(/client-starting .*security="mutual TLS/);
    // The server under supervisord got the flags through CTUN_ARGS.
    const log = (await execa('docker', ['logs', name], { all: true })).all;
    expect(log).toMatch(/server-listening .*security="mutual TLS: TLS 1\.3 handshake on TCP/);
    expect(log).toMatch(/client-connected .*alice/);
    const [reach] = await pcSession((f, a, o) => pc.exec(f, a, o), { mode: 'reach', host: TUNNEL_DEFAULTS.serverAddress, port: 27027 });
    expect(reach).toMatchObject({ step: 'reach', result: 'connected' });
    run.kill('SIGINT');
    expect(await run.exited).toBe(0);
    expect(await leftovers(name)).toEqual([]);
  }, 180_000);

  it('the K8s manifests\' restrictions suffice: the separate server runs with its rendered TLS+CRL arguments under drop ALL + NET_ADMIN and default seccomp, its probe passes; the simulator runs with no capability at all', async () => {
    const pki = await makePki({ serverNames: ['ctun.test'], clients: [] });
    await revoke({ out: pki, serials: ['0a'] });
    const names = ['ctun-e2e-harden-server', 'ctun-e2e-harden-veos'];
    const rm = () => execa('docker', ['rm', '-f', ...names], { reject: false });
    await rm();
    cleanups.push(async () => removePki(pki), rm);
    const rendered = renderManifests({ tlsSecret: 'ctun-tls', crl: true, transport: 'tcp' });
    const pod = (key: 'separateServer' | 'simulator') => (manifest(rendered, key).objects[0] as any).spec.template.spec;
    const ctun = pod('separateServer').containers.find((c: any) => c.name === 'ctun');
    const veos = pod('simulator').containers.find((c: any) => c.name === 'veos');
    // What the manifests ask for, as docker run flags (Docker's default seccomp profile is the runtime default).
    const caps = (c: any) => [...c.securityContext.capabilities.drop.map((x: string) => `--cap-drop=${x}`), ...(c.securityContext.capabilities.add ?? []).map((x: string) => `--cap-add=${x}`)];
    expect(caps(ctun)).toEqual(['--cap-drop=ALL', '--cap-add=NET_ADMIN']);
    expect(caps(veos)).toEqual(['--cap-drop=ALL']);
    const label = ['--label', 'io.ctun.managed=true', '--label', 'io.ctun.kind=container/test-harden', '--security-opt', 'no-new-privileges'];
    // The Secret's files as the kubelet mounts them: read-only, owned by root, 0400/0600.
    const secret = [['ca.crt', 'ca.crt'], ['server.crt', 'tls.crt'], ['server.key', 'tls.key'], ['ca.crl', 'ca.crl']].flatMap(([from, to]) => ['-v', `${join(pki, from!)}:/etc/ctun/tls/${to}:ro`]);
    const server = await execa('docker', ['run', '-d', '--name', names[0]!, ...label, ...caps(ctun), '--device', '/dev/net/tun', '--sysctl', 'net.ipv4.ip_forward=1', ...secret, E2E_IMAGES.separateServer, ...ctun.args], { reject: false, all: true });
    expect(server.exitCode, server.all).toBe(0);
    const sim = await execa('docker', ['run', '-d', '--name', names[1]!, ...label, ...caps(veos), '-e', `DS_CMU_SERVER=${license().server}`, E2E_IMAGES.veos], { reject: false, all: true });
    expect(sim.exitCode, sim.all).toBe(0);
    const logsOf = async (n: string) => (await execa('docker', ['logs', n], { all: true, reject: false })).all;
    const until = async (n: string, pattern: RegExp, what: string) => {
      const started = Date.now();
      while (Date.now() - started < 60_000) {
        const log = await logsOf(n);
        if (pattern.test(log)) return log;
        const state = (await execa('docker', ['inspect', '-f', '{{.State.Status}}', n], { reject: false })).stdout;
        if (state === 'exited') throw new Error(`${n} exited before ${what}:\n${log}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      throw new Error(`waited 60 s for ${what} from ${n}:\n${await logsOf(n)}`);
    };
    const serverLog = await until(names[0]!, /server-listening/, 'server-listening');
    expect(serverLog).toContain('revocations from /etc/ctun/tls/ca.crl');
    // The manifest's HTTP probes, sent as the kubelet sends them: from outside the
    // container to its address, on the port the probe names.
    const ip = (await execa('docker', ['inspect', '-f', '{{.NetworkSettings.IPAddress}}', names[0]!])).stdout.trim();
    for (const probe of [ctun.readinessProbe, ctun.livenessProbe]) {
      const port = ctun.ports.find((p: any) => p.name === probe.httpGet.port).containerPort;
      const answer = await fetch(`http://${ip}:${port}${probe.httpGet.path}`, { signal: AbortSignal.timeout(5000) });
      expect(answer.status, `${probe.httpGet.path}: ${await answer.text()}`).toBe(200);
    }
    // iptables, which separate mode drives, works with NET_ADMIN alone.
    const nat = await execa('docker', ['exec', names[0]!, 'iptables', '-t', 'nat', '-S'], { reject: false, all: true });
    expect(nat.exitCode, nat.all).toBe(0);
    await until(names[1]!, SIMULATOR_READY_PATTERN, 'the simulator ready line');
  }, 180_000);
});
