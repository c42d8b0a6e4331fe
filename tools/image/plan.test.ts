import { describe, expect, it } from 'vitest';
import { metadata } from '../common/index.js';
import { createMemoryDocker } from '../docker/index.js';
import { createMemoryLogger } from '../common/index.js';
import { parseVeosArgs, yesNo } from './commands.js';
import { renderContextText, renderDockerfile } from './context.js';
import { buildImageStep, preflight } from './execute.js';
import { projectPaths } from './paths.js';
import { checkWheels, missingWheels, pipDownloadLine, planCtun, planVeos, runtimeImageName, type TarballInfo, type VeosOptions } from './plan.js';
import { planBaseImage } from './base.js';
import { parseDeb822 } from './apt.js';
import { SEED_WHEEL_FILES, STANDIN_TARBALL } from './testing.js';

const paths = projectPaths();
const tarball = STANDIN_TARBALL;
const WHEELS = SEED_WHEEL_FILES;
const veos = (over: Partial<VeosOptions> = {}): VeosOptions => ({
  eula: 'acceptDspaceEula',
  mode: 'online',
  image: metadata.images.veos,
  tarball,
  installCtun: false,
  ...over,
});

describe('ctun images plan', () => {
  it('refuses without the EULA literal, before anything else', () => {
    expect(() => planCtun({ eula: undefined }, paths)).toThrow(/not accepted/);
    expect(() => planCtun({ eula: 'yes' }, paths)).toThrowError(expect.objectContaining({ code: 'EULA_NOT_ACCEPTED', exitCode: 1 }));
  });

  it('builds the runtime once, then the four images named by metadata, on ubuntu:22.04 by default', () => {
    const plan = planCtun({ eula: 'acceptDspaceEula' }, paths);
    expect(plan.base.image).toBe('ubuntu:22.04');
    expect(plan.images.map((i) => i.tags[0])).toEqual([
      runtimeImageName(),
      metadata.images.localServer,
      metadata.images.separateServer,
      metadata.images.localClient,
      metadata.images.separateClient,
    ]);
    expect(runtimeImageName()).toBe(`dspace/ctun/runtime:${metadata.ctunVersion}`);
    expect(plan.apt).toEqual({ rewrite: false, reason: expect.stringContaining("base image's own") });
    for (const i of plan.images) expect(i.labels['io.ctun.managed']).toBe('true');
    // The plan is data: it survives JSON.
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
  });

  it('embeds the tunnel without npm: Node binary, one bundle, the addon', () => {
    const runtime = planCtun({ eula: 'acceptDspaceEula' }, paths).images[0]!;
    expect(runtime.context.map((c) => [c.path, c.from.kind])).toEqual([
      ['opt/ctun/bin/node', 'file'],
      ['opt/ctun/bin/ctun', 'text'],
      ['opt/ctun/ctun.mjs', 'bundle'],
      ['opt/ctun/native/ctun_tap.node', 'file'],
    ]);
    // Node goes in without its symbol table and debug sections (strip-elf.ts).
    expect(runtime.context[0]!.from).toMatchObject({ path: paths.nodeBinary, strip: true });
  });

  it('renders the Dockerfiles with entrypoints and labels', async () => {
    const plan = planCtun({ eula: 'acceptDspaceEula', distro: 'debian' }, paths);
    const ls = await renderDockerfile(plan.images[1]!, paths);
    expect(ls).toContain('FROM dspace/ctun/runtime:23.1.0 AS runtime');
    expect(ls).toContain('FROM debian:12 AS tools\n');
    // The image is the gathered root on nothing else; the base only lends its tools.
    expect(ls).toContain('FROM scratch\nCOPY --from=tools /rootfs/ /\n');
    expect(plan.images[1]!.context.map((c) => c.path)).toContain('tunnel-root.sh');
    expect(ls).toContain('ENTRYPOINT ["ctun","server","--mode","local"]');
    expect(ls).toContain(`EXPOSE ${metadata.defaultPort}/udp`);
    expect(ls).toMatch(/LABEL io\.ctun\.base="debian:12" \\\n {6}io\.ctun\.kind="image\/local-server"/);
    expect(ls).not.toContain('{{');
    expect(await renderDockerfile(plan.images[2]!, paths)).toContain('ENTRYPOINT ["ctun","server","--mode","separate"]');
    expect(await renderDockerfile(plan.images[3]!, paths)).toContain('ENTRYPOINT ["ctun","client"]');
    // The layers before the role-specific lines are the same for all four.
    const shared = (s: string) => s.slice(s.indexOf('FROM debian'), s.indexOf('EXPOSE'));
    const all = await Promise.all(plan.images.slice(1).map((i) => renderDockerfile(i, paths)));
    expect(new Set(all.map(shared)).size).toBe(1);
  });

  it('rewrites apt sources for the offline form, with the seed mapping an IP', async () => {
    const plan = planCtun(
      { eula: 'acceptDspaceEula', dockerRepository: 'registry.example:5000/', archiveServer: '192.0.2.7', securityServer: '192.0.2.8' },
      paths,
    );
    expect(plan.mode).toBe('offline');
    expect(plan.base).toMatchObject({ image: 'registry.example:5000/ubuntu:22.04', registry: 'registry.example:5000' });
    const step = plan.images[1]!;
    expect(step.extraHosts).toEqual(['archive.ubuntu.com:192.0.2.7', 'security.ubuntu.com:192.0.2.8']);
    expect(step.context[0]!.path).toBe('apt/sources.list');
    expect(await renderContextText(step.context[0]!, paths)).toContain('deb http://security.ubuntu.com/ubuntu jammy-security main');
    expect(await renderDockerfile(step, paths)).toContain('COPY apt/ /tmp/ctun-apt/');
  });

  it('writes deb822 for Ubuntu 24.04 and names the base command in the plan', () => {
    const plan = planCtun({ eula: 'acceptDspaceEula', baseImage: 'ubuntu:24.04', archiveServer: 'http://mirror.example.org/ubuntu' }, paths);
    expect(plan.images[1]!.context[0]!.path).toBe('apt/sources.list.d/ubuntu.sources');
    expect(plan.base.makeWith).toBe('ctun-build base --distro ubuntu --suite noble --tag ubuntu:24.04');
  });
});

describe('veos plan', () => {
  it('installs with DS_ACCEPT_EULA=yes, from the tarball, under supervisord', async () => {
    const plan = planVeos(veos(), paths);
    expect(plan.images.map((i) => i.id)).toEqual(['veos']);
    const df = await renderDockerfile(plan.images[0]!, paths);
    expect(df).toContain('DS_ACCEPT_EULA=yes DS_INSTALL_PREFIX="/opt/dspace/veos2023a" sh ./install.sh');
    // Under a fixed name in a stage of its own: the final image copies only what it installed.
    expect(df).toContain('tar -xzf /tmp/veos/simulator.tar.gz');
    expect(df).toContain('cd "/tmp/veos/unpacked/dspace-veos-2023a"');
    expect(df).toContain('COPY --from=install /opt/dspace/veos2023a/ /opt/dspace/veos2023a/');
    expect(plan.images[0]!.context).toContainEqual({ path: 'veos/simulator.tar.gz', from: { kind: 'file', path: tarball.path } });
    expect(df).toContain('EXPOSE 27027/tcp 5555/udp 27028/udp');
    expect(df).not.toContain('/opt/ctun');
    expect(df).not.toContain('{{');
    const conf = plan.images[0]!.context.find((c) => c.path === 'supervisor/conf.d/veos.conf')!;
    expect(await renderContextText(conf, paths)).toContain('command=python3 -u /opt/dspace/veos2023a/bin/veos_standin.py');
    expect(plan.images[0]!.context.some((c) => c.path === 'supervisor/conf.d/ctun.conf')).toBe(false);
  });

  it('holds PyPI by default, an http index only with --pipTrustedHost, or a wheels directory', async () => {
    expect(planVeos(veos(), paths).python).toEqual({
      source: 'index',
      indexUrl: 'https://pypi.org/simple',
      requirements: ['setuptools', 'supervisor==4.2.*', 'supervisor-console==0.5.*', 'supervisord-dependent-startup==1.4.*'],
    });
    expect(() => planVeos(veos({ pipIndexUrl: 'http://172.17.0.1:8765/simple/' }), paths)).toThrowError(expect.objectContaining({ code: 'PIP_INDEX_INSECURE' }));
    const local = planVeos(veos({ pipIndexUrl: 'http://172.17.0.1:8765/simple/', pipTrustedHost: true }), paths);
    expect(local.python).toMatchObject({ indexUrl: 'http://172.17.0.1:8765/simple', trustedHost: '172.17.0.1' });
    expect(await renderDockerfile(local.images[0]!, paths)).toContain(`--index-url "$PIP_INDEX_URL" --trusted-host "$PIP_TRUSTED_HOST" setuptools 'supervisor==4.2.*'`);
    expect(local.images[0]!.buildArgs).toEqual({ PIP_INDEX_URL: 'http://172.17.0.1:8765/simple', PIP_TRUSTED_HOST: '172.17.0.1' });
    const wheels = planVeos(veos({ wheels: { dir: '/srv/wheels', files: WHEELS } }), paths);
    expect(wheels.python).toMatchObject({ source: 'wheels', dir: '/srv/wheels' });
    expect(await renderDockerfile(wheels.images[0]!, paths)).toContain('--no-index --find-links /tmp/wheels');
  });

  it('offline needs wheels, and names the missing ones with the pip download command', () => {
    expect(() => planVeos(veos({ mode: 'offline', archiveServer: '10.0.0.5' }), paths)).toThrowError(expect.objectContaining({ code: 'WHEELS_REQUIRED' }));
    let err: unknown;
    try {
      planVeos(veos({ mode: 'offline', archiveServer: '10.0.0.5', wheels: { dir: '/srv/w', files: WHEELS.slice(0, 2) } }), paths);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'WHEELS_MISSING', message: '/srv/w lacks wheels for: supervisor_console 0.5.*; supervisord_dependent_startup 1.4.*; toposort' });
    expect((err as { hint: string }).hint).toBe(
      "on a machine with Internet access: pip download --no-cache-dir --only-binary=:all: 'supervisor-console==0.5.*' 'supervisord-dependent-startup==1.4.*' toposort -d /srv/w, then copy them here",
    );
    expect(missingWheels(WHEELS)).toEqual([]);
  });

  it('a wheel of the wrong version counts as missing, and the message says which was found', () => {
    const files = WHEELS.map((w) => w.replace('supervisor-4.2.5', 'supervisor-4.1.0'));
    expect(checkWheels(files)).toEqual([{ name: 'supervisor', version: '4.2.*', found: ['4.1.0'] }]);
    expect(() => planVeos(veos({ mode: 'offline', archiveServer: '10.0.0.5', wheels: { dir: '/w', files } }), paths)).toThrow('/w lacks wheels for: supervisor 4.2.* (found 4.1.0)');
    expect(pipDownloadLine(checkWheels(files), '/w')).toBe("pip download --no-cache-dir --only-binary=:all: 'supervisor==4.2.*' -d /w");
    // 4.2 itself and 4.2.x fit 4.2.*; 4.20 does not
    expect(checkWheels(WHEELS.map((w) => w.replace('supervisor-4.2.5', 'supervisor-4.20.0')))).toHaveLength(1);
    expect(checkWheels(WHEELS.map((w) => w.replace('supervisor-4.2.5', 'supervisor-4.2')))).toEqual([]);
  });

  it('skips .NET when the manifest needs none, and says why', async () => {
    const plan = planVeos(veos(), paths);
    expect(plan.dotnet).toMatchObject({ needed: false, reason: expect.stringContaining('needs no .NET'), key: 'https://packages.microsoft.com/keys/microsoft.asc' });
    expect(await renderDockerfile(plan.images[0]!, paths)).not.toContain('dotnet');
    const withDotnet = planVeos(veos({ tarball: { ...tarball, needsDotnet: true }, dotnetKey: '/srv/microsoft.asc', baseImage: 'ubuntu:22.04' }), paths);
    const df = await renderDockerfile(withDotnet.images[0]!, paths);
    expect(df).toContain('COPY dotnet/keyring.gpg /usr/share/keyrings/ctun-dotnet.gpg');
    expect(df).toContain('deb [signed-by=/usr/share/keyrings/ctun-dotnet.gpg] $DOTNET_SERVER jammy main');
    expect(withDotnet.images[0]!.buildArgs).toMatchObject({ DOTNET_SERVER: 'https://packages.microsoft.com/ubuntu/22.04/prod', DOTNET_PACKAGES: 'dotnet-runtime-6.0' });
    expect(withDotnet.images[0]!.context).toContainEqual({ path: 'dotnet/keyring.gpg', from: { kind: 'keyring', path: '/srv/microsoft.asc' } });
  });

  it('--dotnetPackages forces the .NET step from the given feed; offline it needs server and key', async () => {
    const plan = planVeos(
      veos({ mode: 'offline', archiveServer: '10.0.0.5', wheels: { dir: '/w', files: WHEELS }, baseImage: 'debian:12', dotnetServer: 'http://10.0.0.9/dotnet/', dotnetKey: '/k.asc', dotnetPackages: ['ctun-dotnet-standin'] }),
      paths,
    );
    expect(plan.dotnet).toMatchObject({ needed: true, reason: '--dotnetPackages ctun-dotnet-standin given', server: 'http://10.0.0.9/dotnet', suite: 'bookworm', packages: ['ctun-dotnet-standin'] });
    const df = await renderDockerfile(plan.images[0]!, paths);
    expect(df).toContain('deb [signed-by=/usr/share/keyrings/ctun-dotnet.gpg] $DOTNET_SERVER bookworm main');
    expect(df).toContain('apt-get install -y --no-install-recommends $DOTNET_PACKAGES');
    expect(plan.images[0]!.buildArgs).toEqual({ DOTNET_SERVER: 'http://10.0.0.9/dotnet', DOTNET_PACKAGES: 'ctun-dotnet-standin' });
    expect(df).not.toMatch(/trusted=yes|apt-key|allow-unauthenticated/);
    expect(() => planVeos(veos({ mode: 'offline', archiveServer: '10.0.0.5', wheels: { dir: '/w', files: WHEELS }, dotnetPackages: ['x'] }), paths)).toThrowError(
      expect.objectContaining({
        code: 'OFFLINE_SOURCES_MISSING',
        message: 'an offline build needs every source it installs from, and lacks the .NET server (MICROSOFT_DOTNET_SERVER, --dotnetServer), its public key file (MICROSOFT_PUBLIC_KEY_FILE, --dotnetKey)',
      }),
    );
  });

  it('the .NET server may be a host, an IP or a URL, as the apt mirrors (the seed\'s <MICROSOFT_DOTNET_SERVER>)', async () => {
    const withServer = (dotnetServer: string) =>
      planVeos(veos({ baseImage: 'ubuntu:22.04', dotnetServer, dotnetKey: '/k.asc', dotnetPackages: ['dotnet-runtime-6.0'] }), paths);
    expect(withServer('10.0.0.9').dotnet!.server).toBe('http://10.0.0.9/ubuntu/22.04/prod');
    expect(withServer('dotnet-mirror.lab').dotnet!.server).toBe('http://dotnet-mirror.lab/ubuntu/22.04/prod');
    expect(withServer('dotnet-mirror.lab:8080').dotnet!.server).toBe('http://dotnet-mirror.lab:8080/ubuntu/22.04/prod');
    expect(withServer('[fd00::9]').dotnet!.server).toBe('http://[fd00::9]/ubuntu/22.04/prod');
    expect(withServer('https://m.lab/ms/ubuntu/22.04/prod/').dotnet!.server).toBe('https://m.lab/ms/ubuntu/22.04/prod');
    // The server reaches its apt line as a build argument, not spliced into the Dockerfile.
    const step = withServer('10.0.0.9').images[0]!;
    expect(step.buildArgs?.DOTNET_SERVER).toBe('http://10.0.0.9/ubuntu/22.04/prod');
    expect(await renderDockerfile(step, paths)).toContain('deb [signed-by=/usr/share/keyrings/ctun-dotnet.gpg] $DOTNET_SERVER jammy main');
    expect(() => withServer('not a host')).toThrowError(expect.objectContaining({ code: 'BAD_DOTNET_SERVER', exitCode: 1 }));
  });

  it('offline without the sources it needs refuses, naming every one missing (never the base image\'s own sources)', () => {
    const e = (() => {
      try {
        planVeos(veos({ mode: 'offline', wheels: { dir: '/w', files: WHEELS }, tarball: { ...tarball, needsDotnet: true } }), paths);
      } catch (x) {
        return x as { code: string; message: string; hint: string; exitCode: number };
      }
      return undefined;
    })();
    expect(e).toMatchObject({ code: 'OFFLINE_SOURCES_MISSING', exitCode: 1 });
    expect(e!.message).toBe(
      'an offline build needs every source it installs from, and lacks the apt archive server (UBUNTU_ARCHIVE_SERVER, --archiveServer), the .NET server (MICROSOFT_DOTNET_SERVER, --dotnetServer), its public key file (MICROSOFT_PUBLIC_KEY_FILE, --dotnetKey)',
    );
    expect(e!.hint).toContain('ctun-build veos offline acceptDspaceEula IMAGE TARBALL ARCHIVE SECURITY DOTNET_SERVER KEY_FILE');
    // Online, the base image's own sources are what the user asked for.
    expect(planVeos(veos(), paths).apt.rewrite).toBe(false);
  });

  it('a tarball of another layout is installed by --installCommand (as a file, not spliced into the Dockerfile) and started by --entryPoint', async () => {
    const custom: TarballInfo = {
      ...tarball,
      layout: 'custom',
      topDir: 'acme-sim-1.0',
      installScript: '',
      installCommand: `mkdir -p "$DS_INSTALL_PREFIX" && cp -r . "$DS_INSTALL_PREFIX" # it's ours`,
      simulatorArgv: ['/bin/sh', '-c', 'exec python3 /opt/acme/sim.py --port 27027'],
    };
    const plan = planVeos(veos({ tarball: custom }), paths);
    const step = plan.images[0]!;
    const df = await renderDockerfile(step, paths);
    expect(df).toContain('cd "/tmp/veos/unpacked/acme-sim-1.0"');
    expect(df).toContain('DS_ACCEPT_EULA=yes DS_INSTALL_PREFIX="/opt/dspace/veos2023a" sh /tmp/veos/ctun-install-command.sh');
    expect(df).not.toContain("it's ours");
    const file = step.context.find((f) => f.path === 'veos/ctun-install-command.sh')!;
    expect(file.from).toMatchObject({ kind: 'text', text: expect.stringContaining(custom.installCommand!) });
    const conf = step.context.find((f) => f.path === 'supervisor/conf.d/veos.conf')!;
    expect((conf.from as { values: Record<string, string> }).values.command).toBe("/bin/sh -c 'exec python3 /opt/acme/sim.py --port 27027'");
    // dSPACE's layout keeps sh ./install.sh.
    expect(await renderDockerfile(planVeos(veos(), paths).images[0]!, paths)).toContain('DS_INSTALL_PREFIX="/opt/dspace/veos2023a" sh ./install.sh');
  });

  it('--tagPrefix names every image of the plan, the runtime stage too', async () => {
    const ctun = planCtun({ eula: 'acceptDspaceEula', tagPrefix: 'it-offline/' }, paths);
    expect(ctun.images.map((i) => i.tags[0])).toEqual([`it-offline/${runtimeImageName()}`, `it-offline/${metadata.images.localServer}`, expect.any(String), expect.any(String), expect.any(String)]);
    expect(await renderDockerfile(ctun.images[1]!, paths)).toContain(`FROM it-offline/${runtimeImageName()} AS runtime`);
    const v = planVeos(veos({ image: 'veos:1', installCtun: true, tagPrefix: 'it' }), paths);
    expect(v.images.map((i) => i.tags[0])).toEqual([`it/${runtimeImageName()}`, 'it/veos:1']);
  });

  it('--installCtun yes adds the runtime and a supervised tunnel server gated by CTUN_START', async () => {
    const plan = planVeos(veos({ image: metadata.images.veosCtun, installCtun: true }), paths);
    expect(plan.images.map((i) => i.id)).toEqual(['ctun-runtime', 'veos-ctun']);
    const step = plan.images[1]!;
    const df = await renderDockerfile(step, paths);
    expect(df).toContain('FROM dspace/ctun/runtime:23.1.0 AS runtime');
    expect(df).toContain('COPY --from=runtime /opt/ctun/ /opt/ctun/');
    expect(df).toContain('EXPOSE 27027/tcp 5555/udp 27028/udp 1723/udp 1723/tcp');
    const ctunConf = await renderContextText(step.context.find((c) => c.path === 'supervisor/conf.d/ctun.conf')!, paths);
    expect(ctunConf).toContain('command=/usr/local/bin/ctun server --mode local');
    expect(ctunConf).toContain('autostart=false');
    expect(ctunConf).toContain('dependent_startup=%(ENV_CTUN_AUTOSTART)s');
    const entry = await renderContextText(step.context.find((c) => c.path === 'supervisor/entrypoint.sh')!, paths);
    expect(entry).toContain('case "${CTUN_START:-no}" in');
    // Up to the tunnel, the simulator image and the -ctun image have the same steps.
    const plain = await renderDockerfile(planVeos(veos(), paths).images[0]!, paths);
    const upTo = (s: string) => s.slice(s.indexOf('FROM debian') >= 0 ? 0 : s.indexOf('FROM ubuntu'), s.indexOf('COPY veos/'));
    expect(upTo(df).replace(/^FROM dspace\/ctun\/runtime.*\n\n?/m, '')).toBe(upTo(plain).replace(/^\n/, ''));
  });
});

describe('veos arguments', () => {
  it('takes the seed forms and the flag form to the same thing', () => {
    expect(parseVeosArgs(['online', 'acceptDspaceEula', 'img:1', 't.tgz'])).toEqual({ mode: 'online', eula: 'acceptDspaceEula', image: 'img:1', tarball: 't.tgz' });
    const seedOffline = parseVeosArgs(['offline', 'acceptDspaceEula', 'img:1', 't.tgz', 'A', 'S', 'D', 'k.asc']);
    const flagOffline = parseVeosArgs(['acceptDspaceEula', 'img:1', 't.tgz'], {
      offline: true,
      ubuntuArchiveServer: 'A',
      ubuntuSecurityServer: 'S',
      dotnetServer: 'D',
      dotnetKey: 'k.asc',
    });
    expect(flagOffline).toEqual(seedOffline);
    expect(() => parseVeosArgs(['online', 'acceptDspaceEula', 'img:1', 't.tgz', 'A'])).toThrow(/online takes no servers/);
    expect(() => parseVeosArgs(['online', 'acceptDspaceEula'])).toThrow(/needs the EULA literal/);
    expect(yesNo('yes', 'x')).toBe(true);
    expect(() => yesNo('maybe', '--installCtun')).toThrow(/yes or no/);
  });
});

describe('base image plan', () => {
  const host = parseDeb822(
    'Types: deb\nURIs: http://mirror.example.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://mirror.example.org/debian-security\nSuites: bookworm-security\nComponents: main\n',
  );
  it('defaults to the host mirror, minbase, debian:12 and debian:bookworm', () => {
    const plan = planBaseImage({}, host);
    expect(plan).toMatchObject({
      variant: 'minbase',
      include: ['ca-certificates'],
      tags: ['debian:12', 'debian:bookworm'],
      mirror: { archive: 'http://mirror.example.org/debian', security: 'http://mirror.example.org/debian-security', from: "the host's apt configuration" },
    });
    expect(plan.sources.path).toBe('/etc/apt/sources.list.d/debian.sources');
    expect(plan.labels['io.ctun.kind']).toBe('image/base');
  });
  it('takes a mirror as IP, and wants one for Ubuntu when the host has none', () => {
    expect(planBaseImage({ distro: 'ubuntu', mirror: '192.0.2.9' }, host).mirror.archive).toBe('http://192.0.2.9/ubuntu');
    expect(planBaseImage({ distro: 'ubuntu', mirror: '192.0.2.9' }, host).sources.path).toBe('/etc/apt/sources.list');
    expect(() => planBaseImage({ distro: 'ubuntu' }, host)).toThrowError(expect.objectContaining({ code: 'NO_MIRROR' }));
  });
});

describe('executor with the in-memory Docker twin', () => {
  it('stops before building when the base image is missing, naming the base command', async () => {
    const plan = planCtun({ eula: 'acceptDspaceEula', distro: 'debian' }, paths);
    const docker = createMemoryDocker();
    await expect(preflight(plan, { docker, logger: createMemoryLogger() })).rejects.toMatchObject({
      code: 'BASE_IMAGE_MISSING',
      hint: expect.stringContaining('ctun-build base --distro debian --suite bookworm'),
    });
    expect(docker.builds).toHaveLength(0);
  });

  it('sends a tar context holding the rendered Dockerfile and files, and surfaces a failing step', async () => {
    const plan = planVeos(veos({ distro: 'debian', tarball: { ...tarball, path: `${paths.root}/metadata.json` } }), paths);
    const step = plan.images[0]!;
    const docker = createMemoryDocker({
      images: ['debian:12'],
      respond: (b) => [
        { stream: 'Step 1/2 : FROM debian:12\n' },
        { stream: `Step 2/2 : ${b.dockerfile.split('\n').find((l) => l.startsWith('RUN apt-get'))}\n` },
        { stream: 'E: Unable to locate package python3-venv\n' },
        { errorDetail: { message: "The command '/bin/sh -c apt-get update' returned a non-zero code: 100" } },
      ],
    });
    const err = await buildImageStep(step, { docker, logger: createMemoryLogger(), paths }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'BUILD_STEP_FAILED', step: { number: 2, instruction: 'RUN apt-get update \\' } });
    expect((err as Error).message).toContain('  | E: Unable to locate package python3-venv');
    const sent = docker.builds[0]!;
    expect([...sent.files.keys()].sort()).toEqual([
      'Dockerfile',
      'build-args.json',
      'supervisor/conf.d/veos.conf',
      'supervisor/entrypoint.sh',
      'supervisor/supervisord.conf',
      'veos/simulator.tar.gz',
    ]);
    expect(sent.dockerfile).toContain('FROM debian:12');
  });

  it('skips a build whose context digest the image already carries, unless --no-cache', async () => {
    const plan = planCtun({ eula: 'acceptDspaceEula', distro: 'debian' }, paths);
    const step = plan.images[1]!; // local-server: small context
    const docker = createMemoryDocker({ images: ['debian:12', runtimeImageName()] });
    const opts = { docker, logger: createMemoryLogger(), paths };
    const first = await buildImageStep(step, opts);
    expect(first.upToDate).toBe(false);
    expect(docker.images.get(step.tags[0]!)?.labels).toMatchObject({ 'io.ctun.kind': 'image/local-server', 'io.ctun.context-digest': expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect((await buildImageStep(step, opts)).upToDate).toBe(true);
    expect(docker.builds).toHaveLength(1);
    expect((await buildImageStep({ ...step, noCache: true }, opts)).upToDate).toBe(false);
    // A new base image changes the digest: built again.
    docker.images.set('debian:12', { ...docker.images.get('debian:12')!, id: 'sha256:new' });
    expect((await buildImageStep(step, opts)).upToDate).toBe(false);
    expect(docker.builds).toHaveLength(3);
  });
});
