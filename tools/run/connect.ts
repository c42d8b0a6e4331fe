import { TUNNEL_DEFAULTS, type Logger } from '../common/index.js';
import { configure, defaultTapUser, hasNetAdmin, TapDevice, TunnelClient } from '../tunnel/index.js';
import { loadTlsMaterial } from '../tunnel/secure/index.js';
import type { ClientPlan } from './plan.js';

/**
 * `--connect`: the client on this host, in this process. The TAP is made first with
 * `ctun configure` when this process may (NET_ADMIN, i.e. root); otherwise the client
 * expects the TAP a `sudo ctun configure` made, and says so when it is missing.
 */
export interface ConnectOptions {
  client: ClientPlan;
  /** Separated: the simulator's address routed through the tunnel. */
  dest?: string;
  logger: Logger;
  /** Bound on the first welcome; default 20 000 ms. */
  timeoutMs?: number;
}

export interface ConnectedClient {
  client: TunnelClient;
  /** Whether this process made or updated the TAP. */
  configured: boolean;
  stop(reason?: string): Promise<void>;
}

export async function connectClient(o: ConnectOptions): Promise<ConnectedClient> {
  let configured = false;
  if (await hasNetAdmin()) {
    const r = await configure(
      { tap: { name: o.client.tap, address: o.client.tapAddress, prefix: TUNNEL_DEFAULTS.prefix, user: defaultTapUser(), mtu: TUNNEL_DEFAULTS.mtu } },
      { logger: o.logger },
    );
    configured = true;
    o.logger.info('tap-configured', { tap: o.client.tap, address: `${o.client.tapAddress}/24`, actions: r.actions.join('; ') });
  } else {
    o.logger.info('tap-not-configured-here', { tap: o.client.tap, reason: 'no NET_ADMIN: using the TAP a `sudo ctun configure` made' });
  }
  const client = new TunnelClient({
    host: o.client.host,
    port: o.client.port,
    transport: o.client.transport,
    tap: o.client.tap,
    ...(o.dest ? { dest: o.dest } : {}),
    ...(o.client.tls ? { tls: loadTlsMaterial(o.client.tls) } : {}),
    logger: o.logger,
    openDevice: (name) => new TapDevice(name),
  });
  await client.start();
  try {
    await Promise.race([
      client.waitConnected(o.timeoutMs ?? 20_000),
      client.done.then((e) => {
        if (e) throw e;
      }),
    ]);
  } catch (e) {
    await client.stop('connect failed');
    throw e;
  }
  return { client, configured, stop: (reason = 'stopped') => client.stop(reason) };
}
