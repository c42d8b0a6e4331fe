import { metadata } from '../common/index.js';

/**
 * What other folders need to know about the stand-in simulator without reading its
 * Python: ports, environment variables, readiness lines, exit codes, install paths.
 * `payload/veos_standin.py --describe` prints the Python side's values; a unit test
 * holds these against it so the two cannot drift apart.
 */

/** Product name, as in the readiness line, the manifest and the discovery answer. */
export const STANDIN_PRODUCT = 'VEOS stand-in';

/** Default ports of the stand-in (all overridable, see {@link SIMULATOR_ENV}). */
export const SIMULATOR_PORTS = {
  /** TCP: the port mapper, the real VEOS CoSim port mapper's port. */
  portMapper: 27027,
  /** UDP: the XCP-on-Ethernet responder, the XCP default port. */
  xcp: 5555,
  /** UDP: the discovery responder (broadcasts). */
  discovery: 27028,
  /** TCP: the license server (dSPACE's default), and the license stand-in. */
  license: 22350,
} as const;

/** Environment variables the simulator, the license stand-in and install.sh read. */
export const SIMULATOR_ENV = {
  /** License server, `host` or `port@host` (default port 22350). Required. */
  licenseServer: 'DS_CMU_SERVER',
  /** Bind address of port mapper, XCP and opened servers; default 0.0.0.0. */
  bind: 'VEOS_STANDIN_BIND',
  /** Bind address of the discovery responder; default 0.0.0.0 (needed for broadcasts). */
  discoveryBind: 'VEOS_STANDIN_DISCOVERY_BIND',
  /** Port mapper TCP port; default 27027; 0 lets the kernel choose. */
  portMapperPort: 'VEOS_STANDIN_PORTMAPPER_PORT',
  /** XCP UDP port; default 5555; 0 lets the kernel choose. */
  xcpPort: 'VEOS_STANDIN_XCP_PORT',
  /** Discovery UDP port; default 27028; 0 lets the kernel choose. */
  discoveryPort: 'VEOS_STANDIN_DISCOVERY_PORT',
  /** License check attempts; default 5. */
  licenseAttempts: 'VEOS_STANDIN_LICENSE_ATTEMPTS',
  /** Pause between license check attempts in ms; default 1000. */
  licenseRetryDelayMs: 'VEOS_STANDIN_LICENSE_RETRY_DELAY_MS',
  /** Interval of pushed XCP DAQ packets in ms; default 100. */
  xcpDaqIntervalMs: 'VEOS_STANDIN_XCP_DAQ_INTERVAL_MS',
  /** Number of DAQ packets pushed after one CONNECT; default 600. */
  xcpDaqCount: 'VEOS_STANDIN_XCP_DAQ_COUNT',
  /** License stand-in port when `--port` is not given; default 22350. */
  licenseStandinPort: 'VEOS_STANDIN_LICENSE_PORT',
  /** License stand-in bind address when `--bind` is not given; default 0.0.0.0. */
  licenseStandinBind: 'VEOS_STANDIN_LICENSE_BIND',
} as const;

/** Environment variables of the tarball's install.sh. */
export const INSTALL_ENV = {
  /** Must be `yes`, or install.sh refuses to run. */
  acceptEula: 'DS_ACCEPT_EULA',
  /** Install directory; default {@link SIMULATOR_INSTALL_DIR}. */
  prefix: 'DS_INSTALL_PREFIX',
} as const;

/** Exit codes of `veos_standin.py` (and, where they apply, `license_standin.py`). */
export const SimulatorExitCode = {
  /** Stopped by SIGTERM or SIGINT. */
  Ok: 0,
  /** An unexpected error (a Python traceback). */
  Unexpected: 1,
  /** An environment variable is not a valid value (license stand-in: bad usage). */
  Config: 2,
  /** The license server stayed unreachable, or did not answer as one. */
  LicenseUnreachable: 3,
  /** `DS_CMU_SERVER` is not set or malformed. */
  LicenseServerUnset: 4,
  /** A listener could not bind its port (in use, or no such address). */
  Bind: 5,
} as const;
export type SimulatorExitCode = (typeof SimulatorExitCode)[keyof typeof SimulatorExitCode];

/** Exit codes of the tarball's install.sh. */
export const InstallExitCode = {
  Ok: 0,
  Failure: 1,
  EulaNotAccepted: 2,
  ChecksumMismatch: 3,
} as const;

/**
 * The one line the simulator prints on stdout once every listener is up, with the
 * bound ports: `VEOS stand-in ready: portmapper=27027 xcp=5555 discovery=27028`.
 */
export const SIMULATOR_READY_PATTERN = /^VEOS stand-in ready: portmapper=(\d+) xcp=(\d+) discovery=(\d+)$/m;

/** The license stand-in's ready line: `License stand-in ready: port=22350`. */
export const LICENSE_READY_PATTERN = /^License stand-in ready: port=(\d+)$/m;

/** The greeting line the license stand-in sends and the simulator expects. */
export const LICENSE_GREETING = 'DSPACE-LICENSE-STANDIN OK';

export interface SimulatorReadyPorts {
  portMapper: number;
  xcp: number;
  discovery: number;
}

/** The ports announced in simulator output, or undefined before the ready line. */
export function parseSimulatorReady(output: string): SimulatorReadyPorts | undefined {
  const m = SIMULATOR_READY_PATTERN.exec(output);
  if (!m) return undefined;
  return { portMapper: Number(m[1]), xcp: Number(m[2]), discovery: Number(m[3]) };
}

/** The port announced in license stand-in output, or undefined before its ready line. */
export function parseLicenseReady(output: string): number | undefined {
  const m = LICENSE_READY_PATTERN.exec(output);
  return m ? Number(m[1]) : undefined;
}

/** The release-named directory the real product installs to: `/opt/dspace/veos2023a`. */
export const SIMULATOR_INSTALL_DIR = `/opt/dspace/veos${metadata.veosRelease}`;

/** The product tarball's file name: `dspace-veos-2023a.tar.gz`. */
export const SIMULATOR_TARBALL_NAME = `dspace-veos-${metadata.veosRelease}.tar.gz`;

/** The tarball's top-level directory: `dspace-veos-2023a`. */
export const SIMULATOR_TARBALL_TOP_DIR = `dspace-veos-${metadata.veosRelease}`;

/** Paths of the entry points relative to the install directory. */
export const SIMULATOR_BIN = {
  simulator: 'bin/veos_standin.py',
  licenseStandin: 'bin/license_standin.py',
} as const;

/** The hint every tarball error carries. */
export const TARBALL_HINT =
  `expected ${SIMULATOR_TARBALL_NAME} from dSPACE, or make the stand-in with \`ctun-build standin\``;
