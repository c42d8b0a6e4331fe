/**
 * `npm run demo`: the whole product on a machine with only Docker and Node.
 *
 * Builds what is missing (base image, stand-in tarball, images; cached afterwards;
 * the Python packages from PyPI when it answers, else from the host's Debian mirror),
 * starts the license stand-in, then for each deployment (integrated, separated):
 * runs it as `ctun-run` does, connects a client from a network namespace standing for
 * the user's PC, and shows over the tunnel the port mapper opening servers on random
 * ports, a conversation with each, XCP data nobody asked for and broadcast discovery,
 * and that the same port straight at the Docker host is unreachable. Then it cleans
 * up (--keep leaves the deployments running). listr2 on a TTY, plain lines otherwise.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { abortOnSignals, CtunError, ExitCode, createLogger, metadata, printError, type Logger } from '../common/index.js';
import { projectPaths } from '../image/index.js';
import { defaultProgress, runSteps, type ProgressMode, type Step } from '../steps/index.js';
import {
  clientCommands,
  planIntegrated,
  planSeparated,
  removeDeployments,
  deploymentSteps,
  type DeploymentPlan,
  type DeploymentResult,
} from '../run/index.js';
import { connectDocker, type DockerEngine } from '../docker/index.js';
import { checkImagePrefix, demoImages, ensureImages, type ImageSet } from './images.js';
import { PYTHON_SOURCE_ENV, PYTHON_SOURCES, pythonSourceFrom, type PythonSource } from './python.js';
import { startLicenseStandin, type LicenseStandin } from './license.js';
import { Pc } from './pc.js';
import type { Proc } from '../lab/index.js';
import type { SessionRequest, StepLine } from './session.js';

export interface DemoOptions {
  /** Leave the deployments and the license stand-in running at the end; default false. */
  keep?: boolean;
  /** Run only one deployment; default both. */
  only?: 'integrated' | 'separated';
  /** Rebuild the images even when they exist; default false. */
  rebuild?: boolean;
  /** Python wheels for the simulator image where PyPI cannot be reached (also $CTUN_WHEELS). */
  wheels?: string;
  /** Base image of the builds; default debian:12 (bootstrapped when missing). */
  baseImage?: string;
  /** Names every image PREFIX/<name>, the base included: a fresh set built from nothing; default none. */
  imagePrefix?: string;
  /** Where the simulator image's Python packages come from without --wheels; default $CTUN_DEMO_PYTHON, else auto. */
  python?: PythonSource;
  /** License stand-in port on the Docker host; default 22350. */
  licensePort?: number;
  /** Distinguishes the PC namespace (and its addresses) from another run's; default 0. */
  pcIndex?: number;
  /** `tty` or `plain` (the step runner's modes). */
  progress: ProgressMode;
  /** Where plain lines go; default stdout. */
  write?: (text: string) => void;
  signal?: AbortSignal;
  logger?: Logger;
}

const ROOT = projectPaths().root;
const CTUN = join(ROOT, 'bin', 'ctun.js');
const SESSION = fileURLToPath(new URL('./session.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
/** A client stops within a second of SIGINT (it says goodbye to the server); this bounds a stuck one. */
const CLIENT_STOP_MS = 10_000;

function cliLine(plan: DeploymentPlan, pc: Pc): string {
  const veos = plan.containers.find((c) => c.role === 'veos')!;
  const args = plan.kind === 'integrated' ? ['ctun-run', 'veos', veos.image, plan.licenseServer.value, '--startCtun', 'yes'] : ['ctun-run', 'separate', veos.image, plan.licenseServer.value];
  if (veos.name !== 'dspace-veos') args.push('--veosDockerContainer', veos.name);
  const server = plan.containers.find((c) => c.role === 'ctun-server');
  if (server && server.name !== 'dspace-ctun-server') args.push('--ctunDockerContainer', server.name);
  if (plan.network && plan.network.name !== 'dspace-ctun') args.push('--dockerNetwork', plan.network.name);
  if (plan.client && plan.client.port !== metadata.defaultPort) args.push('--hostPort', String(plan.client.port));
  args.push('--host', pc.hostAddress);
  return args.join(' ');
}

function describeStep(line: StepLine, target: string): string {
  if (!line.ok) throw new CtunError('DEMO_STEP_FAILED', `${line.step} over the tunnel failed: ${line.error}`, { hint: 'see the client and container logs (--keep leaves them running)' });
  switch (line.step) {
    case 'open':
      return `port mapper ${target}:27027 opened a TCP server on port ${line.tcp} and a UDP server on port ${line.udp} (chosen at run time)`;
    case 'tcp':
      return `TCP ${target}:${line.port}: greeting "${line.greeting}", answer "${line.answer}"`;
    case 'udp':
      return `UDP ${target}:${line.port}: answer "${line.answer}"`;
    case 'xcp': {
      const seqs = line.daq.map((d) => d.seq);
      return `XCP ${target}:5555: CONNECT answered ${line.connect}, then ${line.daq.length} DAQ packets arrived unrequested (seq ${seqs[0]}..${seqs.at(-1)})`;
    }
    case 'discovery':
      return `broadcast DISCOVER: "${String(line.answer.product)}" ${String(line.answer.version)} answered from ${line.from}`;
    case 'direct':
      return `the same TCP port straight at the Docker host ${line.host}:${line.port}: ${line.result} (unreachable without the tunnel)`;
    default:
      return JSON.stringify(line);
  }
}

/** The first steps: images, the license stand-in, the PC; what they make is shared by the deployments. */
interface DemoWorld {
  engine: DockerEngine;
  logger: Logger;
  images: ImageSet;
  license?: LicenseStandin;
  pc?: Pc;
}

function setupSteps(o: DemoOptions, w: DemoWorld): Step[] {
  return [
    {
      title: 'images',
      run: async ({ say, progress, signal }) => {
        await w.engine.ping();
        const r = await ensureImages({
          docker: w.engine,
          logger: w.logger,
          ...(o.rebuild ? { rebuild: true } : {}),
          ...(o.wheels ? { wheels: o.wheels } : {}),
          ...(o.baseImage ? { baseImage: o.baseImage } : {}),
          ...(o.imagePrefix ? { imagePrefix: o.imagePrefix } : {}),
          ...(o.python ? { python: o.python } : {}),
          onPhase: say,
          onProgress: progress,
          signal,
        });
        if (!r.built.length) say(`${w.images.veos}, ${w.images.veosCtun}, ${w.images.separateServer}`);
        // The step line adds the time.
        return r.built.length ? `(built ${r.built.length} image${r.built.length === 1 ? '' : 's'})` : '(cached)';
      },
    },
    {
      title: 'license stand-in',
      run: async ({ say, signal, checkAborted, onUndo }) => {
        checkAborted('starting the license stand-in');
        const license = await startLicenseStandin(w.engine, { image: w.images.veos, ...(o.licensePort ? { port: o.licensePort } : {}), signal });
        w.license = license;
        onUndo(() => license.remove(), { keep: true });
        say(`license server ${license.server} (a container in the host's network namespace, bound to the Docker bridge address)`);
      },
    },
    {
      title: 'a network namespace standing for the PC',
      run: async ({ say, onUndo }) => {
        const pc = await Pc.create({ index: o.pcIndex ?? 0, prefix: 'ctundemo' });
        w.pc = pc;
        onUndo(() => pc.destroy());
        say(`PC ${pc.address}, its only link: a veth to the Docker host at ${pc.hostAddress}`);
      },
    },
  ];
}

/** One deployment: run it as ctun-run does, show the PC cannot reach it, connect, talk, remove. */
function deploymentDemoSteps(o: DemoOptions, w: DemoWorld, kind: 'integrated' | 'separated', alongside: boolean): Step[] {
  let plan: DeploymentPlan | undefined;
  let result: DeploymentResult | undefined;
  let client: Proc | undefined;
  const pc = (): Pc => w.pc!;
  return [
    {
      title: `${kind}: ctun-run ${kind === 'integrated' ? 'veos' : 'separate'}`,
      run: async ({ say, signal, checkAborted, onUndo }) => {
        checkAborted(`starting the ${kind} deployment`);
        const common = { licenseServer: w.license!.server, clientHost: pc().hostAddress, readyTimeoutMs: 90_000 };
        const p =
          kind === 'integrated'
            ? planIntegrated({ ...common, image: w.images.veosCtun, startCtun: true })
            : planSeparated({
                ...common,
                image: w.images.veos,
                ctunDockerImage: w.images.separateServer,
                // With --keep both stay up: the second one needs its own names and port.
                ...(alongside ? { veosDockerContainer: 'dspace-veos-separated', ctunDockerContainer: 'dspace-ctun-server-separated', dockerNetwork: 'dspace-ctun-separated', hostPort: metadata.defaultPort + 1 } : {}),
              });
        plan = p;
        say(`$ ${cliLine(p, pc())}`);
        onUndo(() => removeDeployments(w.engine, w.logger, { deployment: p.deployment }).then(() => undefined), { keep: true });
        const deployment = deploymentSteps(p, { engine: w.engine, logger: w.logger });
        await runSteps(deployment.steps, { progress: 'silent', logger: w.logger, signal, interruptedWhile: `starting the ${kind} deployment` });
        const r = deployment.result();
        result = r;
        for (const c of r.containers) say(`${c.role} ${c.name}: ${Object.entries(c.networks).map(([n, ip]) => `${ip} on ${n}`).join(', ')}`);
        say(`simulator ready: portmapper=${r.simulatorPorts.portMapper} xcp=${r.simulatorPorts.xcp} discovery=${r.simulatorPorts.discovery}`);
        say(`client command: ${r.commands!.client}`);
      },
    },
    {
      title: `${kind}: without the tunnel the PC cannot reach the simulator`,
      run: async ({ say }) => {
        const veos = result!.containers.find((c) => c.role === 'veos')!;
        const ip = Object.values(veos.networks)[0]!;
        const routed = await pc().routeTo(ip);
        const r = await pc().exec(process.execPath, ['--import', TSX, SESSION, JSON.stringify({ mode: 'reach', host: ip, port: result!.simulatorPorts.portMapper })]);
        const line = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { result?: string };
        if (routed || line.result === 'connected') throw new CtunError('DEMO_NOT_ISOLATED', `the PC reaches ${ip} directly, so it does not stand for a remote PC`);
        say(`container address ${ip}:${result!.simulatorPorts.portMapper} from the PC: ${line.result} (no route)`);
      },
    },
    {
      title: `${kind}: connect the client on the PC`,
      run: async ({ say, checkAborted, onUndo }) => {
        checkAborted('connecting the client');
        const cmds = clientCommands(plan!.client!, result!.dest);
        const conf = await pc().exec(process.execPath, [CTUN, 'configure', '--tap', plan!.client!.tap, plan!.client!.tapAddress, '--non-interactive']);
        if (conf.exitCode !== 0) throw new CtunError('DEMO_CONFIGURE', `ctun configure in the PC failed: ${conf.all}`);
        say(`$ ${cmds.configure.replace(/^sudo /, '')}`);
        say(`$ ${cmds.client}`);
        const c = pc().spawn(process.execPath, [CTUN, ...cmds.client.split(' ').slice(1)], { label: 'ctun client' });
        client = c;
        onUndo(async () => void (await c.stop()));
        const connected = await c.waitFor(/^.*client-connected.*$/m, 20_000);
        say(connected.replace(/^\S+\s+INFO\s+/, ''));
      },
    },
    {
      title: `${kind}: through the tunnel`,
      run: async ({ say, checkAborted }) => {
        checkAborted('talking through the tunnel');
        const target = result!.target;
        const request: SessionRequest = {
          mode: 'session',
          target,
          portMapper: result!.simulatorPorts.portMapper,
          xcp: result!.simulatorPorts.xcp,
          dockerHost: pc().hostAddress,
          names: { tcp: `${kind}-tcp`, udp: `${kind}-udp` },
          ...(kind === 'integrated' ? { discovery: { port: result!.simulatorPorts.discovery, broadcast: plan!.client!.tapAddress.replace(/\.\d+$/, '.255') } } : {}),
        };
        const r = await pc().exec(process.execPath, ['--import', TSX, SESSION, JSON.stringify(request)], { timeout: 60_000 });
        const lines = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as StepLine);
        if (lines.length === 0) throw new CtunError('DEMO_SESSION', `the PC session printed nothing: ${r.all}`);
        for (const l of lines) say(describeStep(l, target));
      },
    },
    {
      // The PC has one TAP: the next deployment's client needs it, so this client stops either way.
      title: o.keep ? `${kind}: stop the client (the deployment keeps running)` : `${kind}: remove`,
      run: async ({ say }) => {
        if (client?.alive) {
          client.kill('SIGINT');
          await client.waitExit(CLIENT_STOP_MS);
          say('client stopped');
        }
        if (o.keep) return;
        const r = await removeDeployments(w.engine, w.logger, { deployment: plan!.deployment });
        say(`removed ${[...r.containers, ...r.networks].join(', ')}`);
      },
    },
  ];
}

export async function runDemo(o: DemoOptions): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new CtunError('DEMO_NEEDS_ROOT', 'the demo makes a network namespace for the PC and a TAP device in it, which needs root', {
      hint: 'run it as root: sudo npm run demo',
      exitCode: ExitCode.Privileges,
    });
  }
  const write = o.write ?? ((t: string) => void process.stdout.write(t));
  const logger = o.logger ?? createLogger({ level: 'warn' });
  const world: DemoWorld = { engine: connectDocker(), logger, images: demoImages(o.imagePrefix) };
  const kinds = o.only ? [o.only] : (['integrated', 'separated'] as const);
  const steps = [...setupSteps(o, world), ...kinds.flatMap((kind) => deploymentDemoSteps(o, world, kind, kind === 'separated' && o.keep === true && kinds.length === 2))];
  const run = await runSteps(steps, {
    progress: o.progress,
    logger,
    writeLine: (l) => write(l + '\n'),
    ...(o.signal ? { signal: o.signal } : {}),
    interruptedWhile: 'running the demo',
    // A build's every line would bury the demo's own: those show live on a terminal only.
    plainProgress: false,
    // With --keep the deployments and the license stand-in stay, even after a failure.
    keepOnFailure: o.keep === true,
  });
  // The PC and the clients go in any case; with --keep the rest stays.
  await run.undo({ keep: o.keep === true });
  if (o.keep) {
    write('the deployments keep running: `ctun-run status` shows them, `ctun-run clean` removes them\n');
  } else {
    write('demo done: everything it started is removed\n');
  }
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('npm run demo --')
    .usage('$0 [options]\n\nThe whole product on this machine: images, license stand-in, both deployments, a client on a PC namespace, traffic through the tunnel.')
    .option('keep', { type: 'boolean', default: false, describe: 'leave the deployments and the license stand-in running' })
    .option('only', { choices: ['integrated', 'separated'] as const, describe: 'run one deployment only' })
    .option('separate', { type: 'boolean', default: false, describe: 'the separated deployment only (same as --only separated)' })
    .option('rebuild', { type: 'boolean', default: false, describe: 'rebuild the images even when they exist' })
    .option('wheels', { type: 'string', describe: 'directory of Python wheels for the simulator image, where PyPI is not reachable (default $CTUN_WHEELS)' })
    .option('baseImage', { type: 'string', describe: 'base image of the builds (default debian:12, bootstrapped from this host\'s apt mirror when missing)' })
    .option('imagePrefix', {
      type: 'string',
      describe: 'name every image PREFIX/<name>, the base image included: a set of its own, built from nothing (a cold first run that no other image can shortcut; remove the images afterwards with docker rmi)',
    })
    .option('python', {
      choices: PYTHON_SOURCES,
      describe: `where the simulator image's Python packages come from when no --wheels are given: auto (PyPI when it answers within a few seconds, else wheels made from this host's Debian mirror), pypi, or debian (PyPI never contacted) (default $${PYTHON_SOURCE_ENV}, else auto)`,
    })
    .option('licensePort', { type: 'number', describe: 'port of the license stand-in (default 22350)' })
    .option('progress', { choices: ['tty', 'plain'] as const, describe: 'progress output (default tty on a terminal, else plain)' })
    .option('verbose', { type: 'boolean', default: false, describe: 'log lines and the cause chain of errors' })
    .strict()
    .help()
    .parseAsync();
  const progress = argv.progress ?? (defaultProgress(process.stdout.isTTY) === 'tty' ? 'tty' : 'plain');
  try {
    const python = pythonSourceFrom(argv.python);
    if (argv.imagePrefix !== undefined) checkImagePrefix(argv.imagePrefix);
    await abortOnSignals('demo', (signal) =>
      runDemo({
        keep: argv.keep,
        ...(argv.separate ? { only: 'separated' as const } : argv.only ? { only: argv.only } : {}),
        rebuild: argv.rebuild,
        ...(argv.wheels ? { wheels: argv.wheels } : {}),
        ...(argv.baseImage ? { baseImage: argv.baseImage } : {}),
        ...(argv.imagePrefix ? { imagePrefix: argv.imagePrefix } : {}),
        python,
        ...(argv.licensePort ? { licensePort: argv.licensePort } : {}),
        progress,
        signal,
        logger: createLogger({ level: argv.verbose ? 'debug' : 'warn' }),
      }),
    );
    process.exitCode = 0;
  } catch (e) {
    process.exitCode = printError('demo', e, argv.verbose);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
