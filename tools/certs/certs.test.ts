/**
 * `ctun certs` checked the way a user would check its output: the files are read back
 * with Node's X509Certificate, @peculiar/x509 and `openssl crl`, and the certificates
 * are put to work in a real TLS 1.3 handshake on 127.0.0.1.
 */
import 'reflect-metadata';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { CtunError } from '../common/index.js';
import { initCa, issueClient, issueServer, revoke } from './certs.js';
import { tempDir } from '../lab/testing.js';

const DAY = 86_400_000;

const cert = (path: string): X509Certificate => new X509Certificate(readFileSync(path));
const mode = (path: string): number => statSync(path).mode & 0o777;
const usage = (code = 'USAGE', message?: RegExp) => expect.objectContaining({ name: 'CtunError', code, exitCode: 1, ...(message ? { message: expect.stringMatching(message) } : {}) });

/** One CA with a server and two clients (one revoked), and a second CA with its own client. */
let pki = '';
let other = '';
beforeAll(async () => {
  pki = tempDir('certs-test');
  other = tempDir('certs-test');
  await initCa({ out: pki });
  await issueServer({ out: pki, names: ['127.0.0.1', 'ctun.test,sim.lab', '::1', 'ctun.test'] });
  await issueClient({ out: pki, name: 'alice' });
  await issueClient({ out: pki, name: 'bob' });
  await initCa({ out: other, name: 'other-ca' });
  await issueClient({ out: other, name: 'mallory' });
});

describe('ctun certs init', () => {
  it('makes a self-signed CA (basicConstraints CA:TRUE, pathlen 0, critical; keyCertSign and cRLSign) valid 3650 days, its key 0600 and matching', async () => {
    const ca = cert(join(pki, 'ca.crt'));
    expect(ca.ca).toBe(true);
    expect(ca.subject).toBe('CN=ctun-ca');
    expect(ca.checkIssued(ca)).toBe(true);
    expect(ca.verify(ca.publicKey)).toBe(true);
    expect(ca.publicKey.asymmetricKeyDetails).toMatchObject({ namedCurve: 'prime256v1' });
    const px = new x509.X509Certificate(readFileSync(join(pki, 'ca.crt'), 'utf8'));
    const bc = px.getExtension(x509.BasicConstraintsExtension)!;
    expect({ ca: bc.ca, pathLength: bc.pathLength, critical: bc.critical }).toEqual({ ca: true, pathLength: 0, critical: true });
    const ku = px.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    expect(Math.round((ca.validToDate.getTime() - ca.validFromDate.getTime()) / DAY)).toBe(3650);
    expect(ca.checkPrivateKey(createPrivateKey(readFileSync(join(pki, 'ca.key'))))).toBe(true);
    expect(mode(join(pki, 'ca.key'))).toBe(0o600);
    expect(mode(join(pki, 'ca.crt'))).toBe(0o644);
    expect(mode(pki)).toBe(0o700);
  });

  it('honours --name, --days and a start date, and --force replaces the CA', async () => {
    const dir = tempDir('certs-test');
    const notBefore = new Date('2030-01-01T00:00:00Z');
    const r = await initCa({ out: dir, name: 'lab-ca', days: 30, notBefore });
    const ca = cert(r.cert);
    expect(ca.subject).toBe('CN=lab-ca');
    expect(ca.validFromDate).toEqual(notBefore);
    expect(ca.validToDate).toEqual(new Date(notBefore.getTime() + 30 * DAY));
    expect(r.notAfter).toEqual(ca.validToDate);
    expect(r.serial.toUpperCase()).toBe(ca.serialNumber);
    const again = await initCa({ out: dir, force: true });
    expect(again.serial).not.toBe(r.serial);
    expect(cert(again.cert).subject).toBe('CN=ctun-ca');
    expect(mode(again.key)).toBe(0o600);
  });

  it('refuses to overwrite an existing CA, and leaves it as it was', async () => {
    const dir = tempDir('certs-test');
    await initCa({ out: dir });
    const before = [readFileSync(join(dir, 'ca.crt'), 'utf8'), readFileSync(join(dir, 'ca.key'), 'utf8')];
    await expect(initCa({ out: dir })).rejects.toEqual(usage('CERTS_EXIST', /ca\.key exists already/));
    expect([readFileSync(join(dir, 'ca.crt'), 'utf8'), readFileSync(join(dir, 'ca.key'), 'utf8')]).toEqual(before);
  });

  it('in a folder holding only a distributed ca.crt, refuses without writing a stray ca.key beside it', async () => {
    const dir = tempDir('certs-test');
    writeFileSync(join(dir, 'ca.crt'), readFileSync(join(pki, 'ca.crt')));
    await expect(initCa({ out: dir })).rejects.toEqual(usage('CERTS_EXIST', /ca\.crt exists already/));
    expect(existsSync(join(dir, 'ca.key'))).toBe(false);
    // Otherwise the next `certs client` would sign with a key that is not ca.crt's.
    await expect(issueClient({ out: dir, name: 'alice' })).rejects.toEqual(usage('CA_MISSING'));
  });

  it('refuses --days 0, negative or not a number, and an invalid --name', async () => {
    for (const days of [0, -1, Number.NaN]) await expect(initCa({ out: tempDir('certs-test'), days })).rejects.toEqual(usage('USAGE', /--days must be a positive number/));
    for (const name of ['', 'a/b', '../x', 'has space', 'x'.repeat(65)]) await expect(initCa({ out: tempDir('certs-test'), name })).rejects.toEqual(usage('USAGE', /is not a valid name/));
  });
});

describe('ctun certs server', () => {
  it('lists every DNS name and IP address asked for (comma lists split, duplicates once) as subjectAltNames, with serverAuth; not a CA', async () => {
    const s = cert(join(pki, 'server.crt'));
    expect(s.subject).toBe('CN=server');
    expect(s.subjectAltName!.split(', ').sort()).toEqual(['DNS:ctun.test', 'DNS:sim.lab', 'IP Address:0:0:0:0:0:0:0:1', 'IP Address:127.0.0.1']);
    expect(s.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(s.checkIP('::1')).toBe('::1');
    expect(s.checkHost('ctun.test')).toBe('ctun.test');
    expect(s.checkHost('sim.lab')).toBe('sim.lab');
    expect(s.checkHost('other.test')).toBeUndefined();
    expect(s.checkIP('127.0.0.2')).toBeUndefined();
    expect(s.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // Node reports the extended key usage here: serverAuth
    expect(s.ca).toBe(false);
    const px = new x509.X509Certificate(readFileSync(join(pki, 'server.crt'), 'utf8'));
    expect(px.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual([x509.ExtendedKeyUsage.serverAuth]);
    expect(px.getExtension(x509.BasicConstraintsExtension)!.ca).toBe(false);
    expect(px.getExtension(x509.KeyUsagesExtension)!.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(mode(join(pki, 'server.key'))).toBe(0o600);
    expect(s.checkPrivateKey(createPrivateKey(readFileSync(join(pki, 'server.key'))))).toBe(true);
  });

  it('chains to its CA and to no other; valid 825 days by default, --days honoured', async () => {
    const ca = cert(join(pki, 'ca.crt'));
    const s = cert(join(pki, 'server.crt'));
    expect(s.verify(ca.publicKey)).toBe(true);
    expect(s.checkIssued(ca)).toBe(true);
    expect(s.verify(cert(join(other, 'ca.crt')).publicKey)).toBe(false);
    expect(Math.round((s.validToDate.getTime() - s.validFromDate.getTime()) / DAY)).toBe(825);
    const notBefore = new Date('2031-06-01T12:00:00Z');
    const r = await issueServer({ out: pki, name: 'short', names: ['10.0.0.5'], days: 7, notBefore });
    const short = cert(r.cert);
    expect(short.validFromDate).toEqual(notBefore);
    expect(short.validToDate).toEqual(new Date(notBefore.getTime() + 7 * DAY));
    expect(r).toMatchObject({ names: ['10.0.0.5'], subject: 'CN=short' });
  });

  it('refuses no names, a bad IP address, a bad DNS name, --days <= 0, a missing CA and an existing certificate', async () => {
    await expect(issueServer({ out: pki, name: 'x', names: [] })).rejects.toEqual(usage('USAGE', /needs the names clients dial/));
    await expect(issueServer({ out: pki, name: 'x', names: [' , '] })).rejects.toEqual(usage('USAGE', /needs the names clients dial/));
    // A mistyped address must not slip through as a DNS name that matches nothing.
    for (const bad of ['300.1.1.1', '10.0.0.256', '10.0.1', '010.0.0.1', '12345']) {
      await expect(issueServer({ out: pki, name: 'x', names: [bad] }), bad).rejects.toEqual(usage('USAGE', /is not a valid IP address/));
    }
    for (const bad of ['-bad.test', 'bad_host', 'a..b', 'host name', 'x'.repeat(64) + '.test']) {
      await expect(issueServer({ out: pki, name: 'x', names: [bad] }), bad).rejects.toEqual(usage('USAGE', /neither an IP address nor a DNS name/));
    }
    await expect(issueServer({ out: pki, name: 'x', names: ['10.0.0.1'], days: 0 })).rejects.toEqual(usage('USAGE', /--days/));
    await expect(issueServer({ out: join(pki, 'nowhere'), names: ['10.0.0.1'] })).rejects.toEqual(usage('CA_MISSING', /no CA in/));
    const before = readFileSync(join(pki, 'server.crt'), 'utf8');
    await expect(issueServer({ out: pki, names: ['10.0.0.1'] })).rejects.toEqual(usage('CERTS_EXIST', /server\.key exists already/));
    expect(readFileSync(join(pki, 'server.crt'), 'utf8')).toBe(before);
    expect(existsSync(join(pki, 'x.key'))).toBe(false);
    // A wildcard is a DNS name.
    const w = await issueServer({ out: pki, name: 'wild', names: ['*.lab.test'] });
    expect(cert(w.cert).subjectAltName).toBe('DNS:*.lab.test');
  });
});

describe('ctun certs client', () => {
  it('names the client in its CN, with clientAuth and no subjectAltName; chains to its CA; key 0600', async () => {
    const ca = cert(join(pki, 'ca.crt'));
    const a = cert(join(pki, 'alice.crt'));
    expect(a.subject).toBe('CN=alice');
    expect(a.issuer).toBe('CN=ctun-ca');
    expect(a.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']); // clientAuth
    expect(a.subjectAltName).toBeUndefined();
    expect(a.ca).toBe(false);
    expect(a.verify(ca.publicKey)).toBe(true);
    expect(a.checkIssued(ca)).toBe(true);
    expect(a.checkIssued(cert(join(other, 'ca.crt')))).toBe(false);
    expect(cert(join(other, 'mallory.crt')).verify(ca.publicKey)).toBe(false);
    expect(mode(join(pki, 'alice.key'))).toBe(0o600);
    expect(mode(join(pki, 'alice.crt'))).toBe(0o644);
    expect(a.checkPrivateKey(createPrivateKey(readFileSync(join(pki, 'alice.key'))))).toBe(true);
    expect(a.serialNumber).not.toBe(cert(join(pki, 'bob.crt')).serialNumber);
  });

  it('honours --days; --force replaces an existing certificate, without it the old one stays', async () => {
    const dir = tempDir('certs-test');
    await initCa({ out: dir });
    const notBefore = new Date('2029-03-01T00:00:00Z');
    const r = await issueClient({ out: dir, name: 'dave@lab', days: 2, notBefore });
    expect(cert(r.cert).subject).toBe('CN=dave@lab');
    expect(cert(r.cert).validToDate.getTime() - cert(r.cert).validFromDate.getTime()).toBe(2 * DAY);
    await expect(issueClient({ out: dir, name: 'dave@lab' })).rejects.toEqual(usage('CERTS_EXIST'));
    expect(cert(r.cert).serialNumber).toBe(r.serial.toUpperCase());
    const again = await issueClient({ out: dir, name: 'dave@lab', force: true });
    expect(again.serial).not.toBe(r.serial);
    expect(cert(again.cert).validToDate.getTime() - cert(again.cert).validFromDate.getTime()).toBe(825 * DAY);
    expect(mode(again.key)).toBe(0o600);
  });

  it('refuses an invalid name, the name "ca" (the CA\'s own files), --days <= 0, a missing or unreadable CA, and does not leave a stray key', async () => {
    for (const name of ['', '../alice', 'a/b', '-x', 'x'.repeat(65)]) await expect(issueClient({ out: pki, name }), name).rejects.toEqual(usage('USAGE', /not a valid name/));
    const own = tempDir('certs-test');
    await initCa({ out: own });
    const caBefore = readFileSync(join(own, 'ca.key'), 'utf8');
    await expect(issueClient({ out: own, name: 'ca', force: true })).rejects.toEqual(usage('USAGE', /CA's own file name/));
    await expect(issueServer({ out: own, name: 'ca', names: ['10.0.0.1'], force: true })).rejects.toEqual(usage('USAGE', /CA's own file name/));
    expect(readFileSync(join(own, 'ca.key'), 'utf8')).toBe(caBefore);
    await expect(issueClient({ out: pki, name: 'eve', days: -5 })).rejects.toEqual(usage('USAGE', /--days/));
    await expect(issueClient({ out: tempDir('certs-test'), name: 'eve' })).rejects.toEqual(usage('CA_MISSING', /no CA in/));
    const broken = tempDir('certs-test');
    writeFileSync(join(broken, 'ca.crt'), readFileSync(join(pki, 'ca.crt')));
    writeFileSync(join(broken, 'ca.key'), 'not a key\n');
    await expect(issueClient({ out: broken, name: 'eve' })).rejects.toEqual(usage('CA_INVALID', /cannot be read/));
    // Only alice.crt there (a copy): refused before a new alice.key is written beside it.
    const half = tempDir('certs-test');
    await initCa({ out: half });
    writeFileSync(join(half, 'alice.crt'), readFileSync(join(pki, 'alice.crt')));
    await expect(issueClient({ out: half, name: 'alice' })).rejects.toEqual(usage('CERTS_EXIST', /alice\.crt exists already/));
    expect(existsSync(join(half, 'alice.key'))).toBe(false);
    expect(await issueClient({ out: pki, name: 'x y' }).catch((e: unknown) => e)).toBeInstanceOf(CtunError);
  });
});

describe('ctun certs revoke', () => {
  it('writes a CRL signed by the CA that lists the revoked serials (by file and by serial), and keeps earlier ones', async () => {
    const dir = tempDir('certs-test');
    await initCa({ out: dir });
    const bob = await issueClient({ out: dir, name: 'bob' });
    const carol = await issueClient({ out: dir, name: 'carol' });
    // Serials are kept as hex without leading zeros (a random serial may start with 0).
    const plain = (hex: string): string => hex.toLowerCase().replace(/^0+(?=.)/, '');
    const first = await revoke({ out: dir, certs: [bob.cert] });
    expect(first).toEqual({ crl: join(dir, 'ca.crl'), revoked: [plain(bob.serial)] });
    const second = await revoke({ out: dir, serials: [carol.serial.toUpperCase(), '00ABC'], days: 10 });
    expect(second.revoked).toEqual([plain(bob.serial), plain(carol.serial), 'abc']);
    expect(readFileSync(join(dir, 'revoked.txt'), 'utf8')).toBe(second.revoked.join('\n') + '\n');
    // Revoking the same certificate again (by file, by serial with leading zeros) lists it once.
    const third = await revoke({ out: dir, certs: [bob.cert], serials: ['0' + carol.serial] });
    expect(third.revoked).toEqual(second.revoked);

    // What openssl sees: a CRL that verifies against ca.crt and lists the three serials.
    const out = await execa('openssl', ['crl', '-in', third.crl, '-CAfile', join(dir, 'ca.crt'), '-noout', '-text']);
    expect(out.stderr).toContain('verify OK');
    expect(out.stdout).toContain('Issuer: CN = ctun-ca');
    const listed = [...out.stdout.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) => plain(m[1]!));
    expect(listed).toEqual([plain(bob.serial), plain(carol.serial), 'abc']);

    // What @peculiar/x509 sees: signed by the CA key, nextUpdate as --days asked (3650 by default).
    const crl = new x509.X509Crl(readFileSync(third.crl, 'utf8'));
    const caCert = new x509.X509Certificate(readFileSync(join(dir, 'ca.crt'), 'utf8'));
    expect(await crl.verify({ publicKey: caCert })).toBe(true);
    expect(await crl.verify({ publicKey: new x509.X509Certificate(readFileSync(join(other, 'ca.crt'), 'utf8')) })).toBe(false);
    expect(crl.entries.map((e) => plain(e.serialNumber))).toEqual(third.revoked);
    expect(Math.round((crl.nextUpdate!.getTime() - Date.now()) / DAY)).toBe(3650);
    const tenDays = new x509.X509Crl(readFileSync((await revoke({ out: dir, days: 10 })).crl, 'utf8'));
    expect(Math.round((tenDays.nextUpdate!.getTime() - Date.now()) / DAY)).toBe(10);
    expect(tenDays.entries).toHaveLength(3);
    expect(crl.issuer).toBe('CN=ctun-ca');
  });

  it('the CRL is enforced by OpenSSL: the revoked certificate fails verification, the others pass', async () => {
    const dir = tempDir('certs-test');
    await initCa({ out: dir });
    const bob = await issueClient({ out: dir, name: 'bob' });
    const alice = await issueClient({ out: dir, name: 'alice' });
    await revoke({ out: dir, certs: [bob.cert] });
    const verify = (c: string) => execa('openssl', ['verify', '-crl_check', '-CAfile', join(dir, 'ca.crt'), '-CRLfile', join(dir, 'ca.crl'), c], { reject: false, all: true });
    const b = await verify(bob.cert);
    expect(b.exitCode).not.toBe(0);
    expect(b.all).toContain('certificate revoked');
    expect((await verify(alice.cert)).exitCode).toBe(0);
  });

  it('refuses an unknown client certificate, a serial that is not hex, --days <= 0 and a missing CA', async () => {
    const dir = tempDir('certs-test');
    await initCa({ out: dir });
    await expect(revoke({ out: dir, certs: [join(dir, 'nobody.crt')] })).rejects.toEqual(usage('USAGE', /cannot read certificate .*nobody\.crt/));
    writeFileSync(join(dir, 'garbage.crt'), 'not a certificate');
    await expect(revoke({ out: dir, certs: [join(dir, 'garbage.crt')] })).rejects.toEqual(usage('USAGE', /cannot read certificate/));
    for (const s of ['xyz', '12-34', '', 'a'.repeat(41)]) await expect(revoke({ out: dir, serials: [s] }), s).rejects.toEqual(usage('USAGE', /not a hexadecimal serial/));
    // An expired or unparseable nextUpdate would make every server started with --crl refuse everyone.
    for (const days of [0, -1, Number.NaN]) await expect(revoke({ out: dir, serials: ['abc'], days })).rejects.toEqual(usage('USAGE', /--days/));
    await expect(revoke({ out: join(dir, 'nowhere'), serials: ['abc'] })).rejects.toEqual(usage('CA_MISSING'));
    expect(existsSync(join(dir, 'ca.crl'))).toBe(false);
    expect(existsSync(join(dir, 'revoked.txt'))).toBe(false);
  });
});

describe('the certificates in a real TLS 1.3 handshake on 127.0.0.1', () => {
  const read = (dir: string, f: string): Buffer => readFileSync(join(dir, f));

  /**
   * A mutual-TLS server on 127.0.0.1 (requestCert, our CA) that greets each client it
   * accepts with its CN; a client connects with `clientDir/name` and reports what
   * happened on both ends. With `rejectUnauthorized: false` the server sees why a
   * certificate failed (as ctun's server does) and closes the connection itself.
   */
  async function handshake(name: string, clientDir: string, o: { host?: string; crl?: Buffer; rejectUnauthorized?: boolean } = {}) {
    const serverSide: { accepted?: boolean; authorized?: boolean; why?: string; peer?: string; error?: string } = {};
    const server = tls.createServer(
      {
        cert: read(pki, 'server.crt'),
        key: read(pki, 'server.key'),
        ca: read(pki, 'ca.crt'),
        ...(o.crl ? { crl: o.crl } : {}),
        requestCert: true,
        rejectUnauthorized: o.rejectUnauthorized ?? true,
        minVersion: 'TLSv1.3',
      },
      (socket) => {
        serverSide.accepted = true;
        serverSide.authorized = socket.authorized;
        serverSide.peer = socket.getPeerCertificate().subject?.CN as string | undefined;
        if (socket.authorized) socket.end(`hello ${serverSide.peer}\n`);
        else {
          serverSide.why = String(socket.authorizationError);
          socket.destroy();
        }
      },
    );
    server.on('tlsClientError', (e) => (serverSide.error = e.message));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const client = await new Promise<{ authorized: boolean; protocol: string | null; greeting: string; error?: string }>((resolve) => {
        const socket = tls.connect({
          host: '127.0.0.1',
          port,
          ...(o.host ? { servername: o.host, checkServerIdentity: (_h, c) => tls.checkServerIdentity(o.host!, c) } : {}),
          ca: read(pki, 'ca.crt'),
          cert: read(clientDir, `${name}.crt`),
          key: read(clientDir, `${name}.key`),
          minVersion: 'TLSv1.3',
        });
        let greeting = '';
        let authorized = false;
        let protocol: string | null = null;
        socket.on('secureConnect', () => {
          authorized = socket.authorized;
          protocol = socket.getProtocol();
        });
        socket.on('data', (d) => (greeting += d.toString()));
        socket.on('error', (e) => resolve({ authorized, protocol, greeting, error: `${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}` }));
        socket.on('close', () => resolve({ authorized, protocol, greeting }));
      });
      // In TLS 1.3 the client finishes its side first; the server's verdict may come a moment later.
      for (let i = 0; i < 50 && serverSide.accepted === undefined && serverSide.error === undefined; i++) await new Promise((r) => setTimeout(r, 10));
      return { client, server: serverSide };
    } finally {
      server.close();
    }
  }

  it('a client certificate of the CA: the handshake succeeds both ways, TLS 1.3, socket.authorized on both ends, the server sees the CN', async () => {
    const r = await handshake('alice', pki);
    expect(r.client).toEqual({ authorized: true, protocol: 'TLSv1.3', greeting: 'hello alice\n' });
    expect(r.server).toEqual({ accepted: true, authorized: true, peer: 'alice' });
  });

  it('a client certificate from another CA is refused by the server', async () => {
    // rejectUnauthorized: Node's tls drops the connection before the application sees it.
    const r = await handshake('mallory', other);
    expect(r.client.greeting).toBe('');
    expect(r.server.accepted).toBeUndefined();
    expect(r.server.error).toBeDefined();
    // Verifying itself (as ctun's server does), it sees why.
    const seen = await handshake('mallory', other, { rejectUnauthorized: false });
    expect(seen.client.greeting).toBe('');
    expect(seen.server).toMatchObject({ accepted: true, authorized: false, peer: 'mallory', why: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  });

  it('a revoked client certificate is refused by a server given the CRL; another of the CA still gets in', async () => {
    const { crl } = await revoke({ out: pki, certs: [join(pki, 'bob.crt')] });
    const r = await handshake('bob', pki, { crl: readFileSync(crl) });
    expect(r.client.greeting).toBe('');
    expect(r.server.accepted).toBeUndefined();
    const seen = await handshake('bob', pki, { crl: readFileSync(crl), rejectUnauthorized: false });
    expect(seen.server).toMatchObject({ authorized: false, peer: 'bob', why: 'CERT_REVOKED' });
    expect((await handshake('alice', pki, { crl: readFileSync(crl) })).server).toEqual({ accepted: true, authorized: true, peer: 'alice' });
  });

  it('the client refuses a server whose certificate does not name the host it dials', async () => {
    const good = await handshake('alice', pki, { host: 'ctun.test' });
    expect(good.client.authorized).toBe(true);
    const bad = await handshake('alice', pki, { host: 'elsewhere.test' });
    expect(bad.client.error).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID/);
    expect(bad.client.greeting).toBe('');
  });
});
