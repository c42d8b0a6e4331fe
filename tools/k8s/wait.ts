import { CtunError, ExitCode, type Logger } from '../common/index.js';
import { SimulatorExitCode } from '../simulator/index.js';
import type { Clock, ContainerStatusLike, KubeApi, PodLike } from './api.js';
import { SIMULATOR_CONTAINER, TUNNEL_CONTAINER } from './render.js';

/** What a container's exit code means, for the containers we ship. */
export function exitCodeMeaning(container: string | undefined, code: number | undefined): string | undefined {
  if (code === undefined) return undefined;
  if (code === 137) return 'killed (SIGKILL: out of memory, or a failed liveness probe)';
  if (code === 143) return 'stopped by SIGTERM';
  if (container === TUNNEL_CONTAINER) {
    const m: Record<number, string> = {
      [ExitCode.Usage]: 'bad usage (check the args of the container)',
      [ExitCode.Privileges]: 'missing privileges (NET_ADMIN, or /dev/net/tun not mounted)',
      [ExitCode.AddressInUse]: 'address in use (another process holds the tunnel port)',
      [ExitCode.Rejected]: 'rejected',
      [ExitCode.Device]: 'TAP device error (is /dev/net/tun a character device on the node?)',
      [ExitCode.Failure]: 'failure (see the log)',
    };
    return m[code];
  }
  if (container === SIMULATOR_CONTAINER) {
    // Any simulator image may run here: these are the stand-in's codes, said as such.
    const m: Record<number, string> = {
      [SimulatorExitCode.LicenseUnreachable]: 'license server unreachable (DS_CMU_SERVER)',
      [SimulatorExitCode.LicenseServerUnset]: 'DS_CMU_SERVER not set or malformed',
      [SimulatorExitCode.Bind]: 'a simulator port could not be bound',
    };
    return m[code] ? `for the stand-in simulator: ${m[code]}` : undefined;
  }
  return undefined;
}

/** Waiting reasons after which waiting longer does not help. */
const FATAL_WAITING = new Set(['CrashLoopBackOff', 'ImagePullBackOff', 'ErrImagePull', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError', 'RunContainerError']);

function podName(p: PodLike): string {
  return p.metadata?.name ?? '?';
}

function isReady(p: PodLike): boolean {
  return p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** One line per pod: phase, and the reason a container is not ready. */
export function describePod(p: PodLike): string {
  const parts = [`${podName(p)} ${p.status?.phase ?? 'Unknown'}`];
  if (p.status?.reason) parts.push(p.status.reason);
  const unscheduled = (p.status?.conditions ?? []).find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (unscheduled) parts.push(`unschedulable: ${unscheduled.message ?? unscheduled.reason ?? ''}`.trim());
  for (const c of p.status?.containerStatuses ?? []) {
    if (c.ready) continue;
    const w = c.state?.waiting;
    const t = c.lastState?.terminated;
    let s = `${c.name}: ${w?.reason ?? (c.state?.running ? 'running, not ready' : c.state?.terminated ? `terminated (${c.state.terminated.exitCode})` : 'not ready')}`;
    if (t?.exitCode !== undefined) s += `, last exit code ${t.exitCode}`;
    if (c.restartCount) s += `, ${c.restartCount} restarts`;
    parts.push(s);
  }
  if (isReady(p)) parts.push('Ready');
  return parts.join(', ');
}

function fatalContainer(p: PodLike): { c: ContainerStatusLike; reason: string } | undefined {
  for (const c of [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]) {
    const reason = c.state?.waiting?.reason;
    if (reason && FATAL_WAITING.has(reason)) return { c, reason };
  }
  return undefined;
}

/** The sysctl a SysctlForbidden message names (`forbidden sysctl: "X" not allowlisted`); IPv4 forwarding if it names none. */
function forbiddenSysctl(message: string | undefined): string {
  return /sysctl: "([^"]+)"/.exec(message ?? '')?.[1] ?? 'net.ipv4.ip_forward';
}

/** The error for a pod that will not become ready by waiting (or undefined). */
export function podFailure(p: PodLike, images: Record<string, string> = {}): CtunError | undefined {
  const name = podName(p);
  if (p.status?.phase === 'Failed') {
    const reason = p.status.reason ?? 'Failed';
    const msg = p.status.message ? `: ${p.status.message}` : '';
    const sysctl = forbiddenSysctl(p.status.message);
    const hint =
      reason === 'SysctlForbidden'
        ? `the kubelet must allow the sysctl: kubelet --allowed-unsafe-sysctls=${sysctl} (minikube start --extra-config=kubelet.allowed-unsafe-sysctls=${sysctl})`
        : `kubectl describe pod ${name}`;
    return new CtunError('K8S_POD_FAILED', `pod ${name} failed (${reason})${msg}`, { hint });
  }
  const fatal = fatalContainer(p);
  if (!fatal) return undefined;
  const { c, reason } = fatal;
  if (reason === 'CrashLoopBackOff') {
    const t = c.lastState?.terminated;
    const code = t?.exitCode;
    const meaning = exitCodeMeaning(c.name, code);
    const detail = code === undefined ? 'no exit code recorded' : `last exit code ${code}${meaning ? ` (${meaning})` : ''}${t?.reason ? `, reason ${t.reason}` : ''}`;
    return new CtunError('K8S_CRASHLOOP', `container ${c.name} of pod ${name} is in CrashLoopBackOff after ${c.restartCount ?? 0} restarts: ${detail}`, {
      hint: `the kubelet keeps restarting it with back-off (10 s ... 5 min); see why: kubectl logs ${name} -c ${c.name} --previous`,
    });
  }
  if (reason === 'ImagePullBackOff' || reason === 'ErrImagePull' || reason === 'InvalidImageName') {
    const image = c.name ? images[c.name] : undefined;
    return new CtunError('K8S_IMAGE', `container ${c.name} of pod ${name} cannot get its image${image ? ` ${image}` : ''} (${reason})${c.state?.waiting?.message ? `: ${c.state.waiting.message}` : ''}`, {
      hint: `load it into the cluster (minikube image load ${image ?? 'IMAGE'}) or give --registry`,
    });
  }
  return new CtunError('K8S_CONTAINER', `container ${c.name} of pod ${name} cannot start (${reason})${c.state?.waiting?.message ? `: ${c.state.waiting.message}` : ''}`, {
    hint: `kubectl describe pod ${name}`,
  });
}

export interface WaitOptions {
  namespace: string;
  /** Label selector of the pods, e.g. `app=veos`. */
  selector: string;
  /** How many pods must be Ready. */
  count: number;
  /** What is awaited, for messages, e.g. "the simulator pods". */
  what: string;
  /** Default 180 000 ms: image pulls and the simulator's license check take time. */
  timeoutMs?: number;
  /** Poll interval; default 2000 ms. */
  intervalMs?: number;
  /** Container name → image, for image pull messages. */
  images?: Record<string, string>;
  clock: Clock;
  logger: Logger;
}

/**
 * Waits until `count` pods matching the selector are Ready. Fails at once when a
 * pod cannot get there by waiting (CrashLoopBackOff, image pull errors, rejected
 * sysctl), naming the container and its last exit code; on timeout says what was
 * awaited, for how long, and the last status seen.
 */
export async function waitForPods(api: KubeApi, o: WaitOptions): Promise<PodLike[]> {
  const timeoutMs = o.timeoutMs ?? 180_000;
  const intervalMs = o.intervalMs ?? 2_000;
  const start = o.clock.now();
  let last = 'no pods yet';
  let lastLogged = '';
  for (;;) {
    const pods = await api.listPods(o.namespace, o.selector);
    for (const p of pods) {
      const failure = podFailure(p, o.images);
      if (failure) throw failure;
    }
    const ready = pods.filter(isReady).sort((a, b) => podName(a).localeCompare(podName(b)));
    last = pods.length === 0 ? 'no pods yet' : pods.map(describePod).join('; ');
    if (last !== lastLogged) {
      o.logger.info('k8s-wait', { what: o.what, ready: ready.length, want: o.count, status: last });
      lastLogged = last;
    }
    if (ready.length >= o.count) return ready;
    const elapsed = o.clock.now() - start;
    if (elapsed >= timeoutMs) {
      throw new CtunError(
        'K8S_WAIT_TIMEOUT',
        `waited ${Math.round(timeoutMs / 1000)} s for ${o.what} (${o.count} pod${o.count === 1 ? '' : 's'} labelled ${o.selector} in namespace ${o.namespace}) to be Ready; ${ready.length} ready; last seen: ${last}`,
        { hint: 'give more time with --timeout, or look: kubectl get pods -l ' + o.selector + ' -n ' + o.namespace + ' and kubectl describe pod' },
      );
    }
    await o.clock.sleep(Math.min(intervalMs, timeoutMs - elapsed));
  }
}
