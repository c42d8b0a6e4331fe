import { describe, expect, it } from 'vitest';
import { metadata } from '../common/index.js';
import { renderDockerfile } from './context.js';
import { checkBuildInputs, checkImageRef, checkMirror, checkTarballFields, checkUrl, type BuildInputs } from './inputs.js';
import { planBaseImage } from './base.js';
import { projectPaths } from './paths.js';
import { STANDIN_TARBALL } from './testing.js';
import { planCtun, planVeos, type VeosOptions } from './plan.js';

const paths = projectPaths();
const tarball = STANDIN_TARBALL;
const veos = (over: Partial<VeosOptions> = {}): VeosOptions => ({ eula: 'acceptDspaceEula', mode: 'online', image: metadata.images.veos, tarball, installCtun: false, ...over });

/** Shell and Dockerfile injections: each must be refused wherever a value goes. */
const HOSTILE = ['$(touch /tmp/pwned)', '`touch /tmp/pwned`', 'x\nRUN touch /tmp/pwned', "a'b", 'a"b', 'a;b', 'a b', 'a|b', 'a\\b', 'a\tb'];

describe('build inputs: what each value may contain', () => {
  it('every user-given value refuses shell and Dockerfile injection, naming the option, the value and what is allowed', () => {
    const keys: Array<keyof BuildInputs> = ['baseImage', 'dockerRepository', 'tagPrefix', 'archiveServer', 'securityServer', 'network', 'image', 'pipIndexUrl', 'dotnetServer'];
    for (const key of keys) {
      for (const evil of HOSTILE) {
        // Hostile text inside an otherwise good value of each kind.
        const value = key.endsWith('Server') || key === 'pipIndexUrl' ? `https://mirror.lab/${evil}` : `debian${evil}`;
        const { problems } = checkBuildInputs({ [key]: value });
        expect(problems, `${key} = ${JSON.stringify(value)}`).toHaveLength(1);
        const p = problems[0]!;
        expect(p.value).toBe(value);
        expect(p.message.startsWith(`${p.option} ${JSON.stringify(value)} `), p.message).toBe(true);
        expect(p.message).not.toContain('\n');
        expect(p.hint.length).toBeGreaterThan(10);
      }
    }
  });

  it('names the offending character: a newline, `$`, a space', () => {
    expect(checkUrl('--pipIndexUrl', 'https://pypi.lab/simple\n', { code: 'BAD_PIP_INDEX', example: 'an index' })).toMatchObject({ ok: false, problems: [{ message: expect.stringContaining('contains a newline') }] });
    expect(checkImageRef('--baseImage', '$(touch /tmp/pwned)')).toMatchObject({ ok: false, problems: [{ code: 'BAD_IMAGE_NAME', message: '--baseImage "$(touch /tmp/pwned)" contains `$`, which no image name may hold' }] });
    expect(checkMirror('--ubuntuArchiveServer', 'mirror.lab extra')).toMatchObject({ ok: false, problems: [{ message: expect.stringContaining('contains a space') }] });
  });

  it('good values pass, normalized: URLs without a trailing slash, registries without a scheme', () => {
    const { problems, normalized } = checkBuildInputs({
      baseImage: '10.0.0.5:5000/ubuntu:22.04',
      image: 'dspace/veos/simulator:23.1-ctun',
      dockerRepository: 'http://127.0.0.1:5000/',
      tagPrefix: 'registry.lab:5000/ctun/',
      archiveServer: 'HTTP://Mirror.Lab/debian/',
      securityServer: '10.0.0.5',
      network: 'ctun-offline',
      pipIndexUrl: 'https://pypi.lab/simple/',
      dotnetServer: 'https://packages.microsoft.com/ubuntu/22.04/prod/',
      dotnetKey: 'https://packages.microsoft.com/keys/microsoft.asc',
      dotnetPackages: ['dotnet-runtime-6.0', 'ctun-dotnet-standin=1.0-1'],
    });
    expect(problems).toEqual([]);
    expect(normalized).toEqual({
      baseImage: '10.0.0.5:5000/ubuntu:22.04',
      image: 'dspace/veos/simulator:23.1-ctun',
      dockerRepository: '127.0.0.1:5000',
      tagPrefix: 'registry.lab:5000/ctun',
      archiveServer: 'http://mirror.lab/debian',
      securityServer: '10.0.0.5',
      network: 'ctun-offline',
      pipIndexUrl: 'https://pypi.lab/simple',
      dotnetServer: 'https://packages.microsoft.com/ubuntu/22.04/prod',
      dotnetKey: 'https://packages.microsoft.com/keys/microsoft.asc',
      dotnetPackages: ['dotnet-runtime-6.0', 'ctun-dotnet-standin=1.0-1'],
    });
  });

  it('credentials, fragments, other schemes and upper-case image names are refused', () => {
    const { problems } = checkBuildInputs({ pipIndexUrl: 'https://u:p@pypi.lab/simple', dotnetServer: 'ftp://x.lab/prod', archiveServer: 'http://m.lab/debian#x', baseImage: 'Debian:12' });
    expect(problems.map((p) => [p.code, p.option])).toEqual([
      ['BAD_BASE_IMAGE', '--baseImage'],
      ['BAD_MIRROR', '--ubuntuArchiveServer'],
      ['BAD_PIP_INDEX', '--pipIndexUrl'],
      ['BAD_DOTNET_SERVER', '--dotnetServer'],
    ]);
    expect(problems[2]!.message).toContain('holds credentials');
  });

  it('an http pip index needs --pipTrustedHost, and the error says so', () => {
    const { problems } = checkBuildInputs({ pipIndexUrl: 'http://10.0.0.5:8080/simple' });
    expect(problems).toEqual([expect.objectContaining({ code: 'PIP_INDEX_INSECURE', hint: expect.stringContaining('--pipTrustedHost') })]);
    expect(checkBuildInputs({ pipIndexUrl: 'http://10.0.0.5:8080/simple', pipTrustedHost: true }).problems).toEqual([]);
  });

  it('reports every problem of a run at once, not only the first', () => {
    const { problems } = checkBuildInputs({ baseImage: 'a b', tagPrefix: '$(x)', pipIndexUrl: 'http://x/simple', dotnetPackages: ['ok-pkg', 'rm -rf'] });
    expect(problems.map((p) => p.code)).toEqual(['BAD_BASE_IMAGE', 'BAD_TAG_PREFIX', 'PIP_INDEX_INSECURE', 'BAD_PACKAGE_NAME']);
    expect(() => planVeos(veos({ baseImage: 'a b', tagPrefix: '$(x)' }), paths)).toThrowError(
      expect.objectContaining({ code: 'BUILD_INPUTS_INVALID', exitCode: 1, message: expect.stringMatching(/^2 build inputs are refused:\n {2}- --baseImage "a b" contains a space.*\n {2}- --tagPrefix "\$\(x\)" contains `\$`/) }),
    );
  });

  it('the tarball manifest is an input too: paths, ports and the command line', () => {
    const evil = { ...tarball, installDir: '/opt/x$(id)', installScript: '../install.sh', ports: ['27027/tcp\nRUN id'], simulatorArgv: ['python3', 'a\nb'] };
    expect(checkTarballFields(evil).map((p) => p.message)).toEqual([
      'the tarball /srv/in/dspace-veos-2023a.tar.gz gives the install script "../install.sh", which is not a plain relative path',
      'the tarball /srv/in/dspace-veos-2023a.tar.gz gives the install directory "/opt/x$(id)", which contains `$`',
      'the tarball /srv/in/dspace-veos-2023a.tar.gz gives the port "27027/tcp\\nRUN id"',
      'the tarball /srv/in/dspace-veos-2023a.tar.gz gives a simulator argument "a\\nb", which contains a newline',
    ]);
    expect(checkTarballFields(tarball)).toEqual([]);
  });

  it('plans refuse before anything is built, for every command (ctun, veos, base)', () => {
    expect(() => planCtun({ eula: 'acceptDspaceEula', baseImage: '$(touch /tmp/pwned)' }, paths)).toThrowError(expect.objectContaining({ code: 'BAD_BASE_IMAGE', exitCode: 1 }));
    expect(() => planCtun({ eula: 'acceptDspaceEula', archiveServer: 'http://m.lab/debian\ndeb http://evil.lab/ x main' }, paths)).toThrowError(/contains a newline/);
    expect(() => planVeos(veos({ pipIndexUrl: 'https://p.lab/simple$(id)' }), paths)).toThrowError(expect.objectContaining({ code: 'BAD_PIP_INDEX' }));
    expect(() => planBaseImage({ mirror: 'http://m.lab/debian\nx' }, [])).toThrowError(expect.objectContaining({ code: 'BAD_MIRROR' }));
    expect(() => planBaseImage({ mirror: 'm.lab', tags: ['debian:12;id'] }, [])).toThrowError(expect.objectContaining({ code: 'BAD_IMAGE_NAME' }));
  });

  it('user values in RUN lines arrive as build arguments; the Dockerfile holds only variables', async () => {
    const plan = planVeos(
      veos({ pipIndexUrl: 'http://10.0.0.5:8080/simple/', pipTrustedHost: true, tarball: { ...tarball, needsDotnet: true }, dotnetServer: 'https://dotnet.lab/prod/', dotnetKey: 'https://dotnet.lab/key.asc' }),
      paths,
    );
    const step = plan.images[0]!;
    expect(step.buildArgs).toEqual({
      PIP_INDEX_URL: 'http://10.0.0.5:8080/simple',
      PIP_TRUSTED_HOST: '10.0.0.5',
      DOTNET_SERVER: 'https://dotnet.lab/prod',
      DOTNET_PACKAGES: 'dotnet-runtime-6.0',
      DOTNET_KEY_URL: 'https://dotnet.lab/key.asc',
    });
    const df = await renderDockerfile(step, paths);
    expect(df).toContain('--index-url "$PIP_INDEX_URL" --trusted-host "$PIP_TRUSTED_HOST"');
    expect(df).toContain('ADD ${DOTNET_KEY_URL} /usr/share/keyrings/ctun-dotnet.asc');
    expect(df).toContain('echo "deb [signed-by=/usr/share/keyrings/ctun-dotnet.asc] $DOTNET_SERVER jammy main"');
    for (const v of ['10.0.0.5', 'dotnet.lab']) expect(df).not.toContain(v);
  });
});
