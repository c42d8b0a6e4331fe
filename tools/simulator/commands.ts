import { posix } from 'node:path';
import { CtunError, ExitCode } from '../common/index.js';
import { SIMULATOR_BIN, SIMULATOR_ENV, SIMULATOR_INSTALL_DIR, SIMULATOR_PORTS } from './constants.js';

/**
 * How to start the stand-in: argv for supervisord programs, Dockerfiles and tests.
 * The interpreter is named explicitly so neither exec bits nor the shebang matter,
 * and `-u` keeps stdout unbuffered under supervisord (the scripts flush too).
 */

/** argv that starts the simulator installed in `installDir` (default /opt/dspace/veos2023a). */
export function simulatorCommand(installDir: string = SIMULATOR_INSTALL_DIR): string[] {
  return ['python3', '-u', posix.join(installDir, SIMULATOR_BIN.simulator)];
}

/**
 * argv that starts the license stand-in installed in `installDir`.
 * @param port TCP port; default 22350; 0 lets the kernel choose (read it from the ready line).
 * @param bind listen address; default 0.0.0.0.
 */
export function licenseStandinCommand(
  installDir: string = SIMULATOR_INSTALL_DIR,
  port: number = SIMULATOR_PORTS.license,
  bind?: string,
): string[] {
  const argv = ['python3', '-u', posix.join(installDir, SIMULATOR_BIN.licenseStandin), '--port', String(port)];
  return bind === undefined ? argv : [...argv, '--bind', bind];
}

export interface LicenseServer {
  host: string;
  port: number;
}

/**
 * Parses a `DS_CMU_SERVER` value, `host` or `port@host` (default port 22350), as the
 * simulator does, so a deployment can reject a bad one before starting containers.
 */
export function parseLicenseServer(value: string): LicenseServer {
  const text = value.trim();
  const bad = (why: string): CtunError =>
    new CtunError('LICENSE_SERVER_INVALID', `License server "${value}" ${why}`, {
      hint: `give the license server as host or port@host (default port ${SIMULATOR_PORTS.license}), e.g. 22350@license.example`,
      exitCode: ExitCode.Usage,
    });
  if (text === '') throw bad('is empty');
  const at = text.lastIndexOf('@');
  let port: number = SIMULATOR_PORTS.license;
  if (at >= 0) {
    const portText = text.slice(0, at);
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      throw bad(`has "${portText}" where a port (1-65535) belongs`);
    }
    port = Number(portText);
  }
  const host = text.slice(at + 1).replace(/^\[(.*)\]$/, '$1');
  if (host === '' || /[\s@/]/.test(host)) throw bad('names no host');
  return { host, port };
}

/** Settings for {@link simulatorEnv}; anything left out keeps the simulator's default. */
export interface SimulatorEnvOptions {
  /** `DS_CMU_SERVER`: `host` or `port@host`. Required by the simulator. */
  licenseServer: string;
  /** Bind address of port mapper, XCP and opened servers; default 0.0.0.0. */
  bind?: string;
  /** Bind address of the discovery responder; default 0.0.0.0. */
  discoveryBind?: string;
  /** Ports; defaults {@link SIMULATOR_PORTS}; 0 lets the kernel choose. */
  ports?: Partial<Record<'portMapper' | 'xcp' | 'discovery', number>>;
  /** License check attempts; default 5. */
  licenseAttempts?: number;
  /** Pause between license check attempts in ms; default 1000. */
  licenseRetryDelayMs?: number;
  /** Interval of pushed XCP DAQ packets in ms; default 100. */
  xcpDaqIntervalMs?: number;
  /** DAQ packets pushed per CONNECT; default 600. */
  xcpDaqCount?: number;
}

/** The environment variables that configure the simulator as asked. */
export function simulatorEnv(options: SimulatorEnvOptions): Record<string, string> {
  const env: Record<string, string> = { [SIMULATOR_ENV.licenseServer]: options.licenseServer };
  const set = (name: string, value: string | number | undefined): void => {
    if (value !== undefined) env[name] = String(value);
  };
  set(SIMULATOR_ENV.bind, options.bind);
  set(SIMULATOR_ENV.discoveryBind, options.discoveryBind);
  set(SIMULATOR_ENV.portMapperPort, options.ports?.portMapper);
  set(SIMULATOR_ENV.xcpPort, options.ports?.xcp);
  set(SIMULATOR_ENV.discoveryPort, options.ports?.discovery);
  set(SIMULATOR_ENV.licenseAttempts, options.licenseAttempts);
  set(SIMULATOR_ENV.licenseRetryDelayMs, options.licenseRetryDelayMs);
  set(SIMULATOR_ENV.xcpDaqIntervalMs, options.xcpDaqIntervalMs);
  set(SIMULATOR_ENV.xcpDaqCount, options.xcpDaqCount);
  return env;
}
