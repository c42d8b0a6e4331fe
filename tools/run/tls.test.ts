import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metadata } from '../common/index.js';
import { initCa, issueClient, issueServer, revoke } from '../certs/index.js';
import { clientCommands, planIntegrated, planSeparated } from './plan.js';
import { clientNames, resolveRunTls, withTls } from './tls.js';

const base = { licenseServer: '22350@license.example', runId: 'r1' };
let pki = '';

beforeAll(async () => {
  pki = mkdtempSync(join(tmpdir(), 'ctun-run-tls-'));
  await initCa({ out: pki });
  await issueServer({ out: pki, names: ['127.0.0.1', '10.213.70.1', 'docker.lab', 'fd00::1'] });
  await issueClient({ out: pki, name: 'alice' });
});
afterAll(() => rmSync(pki, { recursive: true, force: true }));

describe('ctun-run --tls DIR', () => {
  it('separated: the server gets the four files read-only, one by one (never ca.key), the TLS flags, and UDP and TCP published', async () => {
    await revoke({ out: pki, serials: ['0a'] });
    try {
      const tls = resolveRunTls(pki, { clientHost: '10.213.70.1' });
      const plan = withTls(planSeparated({ ...base, image: metadata.images.veos, clientHost: '10.213.70.1', publishAddress: '10.213.70.1' }), tls);
      const server = plan.containers.find((c) => c.role === 'ctun-server')!;
      expect(server.mounts).toEqual([
        { source: join(pki, 'ca.crt'), target: '/etc/ctun/tls/ca.crt' },
        { source: join(pki, 'server.crt'), target: '/etc/ctun/tls/server.crt' },
        { source: join(pki, 'server.key'), target: '/etc/ctun/tls/server.key' },
        { source: join(pki, 'ca.crl'), target: '/etc/ctun/tls/ca.crl' },
      ]);
      expect(JSON.stringify(plan)).not.toContain('ca.key');
      expect(server.cmd).toEqual(['--tls', '--ca', '/etc/ctun/tls/ca.crt', '--cert', '/etc/ctun/tls/server.crt', '--key', '/etc/ctun/tls/server.key', '--crl', '/etc/ctun/tls/ca.crl']);
      expect(server.ports).toEqual([
        { container: 1723, protocol: 'udp', host: 1723, hostIp: '10.213.70.1' },
        { container: 1723, protocol: 'tcp', host: 1723, hostIp: '10.213.70.1' },
      ]);
      // The simulator gets nothing of it.
      const veos = plan.containers.find((c) => c.role === 'veos')!;
      expect(veos.mounts).toBeUndefined();
      expect(veos.ports).toEqual([]);
      expect(clientCommands(plan.client!, '172.18.0.2').client).toBe(
        `ctun client 10.213.70.1 --dest 172.18.0.2 --tls --ca ${pki}/ca.crt --cert ${pki}/alice.crt --key ${pki}/alice.key`,
      );
      expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
    } finally {
      unlinkSync(join(pki, 'ca.crl'));
    }
  });

  it('integrated: the flags reach the server inside through CTUN_ARGS, after --transport; over TCP one port only', () => {
    const tls = resolveRunTls(pki, { clientHost: '127.0.0.1' });
    const plan = withTls(planIntegrated({ ...base, image: metadata.images.veosCtun, startCtun: true, transport: 'tcp' }), tls);
    const [veos] = plan.containers;
    expect(veos!.env.CTUN_ARGS).toBe('--transport tcp --tls --ca /etc/ctun/tls/ca.crt --cert /etc/ctun/tls/server.crt --key /etc/ctun/tls/server.key');
    expect(veos!.ports).toEqual([{ container: 1723, protocol: 'tcp', host: 1723, hostIp: '' }]);
    expect(veos!.mounts).toHaveLength(3);
    expect(() => withTls(planIntegrated({ ...base, image: metadata.images.veos }), tls)).toThrow(/--tls needs a tunnel server/);
  });

  it('refuses a folder that would fail later: missing files, no or several client certificates, a server certificate that does not name the host dialled', async () => {
    expect(() => resolveRunTls(join(pki, 'nope'), { clientHost: '127.0.0.1' })).toThrowError(expect.objectContaining({ code: 'TLS_DIR', exitCode: 1, hint: expect.stringContaining('ctun certs init') }));
    expect(() => resolveRunTls(pki, { clientHost: '10.9.9.9' })).toThrowError(/server\.crt does not name 10\.9\.9\.9, the address the client dials \(IP Address:127\.0\.0\.1, IP Address:10\.213\.70\.1, DNS:docker\.lab, IP Address:FD00:0:0:0:0:0:0:1\)/);
    expect(resolveRunTls(pki, { clientHost: 'docker.lab' }).client.name).toBe('alice');
    // An IPv6 --host as the user may write it, bare or in brackets, is the address the certificate names.
    expect(resolveRunTls(pki, { clientHost: '[fd00::1]' }).client.name).toBe('alice');
    expect(resolveRunTls(pki, { clientHost: 'fd00::1' }).client.name).toBe('alice');
    expect(() => resolveRunTls(pki, { clientHost: '[fd00::2]' })).toThrow(/server\.crt does not name fd00::2, the address the client dials/);
    expect(() => resolveRunTls(pki, { clientHost: '127.0.0.1', client: 'bob' })).toThrow(/--tlsClient bob: .* has no bob\.crt with bob\.key/);
    await issueClient({ out: pki, name: 'bob' });
    expect(() => resolveRunTls(pki, { clientHost: '127.0.0.1' })).toThrowError(expect.objectContaining({ message: expect.stringContaining('holds 2 client certificates (alice, bob)'), hint: 'choose one with --tlsClient NAME' }));
    expect(resolveRunTls(pki, { clientHost: '127.0.0.1', client: 'bob' }).client.cert).toBe(join(pki, 'bob.crt'));
    // A key that is not its certificate's: the tunnel's own loader says so, now.
    const empty = mkdtempSync(join(tmpdir(), 'ctun-run-tls-bad-'));
    try {
      for (const f of ['ca.crt', 'server.crt', 'server.key', 'x.crt', 'x.key']) writeFileSync(join(empty, f), 'junk\n');
      expect(() => resolveRunTls(empty, { clientHost: '127.0.0.1' })).toThrowError(expect.objectContaining({ code: 'TLS_FILE' }));
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
    expect(clientNames(['ca.crt', 'ca.key', 'server.crt', 'server.key', 'a.crt', 'a.key', 'b.crt'])).toEqual(['a']);
  });
});
