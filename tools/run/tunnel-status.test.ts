import { describe, expect, it } from 'vitest';
import type { Figures } from '../tunnel/index.js';
import type { DeploymentStatus } from './manage.js';
import { formatStatusWithTunnel, withTunnelStatus } from './tunnel-status.js';

const server: Figures = {
  role: 'server',
  frames: { rx: 120, tx: 80 },
  bytes: { rx: 20480, tx: 10240 },
  drops: { queue: 0, invalid: 3, refused: 1 },
  sessions: 1,
  macs: 2,
  clients: [{ session: 'fd6404da', peer: '10.213.62.2:40756', identity: 'alice', since: '2026-12-02T05:00:00.000Z', attached: true, dest: '172.18.0.2', bytes: { rx: 20480, tx: 10240 }, frames: { rx: 120, tx: 80 }, drops: 0 }],
};

const deployment = (kind: string, containers: Array<[role: string, name: string, state: string]>): DeploymentStatus => ({
  deployment: containers[0]![1],
  kind,
  containers: containers.map(([role, name, state]) => ({ name, role, image: 'img', state, exitCode: 0, networks: {}, ports: {} })),
  networks: [],
});

describe('ctun-run status: the tunnel inside each deployment', () => {
  it('asks the tunnel server inside its container (ctun status --json on its loopback endpoint) and shows clients, bytes and drops', async () => {
    const asked: string[] = [];
    const engine = {
      exec: async (id: string, argv: string[]) => {
        asked.push(`${id}: ${argv.join(' ')}`);
        if (id === 'old-sep-ctun') return { exitCode: 7, output: 'ctun: error: no tunnel status at http://127.0.0.1:9723/status (ECONNREFUSED)\nctun: hint: …' };
        if (id === 'plain') return { exitCode: 127, output: 'OCI runtime exec failed: exec: "ctun": executable file not found in $PATH' };
        return { exitCode: 0, output: JSON.stringify(server) };
      },
    };
    const list = await withTunnelStatus(engine, [
      deployment('separated', [['veos', 'sep', 'running'], ['ctun-server', 'sep-ctun', 'running']]),
      deployment('separated', [['veos', 'old-sep', 'running'], ['ctun-server', 'old-sep-ctun', 'running']]),
      deployment('integrated', [['veos', 'plain', 'running']]),
      deployment('integrated', [['veos', 'gone', 'exited']]),
    ]);
    expect(asked).toEqual(['sep-ctun: ctun status --json', 'old-sep-ctun: ctun status --json', 'plain: ctun status --json']);
    expect(list[0]!.tunnel).toEqual({ container: 'sep-ctun', figures: server });
    expect(list[1]!.tunnel!.error).toMatch(/ECONNREFUSED/);
    expect(list[2]!.tunnel!.error).toBe('no tunnel server in this container (no ctun in its image)');
    expect(list[3]!.tunnel!.error).toBe('gone is exited');
    const text = formatStatusWithTunnel(list);
    expect(text).toContain('  tunnel server: 1 client(s) connected, 1 session(s), 2 MAC(s)\n');
    expect(text).toContain('    bytes in 20.0 KiB (120 frames), out 10.0 KiB (80 frames); drops 4 (invalid 3, refused 1)\n');
    expect(text).toContain('    client 10.213.62.2:40756 alice  since 2026-12-02T05:00:00.000Z  in 20.0 KiB  out 10.0 KiB  drops 0  dest 172.18.0.2\n');
    expect(text).toContain('  tunnel      no figures from old-sep-ctun: ctun: error: no tunnel status at http://127.0.0.1:9723/status (ECONNREFUSED)\n');
  });
});
