/**
 * The HTTP endpoint of `--metrics [HOST:]PORT`: `/metrics` (Prometheus text format),
 * `/healthz` (the process answers), `/readyz` (the end's own checks: TAP present,
 * socket bound, for a client connected; 503 naming the failing check otherwise) and
 * `/status` (JSON figures with one entry per client, for `ctun status` and
 * `ctun-run status`). Loopback unless an address is given.
 */
import { createServer, type Server } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';
import type { Registry } from 'prom-client';
import { CtunError, ExitCode, errnoCode, formatHostPort, metadata, type Logger } from '../../common/index.js';
import type { Figures } from './figures.js';

/** Environment variable a `ctun server`/`client` takes `--metrics` from when the flag is absent (deployments set it). */
export const METRICS_ENV = 'CTUN_METRICS';

export interface MetricsAddress {
  host: string;
  port: number;
}

const badAddress = (value: string, why: string): CtunError =>
  new CtunError('BAD_METRICS_ADDRESS', `--metrics "${value}": ${why}`, {
    hint: `give PORT (loopback) or HOST:PORT, e.g. --metrics ${metadata.metricsPort} or --metrics 0.0.0.0:${metadata.metricsPort}`,
    exitCode: ExitCode.Usage,
  });

/** `PORT`, `HOST:PORT` or `[IPv6]:PORT`; the host defaults to 127.0.0.1 (loopback); port 0 = any free one. */
export function parseMetricsAddress(value: string): MetricsAddress {
  const text = value.trim();
  let host = '127.0.0.1';
  let portText = text;
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(text);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
    if (!isIPv6(host)) throw badAddress(value, `"${host}" is not an IPv6 address`);
  } else if (text.includes(':')) {
    const i = text.lastIndexOf(':');
    host = text.slice(0, i);
    portText = text.slice(i + 1);
    if (!isIPv4(host) && host !== 'localhost') throw badAddress(value, `"${host}" is not an IPv4 address (write IPv6 as [ADDRESS]:PORT)`);
  }
  if (!/^\d+$/.test(portText)) throw badAddress(value, `"${portText}" is not a port number`);
  const port = Number(portText);
  // 0 takes any free port (the `metrics-listening` line says which): for tests and scripts.
  if (port > 65535) throw badAddress(value, `port ${port} is not within 1-65535`);
  return { host, port };
}

export function formatMetricsAddress(a: MetricsAddress): string {
  return formatHostPort(a.host, a.port);
}

export interface EndpointOptions {
  address: MetricsAddress;
  registry: Registry;
  /** Named checks; ready when every one is true. */
  readiness: () => Promise<Record<string, boolean>>;
  figures: () => Figures;
  logger: Logger;
}

export interface MetricsEndpoint {
  /** Where it listens (the port resolved when 0 was asked). */
  address: MetricsAddress;
  close(): Promise<void>;
}

/** Serves the endpoint; a taken port or an address not on this host is a CtunError with its exit code. */
export async function startMetricsEndpoint(o: EndpointOptions): Promise<MetricsEndpoint> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const json = (status: number, body: unknown): void => send(status, 'application/json', JSON.stringify(body) + '\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'GET only\n');
    switch (path) {
      case '/metrics':
        o.registry.metrics().then(
          (text) => send(200, o.registry.contentType, text),
          (e: Error) => send(500, 'text/plain', `metrics failed: ${e.message}\n`),
        );
        return;
      case '/healthz':
        return send(200, 'text/plain', 'ok\n');
      case '/readyz':
        o.readiness().then(
          (checks) => {
            const failing = Object.entries(checks).filter(([, ok]) => !ok).map(([k]) => k);
            json(failing.length === 0 ? 200 : 503, { ready: failing.length === 0, checks, ...(failing.length ? { failing } : {}) });
          },
          (e: Error) => json(503, { ready: false, error: e.message }),
        );
        return;
      case '/status':
        return json(200, o.figures());
      default:
        return send(404, 'text/plain', 'not found: try /metrics, /healthz, /readyz or /status\n');
    }
  });
  // Probes and scrapes are short: a stuck peer must not hold a socket for long.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  const shown = formatMetricsAddress(o.address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => {
      const code = errnoCode(e);
      if (code === 'EADDRINUSE') {
        reject(new CtunError('ADDRESS_IN_USE', `--metrics ${shown}: the address is in use`, { hint: 'give another port with --metrics [HOST:]PORT, or stop what listens there', exitCode: ExitCode.AddressInUse, cause: e }));
      } else if (code === 'EADDRNOTAVAIL') {
        reject(new CtunError('BAD_METRICS_ADDRESS', `--metrics ${shown}: ${o.address.host} is not an address of this host`, { hint: 'give an address of this host, 0.0.0.0 for all, or only PORT for loopback', exitCode: ExitCode.Usage, cause: e }));
      } else if (code === 'EACCES') {
        reject(new CtunError('PORT_PRIVILEGED', `--metrics ${shown}: not allowed to bind port ${o.address.port}`, { hint: 'use a port above 1023', exitCode: ExitCode.Privileges, cause: e }));
      } else reject(e);
    });
    server.listen(o.address.port, o.address.host, () => resolve());
  });
  server.on('error', (e) => o.logger.warn('metrics-error', { reason: e.message }));
  const bound = server.address();
  const address = { host: o.address.host, port: typeof bound === 'object' && bound !== null ? bound.port : o.address.port };
  o.logger.info('metrics-listening', { address: formatMetricsAddress(address), paths: '/metrics /healthz /readyz /status' });
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
