export { TunnelServer, assertServerMode, DEFAULT_MAX_CLIENTS, type ServerOptions, type ServerMode } from './server.js';
export { TunnelClient, DEFAULT_DEAD_AFTER_MS, MIN_DEAD_AFTER_MS, type ClientOptions } from './client.js';
export { configure, defaultTapUser, describeRequest, hasNetAdmin, type ConfigureRequest, type ConfigureResult, type Confirm } from './configure.js';
export type { BusyPollStats } from './native.js';
export { TapDevice, busyPollFigures, DEFAULT_BUSY_POLL_US, MAX_BUSY_POLL_US } from './tap.js';
export { createMemoryDevicePair, MemoryDevice, type FrameDevice } from './device.js';
export { NetConfig, runCommand, type CommandRunner } from './netconfig.js';
export { parseCidr } from './address.js';
export type { TransportKind } from './link/index.js';
export type { TunnelStats } from './stats.js';
export * as protocol from './protocol.js';
export { addonPath, loadAddon } from './native.js';
export {
  serveMetrics,
  metricsSetting,
  fetchStatus,
  formatStatus as formatTunnelStatus,
  parseMetricsAddress,
  StatusLine,
  runStatusLine,
  wantStatusLine,
  METRICS_ENV,
  METRIC_NAMES,
  type Figures,
  type ClientFigures,
} from './observe/index.js';
