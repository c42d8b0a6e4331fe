/**
 * Start-up failures, signals and the license stand-in: each case starts its own
 * processes from an installed stand-in, on loopback.
 */
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CtunError } from '../common/index.js';
import {
  LICENSE_GREETING,
  LICENSE_READY_PATTERN,
  licenseStandinCommand,
  parseLicenseReady,
  parseLicenseServer,
  parseSimulatorReady,
  SIMULATOR_ENV,
  SIMULATOR_INSTALL_DIR,
  SIMULATOR_PORTS,
  SIMULATOR_READY_PATTERN,
  simulatorCommand,
  simulatorEnv,
  SimulatorExitCode,
} from './index.js';
import { lineClient } from './client.js';
import { closedPort, installStandin, killAll, startProcess } from './testing.js';

let work: string;
let prefix: string;
const servers: net.Server[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ctun-standin-life-'));
  prefix = await installStandin(work);
});
afterEach(async () => {
  await killAll();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A loopback TCP server that writes `greeting` to each connection. */
async function tcpServer(greeting: string): Promise<number> {
  const server = net.createServer((socket) => socket.end(greeting));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

/** Loopback-only settings with kernel-chosen ports. */
const loopback = (licenseServer: string, extra: Record<string, string> = {}): Record<string, string> => ({
  ...simulatorEnv({
    licenseServer,
    bind: '127.0.0.1',
    discoveryBind: '127.0.0.1',
    ports: { portMapper: 0, xcp: 0, discovery: 0 },
    licenseAttempts: 2,
    licenseRetryDelayMs: 100,
  }),
  ...extra,
});

describe('the simulator agrees with the TypeScript constants', () => {
  it('has the defaults, variable names, exit codes and lines exported here', async () => {
    const { stdout } = await execa(simulatorCommand(prefix)[0]!, [...simulatorCommand(prefix).slice(1), '--describe'], { timeout: 10_000 });
    const described = JSON.parse(stdout);
    expect(described.settings).toEqual({
      [SIMULATOR_ENV.portMapperPort]: SIMULATOR_PORTS.portMapper,
      [SIMULATOR_ENV.xcpPort]: SIMULATOR_PORTS.xcp,
      [SIMULATOR_ENV.discoveryPort]: SIMULATOR_PORTS.discovery,
      [SIMULATOR_ENV.licenseAttempts]: 5,
      [SIMULATOR_ENV.licenseRetryDelayMs]: 1000,
      [SIMULATOR_ENV.xcpDaqIntervalMs]: 100,
      [SIMULATOR_ENV.xcpDaqCount]: 600,
    });
    expect(described.defaultLicensePort).toBe(SIMULATOR_PORTS.license);
    expect(described.licenseGreeting).toBe(LICENSE_GREETING);
    expect(described.exitCodes).toEqual({
      ok: SimulatorExitCode.Ok,
      config: SimulatorExitCode.Config,
      license: SimulatorExitCode.LicenseUnreachable,
      noLicenseServer: SimulatorExitCode.LicenseServerUnset,
      bind: SimulatorExitCode.Bind,
    });
    const line = (described.ready as string).replace('{}', '27027').replace('{}', '5555').replace('{}', '27028');
    expect(parseSimulatorReady(line)).toEqual({ portMapper: 27027, xcp: 5555, discovery: 27028 });
  });
});

describe('license check', () => {
  it('exits with its own code and one clear line when the license server stays unreachable', async () => {
    const port = await closedPort();
    const sim = startProcess(simulatorCommand(prefix), loopback(`${port}@127.0.0.1`));
    const exit = await sim.waitExit(5000);
    expect(exit.code).toBe(SimulatorExitCode.LicenseUnreachable);
    expect(sim.stderr().trim().split('\n')).toEqual([
      `veos-standin: error: license server 127.0.0.1:${port} (DS_CMU_SERVER=${port}@127.0.0.1) unreachable ` +
        'after 2 attempt(s) 100 ms apart: connection refused; start the license server (or license_standin.py) ' +
        'and check that this host reaches it',
    ]);
    expect(sim.stdout().match(/license check server=/g)).toHaveLength(2);
    expect(sim.stdout()).not.toMatch(SIMULATOR_READY_PATTERN);
  });

  it('fails the same way when something else answers on the license port', async () => {
    const port = await tcpServer('SSH-2.0-OpenSSH_9.6\r\n');
    const sim = startProcess(simulatorCommand(prefix), loopback(`${port}@127.0.0.1`));
    expect((await sim.waitExit(5000)).code).toBe(SimulatorExitCode.LicenseUnreachable);
    expect(sim.stderr()).toContain("it answered b'SSH-2.0-OpenSSH_9.6\\r\\n' instead of the license greeting");
  });

  it('accepts "host" alone and tries the default port 22350', async () => {
    const sim = startProcess(simulatorCommand(prefix), loopback('127.0.0.1', { [SIMULATOR_ENV.licenseAttempts]: '1' }));
    await sim.waitFor(/license check server=127\.0\.0\.1:22350 attempt=1\/1/);
  });

  it('exits with its own code when DS_CMU_SERVER is not set', async () => {
    const env = loopback('');
    delete env[SIMULATOR_ENV.licenseServer];
    const sim = startProcess(simulatorCommand(prefix), env);
    expect((await sim.waitExit()).code).toBe(SimulatorExitCode.LicenseServerUnset);
    expect(sim.stderr()).toMatch(/^veos-standin: error: DS_CMU_SERVER is not set: set it to the license server as 'host' or 'port@host'/);
  });

  it('rejects a malformed DS_CMU_SERVER with the same code', async () => {
    for (const [value, says] of [
      ['license@host', "'license' is not a port"],
      ['@127.0.0.1', "'' is not a port"],
      ['22350@', 'names no host'],
    ] as const) {
      const sim = startProcess(simulatorCommand(prefix), loopback(value));
      expect((await sim.waitExit()).code, value).toBe(SimulatorExitCode.LicenseServerUnset);
      expect(sim.stderr(), value).toContain(says);
    }
  });
});

describe('configuration and listeners', () => {
  it('names a bad environment value and exits with the configuration code', async () => {
    const sim = startProcess(simulatorCommand(prefix), loopback('1@127.0.0.1', { [SIMULATOR_ENV.xcpPort]: 'fast' }));
    expect((await sim.waitExit()).code).toBe(SimulatorExitCode.Config);
    expect(sim.stderr()).toContain("VEOS_STANDIN_XCP_PORT='fast' is not a whole number from 0 to 65535");
  });

  it('exits with the bind code when its port is taken', async () => {
    const license = await tcpServer(`${LICENSE_GREETING}\n`);
    const taken = await tcpServer('');
    const sim = startProcess(
      simulatorCommand(prefix),
      loopback(`${license}@127.0.0.1`, { [SIMULATOR_ENV.portMapperPort]: String(taken) }),
    );
    expect((await sim.waitExit()).code).toBe(SimulatorExitCode.Bind);
    expect(sim.stderr()).toContain(`cannot listen for the port mapper (TCP) on 127.0.0.1:${taken} (VEOS_STANDIN_PORTMAPPER_PORT)`);
  });
});

describe('signals', () => {
  it('stops cleanly on SIGTERM with exit code 0 and closes its ports', async () => {
    const license = await tcpServer(`${LICENSE_GREETING}\n`);
    const sim = startProcess(simulatorCommand(prefix), loopback(`${license}@127.0.0.1`));
    const ports = parseSimulatorReady(await sim.waitFor(SIMULATOR_READY_PATTERN))!;
    const mapper = await lineClient('127.0.0.1', ports.portMapper);
    mapper.send('OPEN TCP before-stop');
    const opened = Number(/^OK (\d+)$/.exec(await mapper.next())?.[1]);

    const started = Date.now();
    sim.child.kill('SIGTERM');
    const exit = await sim.waitExit(3000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(1500);
    expect(sim.stdout()).toMatch(/veos-standin stopped signal=SIGTERM/);
    expect(sim.stderr()).toBe('');
    for (const port of [ports.portMapper, opened]) {
      await expect(lineClient('127.0.0.1', port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    }
    mapper.close();
  });

  it('stops cleanly on SIGTERM while still retrying the license server', async () => {
    const port = await closedPort();
    const sim = startProcess(
      simulatorCommand(prefix),
      loopback(`${port}@127.0.0.1`, { [SIMULATOR_ENV.licenseAttempts]: '50', [SIMULATOR_ENV.licenseRetryDelayMs]: '1000' }),
    );
    await sim.waitFor(/license check .* attempt=1\/50/);
    sim.child.kill('SIGTERM');
    expect(await sim.waitExit(2000)).toEqual({ code: 0, signal: null });
  });
});

describe('license stand-in', () => {
  it('greets every connection and stops on SIGTERM with 0', async () => {
    const lic = startProcess(licenseStandinCommand(prefix, 0, '127.0.0.1'));
    const port = parseLicenseReady(await lic.waitFor(LICENSE_READY_PATTERN))!;
    for (let i = 0; i < 2; i++) {
      const client = await lineClient('127.0.0.1', port);
      expect(await client.next()).toBe(LICENSE_GREETING);
      await expect(client.next(1000)).rejects.toThrow(/closed/);
    }
    expect(lic.stdout().match(/license connection peer=127\.0\.0\.1:\d+/g)).toHaveLength(2);
    lic.child.kill('SIGTERM');
    expect(await lic.waitExit(2000)).toEqual({ code: 0, signal: null });
  });

  it('takes its port from the environment when not given', async () => {
    const port = await closedPort();
    const argv = licenseStandinCommand(prefix).slice(0, 3); // without --port
    const lic = startProcess([...argv, '--bind', '127.0.0.1'], { [SIMULATOR_ENV.licenseStandinPort]: String(port) });
    expect(parseLicenseReady(await lic.waitFor(LICENSE_READY_PATTERN))).toBe(port);
  });

  it('exits 2 on a bad port and 5 on a taken one', async () => {
    const bad = startProcess(licenseStandinCommand(prefix, 70000, '127.0.0.1'));
    expect((await bad.waitExit()).code).toBe(2);
    expect(bad.stderr()).toContain("'70000' is not a port");
    const taken = await tcpServer('');
    const busy = startProcess(licenseStandinCommand(prefix, taken, '127.0.0.1'));
    expect((await busy.waitExit()).code).toBe(SimulatorExitCode.Bind);
    expect(busy.stderr()).toContain(`license-standin: error: cannot listen on 127.0.0.1:${taken}`);
  });
});

describe('commands and settings', () => {
  it('starts the programs from the install directory', () => {
    expect(simulatorCommand()).toEqual(['python3', '-u', `${SIMULATOR_INSTALL_DIR}/bin/veos_standin.py`]);
    expect(licenseStandinCommand()).toEqual(['python3', '-u', `${SIMULATOR_INSTALL_DIR}/bin/license_standin.py`, '--port', '22350']);
    expect(licenseStandinCommand('/x', 1, '10.0.0.1')).toEqual(['python3', '-u', '/x/bin/license_standin.py', '--port', '1', '--bind', '10.0.0.1']);
  });

  it('parses DS_CMU_SERVER values as the simulator does', () => {
    expect(parseLicenseServer('license.example')).toEqual({ host: 'license.example', port: 22350 });
    expect(parseLicenseServer(' 27000@10.0.0.5 ')).toEqual({ host: '10.0.0.5', port: 27000 });
    expect(parseLicenseServer('22350@[fd00::1]')).toEqual({ host: 'fd00::1', port: 22350 });
    for (const bad of ['', '@host', 'abc@host', '0@host', '70000@host', '22350@']) {
      expect(() => parseLicenseServer(bad), bad).toThrow(CtunError);
    }
    try {
      parseLicenseServer('abc@host');
    } catch (e) {
      expect(e).toMatchObject({ code: 'LICENSE_SERVER_INVALID' });
      expect((e as CtunError).hint).toContain('port@host');
    }
  });

  it('sets only the variables asked for', () => {
    expect(simulatorEnv({ licenseServer: 'lic', ports: { xcp: 0 } })).toEqual({
      DS_CMU_SERVER: 'lic',
      VEOS_STANDIN_XCP_PORT: '0',
    });
  });
});
