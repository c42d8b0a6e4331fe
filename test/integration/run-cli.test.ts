/**
 * The ctun-run CLI itself: --print-plan shows the plan and starts nothing (no daemon
 * needed), usage errors are one line and a hint with exit code 1.
 */
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { metadata } from '../../tools/common/index.js';
import type { DeploymentPlan } from '../../tools/run/index.js';
import { NODE, ROOT } from './harness/netns.js';

const CTUN_RUN = `${ROOT}bin/ctun-run.js`;
const run = (args: string[]) => execa(NODE, [CTUN_RUN, ...args], { reject: false, timeout: 60_000, env: { DOCKER_HOST: 'unix:///nonexistent.sock' } });

describe('ctun-run CLI', () => {
  it('--print-plan prints the integrated plan as JSON without touching Docker', async () => {
    const r = await run(['veos', metadata.images.veosCtun, '22350@10.0.0.5', '--startCtun', 'yes', '--shmSize', '512m', '--print-plan']);
    expect(r.exitCode, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as DeploymentPlan;
    expect(plan.kind).toBe('integrated');
    expect(plan.containers[0]).toMatchObject({
      name: 'dspace-veos',
      env: { DS_CMU_SERVER: '22350@10.0.0.5', CTUN_START: 'yes' },
      capAdd: ['NET_ADMIN'],
      devices: ['/dev/net/tun'],
      shmSize: 512 * 1024 * 1024,
      ports: [{ container: 1723, protocol: 'udp', host: 1723, hostIp: '' }],
    });
  });

  it('--print-plan prints the separated plan: one private network, the server with forwarding', async () => {
    const r = await run(['separate', metadata.images.veos, 'lic.example', '--dockerNetwork', 'my-net', '--print-plan']);
    expect(r.exitCode, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as DeploymentPlan;
    expect(plan.network?.name).toBe('my-net');
    expect(plan.containers.map((c) => `${c.role}:${c.name}:${c.network}`)).toEqual(['veos:dspace-veos:my-net', 'ctun-server:dspace-ctun-server:my-net']);
    expect(plan.containers[1]!.sysctls).toEqual({ 'net.ipv4.ip_forward': '1' });
  });

  it('bad input: one line, a hint, exit 1', async () => {
    const shm = await run(['veos', 'img', 'lic', '--shmSize', 'huge']);
    expect(shm.exitCode).toBe(1);
    expect(shm.stderr).toBe('ctun-run: error: --shmSize must be a size like 256m or 1g, got "huge"\nctun-run: hint: units as for docker run --shm-size: b, k, m, g');
    const lic = await run(['separate', 'img', '70000@host']);
    expect(lic.exitCode).toBe(1);
    expect(lic.stderr).toContain('ctun-run: error: License server "70000@host" has "70000" where a port (1-65535) belongs');
    expect(lic.stderr).toContain('ctun-run: hint: give the license server as host or port@host');
    const start = await run(['veos', 'img', 'lic', '--startCtun', 'maybe']);
    expect(start.stderr).toContain('--startCtun takes yes or no, got "maybe"');
    const none = await run([]);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toContain('give a command: veos, separate, status, stop, clean or k8s');
  });

  it('without a reachable daemon, status says how to start it', async () => {
    const r = await run(['status']);
    expect(r.exitCode).toBe(7);
    expect(r.stderr).toMatch(/^ctun-run: error: cannot reach the Docker daemon/m);
    expect(r.stderr).toMatch(/^ctun-run: hint: start it/m);
  });
});
