import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mirrorFromSources, parseDeb822, parseOneLine, readAptSources, releaseFromImage, renderAptSources, resolveRelease, resolveServer } from './apt.js';
import { tempDir } from '../lab/testing.js';

// Example mirrors use reserved documentation names (RFC 2606) and addresses (RFC 5737).
const DEB822 = `Types: deb
# a comment line inside a stanza
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://mirror.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://disabled.example.org/debian
Suites: bookworm
Components: main
Enabled: no
`;

const ONE_LINE = `# comment
deb http://mirror.example.org/ubuntu jammy main restricted
deb [arch=amd64 signed-by=/etc/apt/keyrings/x.gpg] http://mirror.example.org/ubuntu jammy-updates main
deb-src http://mirror.example.org/ubuntu jammy main
deb http://security.example.org/ubuntu/ jammy-security main # trailing comment
`;

describe('parsing apt sources', () => {
  it('reads deb822 stanzas and skips disabled ones', () => {
    const s = parseDeb822(DEB822);
    expect(s).toHaveLength(2);
    expect(s[1]).toEqual({
      types: ['deb', 'deb-src'],
      uris: ['http://mirror.example.org/debian-security'],
      suites: ['bookworm-security'],
      components: ['main'],
      signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg',
    });
    expect(mirrorFromSources(s, 'bookworm')).toEqual({
      archive: 'http://mirror.example.org/debian',
      security: 'http://mirror.example.org/debian-security',
    });
  });

  it('reads one-line entries with options and comments', () => {
    const s = parseOneLine(ONE_LINE);
    expect(s.map((x) => `${x.types[0]} ${x.uris[0]} ${x.suites[0]}`)).toEqual([
      'deb http://mirror.example.org/ubuntu jammy',
      'deb http://mirror.example.org/ubuntu jammy-updates',
      'deb-src http://mirror.example.org/ubuntu jammy',
      'deb http://security.example.org/ubuntu/ jammy-security',
    ]);
    expect(s[1]!.signedBy).toBe('/etc/apt/keyrings/x.gpg');
    expect(mirrorFromSources(s, 'jammy')).toEqual({ archive: 'http://mirror.example.org/ubuntu', security: 'http://security.example.org/ubuntu' });
  });

  it('reads a whole /etc/apt directory in both formats', async () => {
    const dir = tempDir('apt');
    await mkdir(join(dir, 'sources.list.d'));
    await writeFile(join(dir, 'sources.list'), '');
    await writeFile(join(dir, 'sources.list.d', 'debian.sources'), DEB822);
    await writeFile(join(dir, 'sources.list.d', 'extra.list'), 'deb http://extra.example.org/debian bookworm main\n');
    await writeFile(join(dir, 'sources.list.d', 'x.list.disabled'), 'deb http://no.example.org/ bookworm main\n');
    const s = await readAptSources(dir);
    expect(s.map((x) => x.uris[0])).toEqual([
      'http://mirror.example.org/debian',
      'http://mirror.example.org/debian-security',
      'http://extra.example.org/debian',
    ]);
  });

  it('reads the host configuration of this machine', async () => {
    // Whatever the host uses, it must yield an archive URL for its own release.
    const s = await readAptSources();
    const suite = s.flatMap((x) => x.suites).find((x) => !x.includes('-'));
    // No sources is a failure, not a silent pass: CI machines (.ci/run) have apt sources.
    if (!suite) expect.fail('no apt source with a release suite in /etc/apt: this test needs a Debian/Ubuntu host with apt sources configured');
    expect(mirrorFromSources(s, suite)?.archive).toMatch(/^https?:\/\//);
  });
});

describe('releases', () => {
  it('knows the formats', () => {
    expect(resolveRelease('debian', '12')).toMatchObject({ suite: 'bookworm', format: 'deb822' });
    expect(resolveRelease('debian', 'bullseye')).toMatchObject({ version: '11', format: 'one-line' });
    expect(resolveRelease('ubuntu', '22.04')).toMatchObject({ suite: 'jammy', format: 'one-line' });
    expect(resolveRelease('ubuntu', 'noble')).toMatchObject({ version: '24.04', format: 'deb822' });
    expect(() => resolveRelease('ubuntu', '99.99')).toThrow(/unknown ubuntu release/);
    expect(releaseFromImage('registry.example:5000/ubuntu:24.04')?.suite).toBe('noble');
    expect(releaseFromImage('debian:bookworm')?.version).toBe('12');
    expect(releaseFromImage('alpine:3')).toBeUndefined();
  });
});

describe('mirrors given as host, IP or URL', () => {
  it('uses a URL as is', () => {
    expect(resolveServer('https://mirror.example.org/ubuntu/', 'ubuntu', 'archive')).toEqual({
      given: 'https://mirror.example.org/ubuntu/',
      kind: 'url',
      url: 'https://mirror.example.org/ubuntu',
      extraHosts: [],
    });
  });
  it('makes a URL from a host name with the distribution path', () => {
    expect(resolveServer('mirror.example.org', 'ubuntu', 'security').url).toBe('http://mirror.example.org/ubuntu');
    expect(resolveServer('mirror.example.org:8080', 'debian', 'security').url).toBe('http://mirror.example.org:8080/debian-security');
  });
  it('maps the canonical Ubuntu names to an IP, as the seed does', () => {
    expect(resolveServer('192.0.2.10', 'ubuntu', 'archive')).toMatchObject({
      kind: 'ip',
      url: 'http://archive.ubuntu.com/ubuntu',
      extraHosts: ['archive.ubuntu.com:192.0.2.10'],
    });
    expect(resolveServer('192.0.2.11', 'ubuntu', 'security').extraHosts).toEqual(['security.ubuntu.com:192.0.2.11']);
    expect(resolveServer('192.0.2.10', 'debian', 'archive').url).toBe('http://192.0.2.10/debian');
    expect(resolveServer('2001:db8::1', 'debian', 'archive').url).toBe('http://[2001:db8::1]/debian');
  });
  it('rejects garbage with a usage error', () => {
    expect(() => resolveServer('not a host!', 'ubuntu', 'archive')).toThrow(/neither a host name/);
    expect(() => resolveServer('', 'ubuntu', 'archive')).toThrow(/empty/);
  });
});

describe('rendering apt sources', () => {
  const servers = (distro: 'debian' | 'ubuntu') => ({
    archive: resolveServer('mirror.example.org', distro, 'archive').url,
    security: resolveServer('security.example.org', distro, 'security').url,
  });

  it('one-line for Ubuntu 22.04', () => {
    const r = renderAptSources(resolveRelease('ubuntu', '22.04'), servers('ubuntu'));
    expect(r.path).toBe('/etc/apt/sources.list');
    expect(r.content).toMatchInlineSnapshot(`
      "# Written by ctun-build from its BuildPlan.
      deb http://mirror.example.org/ubuntu jammy main restricted universe multiverse
      deb http://mirror.example.org/ubuntu jammy-updates main restricted universe multiverse
      deb http://security.example.org/ubuntu jammy-security main restricted universe multiverse
      "
    `);
    // What we render, we parse back.
    expect(parseOneLine(r.content).map((s) => s.suites[0])).toEqual(['jammy', 'jammy-updates', 'jammy-security']);
  });

  it('deb822 for Ubuntu 24.04', () => {
    const r = renderAptSources(resolveRelease('ubuntu', '24.04'), servers('ubuntu'));
    expect(r.path).toBe('/etc/apt/sources.list.d/ubuntu.sources');
    expect(r.content).toMatchInlineSnapshot(`
      "# Written by ctun-build from its BuildPlan.
      Types: deb
      URIs: http://mirror.example.org/ubuntu
      Suites: noble noble-updates
      Components: main restricted universe multiverse
      Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg

      Types: deb
      URIs: http://security.example.org/ubuntu
      Suites: noble-security
      Components: main restricted universe multiverse
      Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg
      "
    `);
    expect(mirrorFromSources(parseDeb822(r.content), 'noble')).toEqual({
      archive: 'http://mirror.example.org/ubuntu',
      security: 'http://security.example.org/ubuntu',
    });
  });

  it('deb822 for Debian 12 and one-line for Debian 11 and 10', () => {
    const r12 = renderAptSources(resolveRelease('debian', '12'), servers('debian'));
    expect(r12.path).toBe('/etc/apt/sources.list.d/debian.sources');
    expect(r12.content).toMatchInlineSnapshot(`
      "# Written by ctun-build from its BuildPlan.
      Types: deb
      URIs: http://mirror.example.org/debian
      Suites: bookworm bookworm-updates
      Components: main
      Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

      Types: deb
      URIs: http://security.example.org/debian-security
      Suites: bookworm-security
      Components: main
      Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
      "
    `);
    expect(renderAptSources(resolveRelease('debian', '11'), servers('debian')).content).toMatchInlineSnapshot(`
      "# Written by ctun-build from its BuildPlan.
      deb http://mirror.example.org/debian bullseye main
      deb http://mirror.example.org/debian bullseye-updates main
      deb http://security.example.org/debian-security bullseye-security main
      "
    `);
    expect(renderAptSources(resolveRelease('debian', '10'), servers('debian')).content).toContain(
      'deb http://security.example.org/debian-security buster/updates main',
    );
  });
});
