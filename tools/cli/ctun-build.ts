/**
 * ctun-build: the image builds (seed: BuildCtun.py, BuildVeos.py), plus `base` for
 * sites without a registry and `standin` for the stand-in simulator tarball.
 * Thin: parse, call tools/image, print.
 */
import { resolve } from 'node:path';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { abortOnSignals, createLogger, ExitCode, metadata, type Logger } from '../common/index.js';
import {
  createBundle,
  dockerArchiver,
  executeBase,
  formatSummary,
  loadBundle,
  readImageSbomAs,
  SBOM_FORMATS,
  executeBuildPlan,
  parseVeosArgs,
  planBaseImage,
  planCtun,
  planVeos,
  projectPaths,
  readAptSources,
  resolveVeosOptions,
  yesNo,
  TARBALL_CONTRACT,
  type TarballLayout,
  type Distro,
  type BuildPlan,
  type ProjectPaths,
} from '../image/index.js';
import { connectDocker } from '../docker/index.js';
import { buildStandinTarball, SIMULATOR_INSTALL_DIR } from '../simulator/index.js';
import { progressOf, runCommandBody } from './common.js';

const PROGRAM = 'ctun-build';

interface Global {
  verbose?: boolean;
  progress?: string;
  'print-plan'?: boolean;
}

// With listr2 drawing progress, log lines would interleave with it: only warnings
// go to the log then, unless --verbose.
function loggerOf(argv: Global): Logger {
  const quiet = progressOf(argv) !== 'silent' && !argv.verbose;
  return createLogger({ level: argv.verbose ? 'debug' : quiet ? 'warn' : 'info' });
}

function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Builds a plan's images (Ctrl-C stops the build in progress) and prints each with its id. */
async function buildAndPrint(plan: BuildPlan, paths: ProjectPaths, argv: Global): Promise<void> {
  const docker = connectDocker();
  const built = await abortOnSignals(PROGRAM, (signal) =>
    executeBuildPlan(plan, { docker, logger: loggerOf(argv), paths, progress: progressOf(argv), signal }),
  );
  for (const b of built) process.stdout.write(`${b.tags.join(' ')} ${b.imageId}\n`);
}

function buildOptions<T>(y: Argv<T>) {
  return y
    .option('baseImage', { type: 'string', describe: 'base image (default ubuntu:22.04, or <distro>:<version> with --distro)' })
    .option('distro', { choices: ['debian', 'ubuntu'] as const, describe: 'distribution of the base image (default from --baseImage, else ubuntu)' })
    .option('dockerRepository', { type: 'string', describe: 'registry the base image is pulled from, e.g. 10.0.0.5:5000 (offline sites; loopback needs no TLS)' })
    .option('ubuntuArchiveServer', {
      type: 'string',
      alias: 'archiveServer',
      describe: 'apt archive server: host, IP or URL (default: the base image\'s own sources); it replaces every apt source of the image',
    })
    .option('ubuntuSecurityServer', { type: 'string', alias: 'securityServer', describe: 'apt security server: host, IP or URL (default: the archive server)' })
    .option('buildNetwork', { type: 'string', describe: 'network of the RUN steps, e.g. an internal one that reaches only the mirrors' })
    .option('tagPrefix', { type: 'string', describe: 'prefix of every image name built (e.g. a registry); default none' })
    .option('cache', { type: 'boolean', default: true, describe: 'use the layer cache (--no-cache to rebuild every layer)' })
    .option('entry', { type: 'string', hidden: true, describe: 'entry bundled as the ctun script (default tools/cli/ctun.ts)' });
}

/** The program and its global options; each command adds itself to it. */
function program() {
  return yargs(hideBin(process.argv))
    .scriptName(PROGRAM)
    .usage('$0 <command>\n\nBuilds the ctun and simulator images (Container Tunnel Utility 23.1 tooling).')
    .option('verbose', { type: 'boolean', default: false, describe: 'debug logs and the cause chain of errors' })
    .option('progress', { choices: ['tty', 'plain', 'json', 'silent'] as const, describe: 'progress output (default tty on a terminal, else plain)' })
    .option('print-plan', { type: 'boolean', default: false, describe: 'print the BuildPlan as JSON and build nothing' });
}

type Program = ReturnType<typeof program>;

/** `ctun-build base`: a base image bootstrapped from an apt mirror. */
function baseCommand(y: Program): Program {
  return y.command(
    'base',
    'bootstrap a base image from an apt mirror (debootstrap + import), for sites without a registry',
    (y) =>
      y
        .option('distro', { choices: ['debian', 'ubuntu'] as const, default: 'debian' as Distro, describe: 'distribution' })
        .option('suite', { type: 'string', describe: 'code name or version (default bookworm / jammy)' })
        .option('mirror', { type: 'string', describe: 'archive mirror: host, IP or URL (default: the host\'s apt configuration)' })
        .option('securityMirror', { type: 'string', describe: 'security mirror (default: the host\'s, else the archive mirror host)' })
        .option('tag', { type: 'string', array: true, describe: 'tags (default e.g. debian:12 and debian:bookworm)' })
        .option('include', { type: 'string', array: true, describe: 'extra packages (default ca-certificates)' })
        .example('$0 base', 'debian:12 from the mirror this host uses')
        .example('$0 base --distro ubuntu --suite jammy --mirror 10.0.0.5', 'ubuntu:22.04 from a local mirror'),
    (argv) =>
      runCommandBody(PROGRAM, argv.verbose, async () => {
        const opts: Parameters<typeof planBaseImage>[0] = { distro: argv.distro as Distro };
        if (argv.suite) opts.suite = argv.suite;
        if (argv.mirror) opts.mirror = argv.mirror;
        if (argv.securityMirror) opts.securityMirror = argv.securityMirror;
        if (argv.tag?.length) opts.tags = argv.tag;
        if (argv.include?.length) opts.include = argv.include;
        const plan = planBaseImage(opts, await readAptSources());
        if (argv['print-plan']) return printJson(plan);
        const r = await executeBase(plan, { docker: connectDocker(), logger: loggerOf(argv), progress: progressOf(argv) });
        process.stdout.write(`${r.tags.join(' ')} ${r.imageId}\n`);
      }),
  );
}

/** `ctun-build ctun`: the four tunnel images (seed: BuildCtun.py). */
function ctunCommand(y: Program): Program {
  return y.command(
    'ctun [eula]',
    `build the four ctun images (${[metadata.images.localServer, metadata.images.separateServer, metadata.images.localClient, metadata.images.separateClient].join(', ')})`,
    (y) =>
      buildOptions(y)
        .positional('eula', { type: 'string', describe: 'the literal acceptDspaceEula' })
        .example('$0 ctun acceptDspaceEula', 'online')
        .example('$0 ctun acceptDspaceEula --dockerRepository R --ubuntuArchiveServer A --ubuntuSecurityServer S', 'offline'),
    (argv) =>
      runCommandBody(PROGRAM, argv.verbose, async () => {
        const paths = projectPaths();
        const plan = planCtun(
          {
            eula: argv.eula,
            ...(argv.baseImage ? { baseImage: argv.baseImage } : {}),
            ...(argv.distro ? { distro: argv.distro } : {}),
            ...(argv.dockerRepository ? { dockerRepository: argv.dockerRepository } : {}),
            ...(argv.ubuntuArchiveServer ? { archiveServer: argv.ubuntuArchiveServer } : {}),
            ...(argv.ubuntuSecurityServer ? { securityServer: argv.ubuntuSecurityServer } : {}),
            ...(argv.buildNetwork ? { network: argv.buildNetwork } : {}),
            ...(argv.entry ? { ctunEntry: resolve(argv.entry) } : {}),
            ...(argv.tagPrefix ? { tagPrefix: argv.tagPrefix } : {}),
            noCache: !argv.cache,
          },
          paths,
        );
        if (argv['print-plan']) return printJson(plan);
        await buildAndPrint(plan, paths, argv);
      }),
  );
}

/** `ctun-build veos`: the simulator image from its tarball (seed: BuildVeos.py). */
function veosCommand(y: Program): Program {
  return y.command(
    'veos [args..]',
    'build the simulator image from its tarball (seed: BuildVeos.py)',
    (y) =>
      buildOptions(y)
        .positional('args', {
          type: 'string',
          array: true,
          describe: '[online|offline] acceptDspaceEula IMAGE TARBALL [ARCHIVE SECURITY DOTNET_SERVER KEY_FILE (offline)]',
        })
        .option('offline', { type: 'boolean', default: false, describe: 'offline: packages only from the given sources, Python only from wheels' })
        .option('installCtun', { type: 'string', default: 'no', describe: 'yes: the tunnel server inside, started when the container gets CTUN_START=yes' })
        .option('wheels', { type: 'string', describe: 'directory of Python wheels (offline default: the tarball\'s directory)' })
        .option('pipIndexUrl', { type: 'string', describe: 'pip index (online; default https://pypi.org/simple)' })
        .option('pipTrustedHost', { type: 'boolean', default: false, describe: 'accept an http pip index (pip --trusted-host): its packages arrive unauthenticated' })
        .option('dotnetServer', { type: 'string', describe: '.NET package server (used only when the tarball needs .NET or --dotnetPackages is given)' })
        .option('dotnetKey', { type: 'string', describe: 'its public key: a file (armored or binary; dearmored into a keyring for signed-by) or a URL' })
        // A string, not an array option: an array would swallow the positionals after it.
        .option('dotnetPackages', { type: 'string', describe: 'packages to install from the .NET feed, comma-separated, whatever the tarball says (default dotnet-runtime-6.0 when it needs .NET)' })
        .option('installCommand', { type: 'string', describe: 'shell command that installs a tarball of another layout, run as root in its unpacked top folder (default: sh ./install.sh)' })
        .option('entryPoint', { type: 'string', describe: 'command line that starts the simulator under supervisord (default: the tarball manifest\'s entry point)' })
        .option('installDir', { type: 'string', describe: `DS_INSTALL_PREFIX and the simulator's working folder (default ${SIMULATOR_INSTALL_DIR})` })
        .epilog(
          `${TARBALL_CONTRACT}\n\nFiles named relative to the current folder (the tarball, KEY_FILE, --wheels) are taken from ./veos/ when the current folder lacks them, as the seed's manual keeps them in <CTUN_INSTALL_DIR>/veos/. The .NET server, like the apt servers, may be a host, an IP (read as http://HOST/<distro>/<version>/prod) or a URL. Every input problem is listed in one run.`,
        )
        .example('$0 veos online acceptDspaceEula dspace/veos/simulator:23.1 dspace-veos-2023a.tar.gz', 'online')
        .example('$0 veos online acceptDspaceEula dspace/veos/simulator:23.1-ctun dspace-veos-2023a.tar.gz --installCtun yes', 'with the tunnel inside')
        .example('$0 veos offline acceptDspaceEula IMAGE TARBALL ARCHIVE SECURITY DOTNET_SERVER KEY_FILE --dockerRepository R', 'offline (seed form)')
        .example('$0 veos --offline acceptDspaceEula IMAGE TARBALL --archiveServer A --securityServer S --dotnetServer D --dotnetKey K --wheels DIR', 'offline (flag form)'),
    (argv) =>
      runCommandBody(PROGRAM, argv.verbose, async () => {
        const flags: Parameters<typeof parseVeosArgs>[1] = { offline: argv.offline };
        if (argv.ubuntuArchiveServer) flags.ubuntuArchiveServer = argv.ubuntuArchiveServer;
        if (argv.ubuntuSecurityServer) flags.ubuntuSecurityServer = argv.ubuntuSecurityServer;
        if (argv.dotnetServer) flags.dotnetServer = argv.dotnetServer;
        if (argv.dotnetKey) flags.dotnetKey = argv.dotnetKey;
        const args = parseVeosArgs((argv.args ?? []).map(String), flags);
        const paths = projectPaths();
        const layout: TarballLayout = {
          ...(argv.installCommand ? { installCommand: argv.installCommand } : {}),
          ...(argv.entryPoint ? { entryPoint: argv.entryPoint } : {}),
          ...(argv.installDir ? { installDir: argv.installDir } : {}),
        };
        const options = await resolveVeosOptions(args, {
          // Which input came from ./veos/ goes to stderr, so --print-plan stays JSON.
          logger: createLogger({ level: argv.verbose ? 'debug' : 'info', out: process.stderr }),
          layout,
          installCtun: yesNo(argv.installCtun, '--installCtun'),
          ...(argv.wheels ? { wheels: argv.wheels } : {}),
          ...(argv.pipIndexUrl ? { pipIndexUrl: argv.pipIndexUrl } : {}),
          ...(argv.pipTrustedHost ? { pipTrustedHost: true } : {}),
          ...(argv.baseImage ? { baseImage: argv.baseImage } : {}),
          ...(argv.distro ? { distro: argv.distro } : {}),
          ...(argv.dockerRepository ? { dockerRepository: argv.dockerRepository } : {}),
          ...(argv.buildNetwork ? { network: argv.buildNetwork } : {}),
          ...(argv.entry ? { ctunEntry: argv.entry } : {}),
          ...(argv.tagPrefix ? { tagPrefix: argv.tagPrefix } : {}),
          ...(argv.dotnetPackages ? { dotnetPackages: [argv.dotnetPackages].flat().flatMap((p) => String(p).split(',')).map((p) => p.trim()).filter(Boolean) } : {}),
          noCache: !argv.cache,
        });
        const plan = planVeos(options, paths);
        if (argv['print-plan']) return printJson(plan);
        await buildAndPrint(plan, paths, argv);
      }),
  );
}

/** `ctun-build bundle`: images and files in one checksummed (optionally signed) archive. */
function bundleCommand(y: Program): Program {
  return y.command(
    'bundle',
    'write every image and the simulator tarball into one archive with a manifest of checksums, to carry to an air-gapped site',
    (y) =>
      y
        .option('out', { type: 'string', demandOption: true, describe: 'the archive to write' })
        .option('image', {
          type: 'string',
          array: true,
          describe: 'images to put in (default: the four ctun images and both simulator images, those that exist)',
        })
        .option('file', { type: 'string', array: true, default: [] as string[], describe: 'files to carry along, e.g. dspace-veos-2023a.tar.gz' })
        .option('release', { type: 'string', describe: 'the ctun release tarball to carry beside the images (npm run release writes dist/ctun-<version>-linux-x64.tar.gz)' })
        .option('sign', { type: 'string', describe: 'sign the manifest with this private key (a codeSigning certificate of ctun certs signer; its .crt beside it goes into the bundle)' })
        .option('signerCert', { type: 'string', describe: 'the signing key\'s certificate (default: the key\'s file name with .crt)' })
        .example('$0 bundle --out ctun-23.1.0.bundle.tar --file dspace-veos-2023a.tar.gz', 'all images and the tarball')
        .example('$0 bundle --out site.tar --release dist/ctun-23.1.0-linux-x64.tar.gz', 'the images and the tools, in one checksummed archive')
        .example('$0 load ctun-23.1.0.bundle.tar', 'on the air-gapped site'),
    (argv) =>
      runCommandBody(PROGRAM, argv.verbose, async () => {
        const docker = connectDocker();
        let images = (argv.image ?? []).map(String);
        if (!images.length) {
          const all = [
            metadata.images.localServer,
            metadata.images.separateServer,
            metadata.images.localClient,
            metadata.images.separateClient,
            metadata.images.veos,
            metadata.images.veosCtun,
          ];
          images = [];
          for (const i of all) if (await docker.imageExists(i)) images.push(i);
        }
        const m = await createBundle({
          docker,
          archiver: dockerArchiver(docker),
          logger: loggerOf(argv),
          images,
          files: argv.file.map((f) => resolve(String(f))),
          ...(argv.release ? { release: resolve(argv.release) } : {}),
          ...(argv.sign ? { sign: { key: resolve(argv.sign), ...(argv.signerCert ? { cert: resolve(argv.signerCert) } : {}) } } : {}),
          imageFiles: docker.imageFiles!,
          out: argv.out,
        });
        for (const x of m.members) process.stdout.write(`${x.sha256}  ${x.size}  ${x.path}\n`);
        process.stdout.write(`${resolve(argv.out)}: ${m.images.length} images (${m.images.map((i) => i.ref).join(' ')}), ${m.files.length} files${argv.sign ? `, signed with ${argv.sign}` : ''}\n`);
      }),
  );
}

/** `ctun-build load`: a bundle verified (and its signature, with --verify), then loaded. */
function loadCommand(y: Program): Program {
  return y.command(
    'load <bundle>',
    'verify a bundle against its manifest, then load its images and unpack its files',
    (y) =>
      y
        .positional('bundle', { type: 'string', demandOption: true, describe: 'the archive ctun-build bundle wrote' })
        .option('filesOut', { type: 'string', default: '.', describe: 'where the carried files (the tarball) go' })
        .option('verify', { type: 'string', describe: 'a CA certificate (ctun certs init: ca.crt) or public key: load only a bundle signed by a key it certifies, else nothing' }),
    (argv) =>
      runCommandBody(PROGRAM, argv.verbose, async () => {
        const docker = connectDocker();
        await docker.ping();
        const r = await loadBundle({ docker, archiver: dockerArchiver(docker), logger: loggerOf(argv), file: argv.bundle, filesOut: argv.filesOut, ...(argv.verify ? { verify: argv.verify } : {}) });
        const s = r.signer;
        process.stdout.write(
          s ? `signed by ${s.subject ?? `the key ${argv.verify}`}${s.issuer ? ` (certified by ${s.issuer}, serial ${s.serial}, valid until ${s.notAfter})` : ''}: verified with ${argv.verify}\n`
            : r.signed ? 'signed, not verified (give --verify CA_CERT to check who signed it)\n' : 'not signed\n',
        );
        for (const i of r.manifest.images) process.stdout.write(`loaded ${i.ref} ${i.id}${i.sbom ? `  sbom: ${formatSummary(i.sbom.summary)}` : ''}\n`);
        for (const f of r.files) process.stdout.write(`wrote ${f}\n`);
        if (r.release) process.stdout.write(`the ctun release is ${r.release}: tar xzf it anywhere and put its bin/ on PATH\n`);
      }),
  );
}

/** `ctun-build sbom`: the bill of materials of an image. */
function sbomCommand(y: Program): Program {
  return y.command(
    'sbom <image>',
    'print the bill of materials of an image (CycloneDX or SPDX JSON): the file its label names, else one made from its files',
    (y) =>
      y
        .positional('image', { type: 'string', demandOption: true, describe: 'the image' })
        .option('format', { choices: SBOM_FORMATS, default: 'cyclonedx' as const, describe: 'the SBOM format: CycloneDX 1.6 JSON (as stored in the image), or SPDX 2.3 JSON converted from it' })
        .option('summary', { type: 'boolean', default: false, describe: 'print the package counts instead of the document' }),
    (argv) =>
      runCommandBody(PROGRAM, argv.verbose, async () => {
        const docker = connectDocker();
        await docker.ping();
        const s = await readImageSbomAs(docker, docker.imageFiles!, argv.image, argv.format);
        if (s.origin === 'made-now') process.stderr.write(`${PROGRAM}: ${argv.image} carries no SBOM label (not built by ctun-build): made from its files now\n`);
        // Awaited: the command exits right after, and a pipe takes 64 KiB at a time.
        await new Promise<void>((done) => process.stdout.write(argv.summary ? `${argv.image} sha256:${s.sha256} ${formatSummary(s.summary)}\n` : s.json, () => done()));
      }),
  );
}

/** `ctun-build standin`: the stand-in simulator tarball. */
function standinCommand(y: Program): Program {
  return y.command(
    'standin',
    `write the stand-in simulator tarball (same shape as dSPACE's)`,
    (y) => y.option('out', { type: 'string', default: '.', describe: 'directory to write it to' }),
    (argv) =>
      runCommandBody(PROGRAM, argv.verbose, async () => {
        const r = await buildStandinTarball({ outDir: resolve(argv.out) });
        process.stdout.write(`${r.path} sha256=${r.sha256}\n`);
      }),
  );
}

async function main(): Promise<void> {
  await [baseCommand, ctunCommand, veosCommand, bundleCommand, loadCommand, sbomCommand, standinCommand]
    .reduce((y, add) => add(y), program())
    .demandCommand(1, 'give a command: base, ctun, veos, bundle, load, sbom or standin')
    .strict()
    .recommendCommands()
    .version(metadata.ctunVersion)
    .help()
    .fail((msg, err, y) => {
      if (err) throw err;
      process.stderr.write(`${PROGRAM}: error: ${msg}\n${PROGRAM}: hint: see ${PROGRAM} --help\n`);
      void y;
      process.exit(ExitCode.Usage);
    })
    .parseAsync();
}

await main();
