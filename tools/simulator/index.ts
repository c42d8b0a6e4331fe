/**
 * The stand-in simulator: its product tarball (build and inspect), how to start it
 * and its license stand-in, and the constants deployments wait on. The simulator
 * itself is Python (payload/), because the simulator image has no Node.
 */
export {
  INSTALL_ENV,
  InstallExitCode,
  LICENSE_GREETING,
  LICENSE_READY_PATTERN,
  parseLicenseReady,
  parseSimulatorReady,
  SIMULATOR_BIN,
  SIMULATOR_ENV,
  SIMULATOR_INSTALL_DIR,
  SIMULATOR_PORTS,
  SIMULATOR_READY_PATTERN,
  SIMULATOR_TARBALL_NAME,
  SIMULATOR_TARBALL_TOP_DIR,
  SimulatorExitCode,
  STANDIN_PRODUCT,
  TARBALL_HINT,
  type SimulatorReadyPorts,
} from './constants.js';
export {
  licenseStandinCommand,
  parseLicenseServer,
  simulatorCommand,
  simulatorEnv,
  type LicenseServer,
  type SimulatorEnvOptions,
} from './commands.js';
export { standinManifest, type SimulatorManifest } from './manifest.js';
export {
  buildStandinTarball,
  type BuildStandinTarballOptions,
  type BuiltTarball,
} from './tarball.js';
export {
  inspectSimulatorTarball,
  type InspectSimulatorTarballOptions,
  type SimulatorTarballInfo,
} from './inspect.js';
export {
  discover,
  lineClient,
  openServers,
  ProbeError,
  splitXcp,
  tcpConversation,
  tcpReach,
  udpConversation,
  xcpFrame,
  xcpSession,
  type LineClient,
  type OpenedServers,
  type XcpResult,
} from './client.js';
