import { CtunError, ExitCode, type ErrorCode } from '../common/index.js';
import { daemonMessage, dockerStatus } from '../docker/index.js';
import { buildCommandFor, type ContainerPlan, type NetworkPlan } from './plan.js';

/**
 * The daemon's refusals and the containers' own last words, turned into one-line
 * causes with a hint: a name in use, a port taken, no /dev/net/tun, no NET_ADMIN,
 * an unreachable license server, a missing image.
 */

export function imageMissing(spec: Pick<ContainerPlan, 'image' | 'imageRole' | 'name'>): CtunError {
  return new CtunError('IMAGE_MISSING', `image ${spec.image} (for container ${spec.name}) does not exist on this Docker host`, {
    hint: `build it: ${buildCommandFor(spec.imageRole, spec.image)}`,
  });
}

/** `ours`: the deployment (ctun-run's label) the existing resource belongs to, if any. */
export function nameInUse(kind: 'container' | 'network', name: string, ours: string | undefined, option: string): CtunError {
  return new CtunError(
    'NAME_IN_USE',
    `a ${kind} named ${name} already exists${ours ? ' (left by an earlier ctun-run)' : ''}`,
    {
      hint: ours
        ? `remove it with \`ctun-run clean --deployment ${ours}\`, or choose another name with ${option}`
        : `it is not ctun's: choose another name with ${option}, or remove it yourself (docker ${kind === 'network' ? 'network ' : ''}rm ${name})`,
    },
  );
}

/** Explains an error of creating or starting a container. */
export function explainContainerError(e: unknown, spec: ContainerPlan, step: 'create' | 'start'): CtunError {
  const msg = daemonMessage(e);
  const code = dockerStatus(e);
  if (code === 409 && /already in use/i.test(msg)) return nameInUse('container', spec.name, undefined, spec.role === 'veos' ? '--veosDockerContainer' : '--ctunDockerContainer');
  if (code === 404 && /no such image/i.test(msg)) return imageMissing(spec);
  const port = spec.ports[0];
  if (/port is already allocated|address already in use/i.test(msg) && port) {
    return new CtunError('ADDRESS_IN_USE', `port ${port.host}/${port.protocol} on the Docker host is taken, so ${spec.name} cannot publish the tunnel port`, {
      hint: `stop what uses it (\`ctun-run status\` shows ctun's own deployments), or publish another one with --hostPort`,
      exitCode: ExitCode.AddressInUse,
      cause: e,
    });
  }
  if (/\/dev\/net\/tun/.test(msg)) {
    return new CtunError('NO_TUN_DEVICE', `the Docker host has no /dev/net/tun, which the tunnel server in ${spec.name} needs`, {
      hint: 'load the tun module on the Docker host (`modprobe tun`) and check that /dev/net/tun exists',
      exitCode: ExitCode.Device,
      cause: e,
    });
  }
  if (/sysctl/i.test(msg)) {
    return new CtunError('SYSCTL_REFUSED', `the daemon refused the sysctl net.ipv4.ip_forward=1 for ${spec.name}: ${msg}`, {
      hint: 'the separate server needs forwarding in its own network namespace; run it on a bridge network (not --network host)',
      cause: e,
    });
  }
  return new CtunError('DOCKER_API', `${step === 'create' ? 'creating' : 'starting'} container ${spec.name} failed: ${msg}`, {
    hint: 'see `docker info` and the daemon log; run again with --verbose for the cause chain',
    cause: e,
  });
}

export function explainNetworkError(e: unknown, spec: NetworkPlan): CtunError {
  const msg = daemonMessage(e);
  if (/already exists/i.test(msg)) return nameInUse('network', spec.name, undefined, '--dockerNetwork');
  if (/overlap|pool/i.test(msg)) {
    return new CtunError('NETWORK_SUBNET', `network ${spec.name} cannot be created: ${msg}`, { hint: 'give a free subnet with --subnet', cause: e });
  }
  return new CtunError('DOCKER_API', `creating network ${spec.name} failed: ${msg}`, { cause: e });
}

/** What a container's log says went wrong, if anything: checked while waiting for readiness. */
export interface LogFailure {
  code: ErrorCode;
  message: string;
  hint: string;
  exitCode: number;
}

const LICENSE_LINE = /^veos-standin: error: (license server .*?unreachable.*?|.*license.*?)(?:; (.*))?$/m;
const SIMULATOR_LINE = /^veos-standin: error: (.*)$/m;
const CTUN_LINE = /ctun: error: (.*)$/m;
const CTUN_HINT = /ctun: hint: (.*)$/m;
const FATAL_LINE = /gave up: (\S+) entered FATAL state.*$/m;

/** Reads a container's log for the known ways the simulator or the tunnel server fail. */
export function failureInLog(log: string, container: string): LogFailure | undefined {
  const lic = LICENSE_LINE.exec(log);
  if (lic) {
    return {
      code: 'LICENSE_SERVER_UNREACHABLE',
      message: `the simulator in ${container} cannot reach its license server: ${lic[1]}`,
      hint: (lic[2] ?? 'start the license server and check that the container reaches it') + ' (the LICENSE_SERVER argument is passed as DS_CMU_SERVER)',
      exitCode: ExitCode.Failure,
    };
  }
  const sim = SIMULATOR_LINE.exec(log);
  if (sim) {
    return { code: 'SIMULATOR_FAILED', message: `the simulator in ${container} failed: ${sim[1]}`, hint: `see docker logs ${container}`, exitCode: ExitCode.Failure };
  }
  const ctun = CTUN_LINE.exec(log);
  if (ctun) {
    const text = ctun[1]!;
    const hint = CTUN_HINT.exec(log)?.[1];
    if (/NET_ADMIN|not permitted|EPERM/i.test(text)) {
      return {
        code: 'NO_NET_ADMIN',
        message: `the tunnel server in ${container} lacks the NET_ADMIN capability: ${text}`,
        hint: 'the container needs --cap-add NET_ADMIN (ctun-run adds it; a daemon policy or rootless Docker may drop it)',
        exitCode: ExitCode.Privileges,
      };
    }
    if (/\/dev\/net\/tun|tun device|ENOENT/i.test(text)) {
      return {
        code: 'NO_TUN_DEVICE',
        message: `the tunnel server in ${container} cannot open /dev/net/tun: ${text}`,
        hint: 'the container needs --device /dev/net/tun (ctun-run passes it) and the host the tun module',
        exitCode: ExitCode.Device,
      };
    }
    return { code: 'TUNNEL_SERVER_FAILED', message: `the tunnel server in ${container} failed: ${text}`, hint: hint ?? `see docker logs ${container}`, exitCode: ExitCode.Failure };
  }
  const fatal = FATAL_LINE.exec(log);
  if (fatal) {
    return {
      code: 'PROCESS_FATAL',
      message: `${fatal[1]} in ${container} kept failing and supervisord gave up`,
      hint: `see docker logs ${container}`,
      exitCode: ExitCode.Failure,
    };
  }
  return undefined;
}

/** The last lines of a log, indented, for error messages. */
export function logTail(log: string, lines = 15): string {
  return log
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(-lines)
    .map((l) => `  | ${l}`)
    .join('\n');
}
