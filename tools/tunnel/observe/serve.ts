/**
 * One call for the CLI: `--metrics` (or CTUN_METRICS) of a server or client → the
 * registry and the HTTP endpoint, or nothing when neither is given.
 */
import { metadata, type Logger } from '../../common/index.js';
import { METRICS_ENV, parseMetricsAddress, startMetricsEndpoint, type MetricsEndpoint } from './endpoint.js';
import type { Figures } from './figures.js';
import { createTunnelRegistry, type BuildInfo } from './registry.js';

export interface ObservedEnd {
  figures(): Figures;
  readiness(): Promise<Record<string, boolean>>;
}

export interface Observation {
  endpoint: MetricsEndpoint | undefined;
  observeRtt(ms: number): void;
  close(): Promise<void>;
}

/** The --metrics value in force: the flag, else $CTUN_METRICS, else off (undefined). */
export function metricsSetting(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = flag ?? env[METRICS_ENV];
  return v === undefined || v.trim() === '' ? undefined : v;
}

/**
 * Parses the address and serves before the tunnel end starts, so a bad or taken
 * address fails before anything (TAP, NAT rules) is set up.
 */
export async function serveMetrics(
  setting: string | undefined,
  end: ObservedEnd,
  o: { role: BuildInfo['role']; transport: string; mode: string; tls: boolean; logger: Logger; busyPoll?: () => Figures['busyPoll'] },
): Promise<Observation> {
  if (setting === undefined) return { endpoint: undefined, observeRtt: () => {}, close: async () => {} };
  const address = parseMetricsAddress(setting);
  // The busy poll is the process's, not the end's: its figures join the end's here.
  const figures = (): Figures => (o.busyPoll === undefined ? end.figures() : { ...end.figures(), busyPoll: o.busyPoll() });
  const { registry, observeRtt } = createTunnelRegistry(
    { version: metadata.ctunVersion, role: o.role, transport: o.transport, mode: o.mode, security: o.tls ? 'tls' : 'plain' },
    figures,
  );
  const endpoint = await startMetricsEndpoint({ address, registry, readiness: () => end.readiness(), figures, logger: o.logger });
  return { endpoint, observeRtt, close: () => endpoint.close() };
}
