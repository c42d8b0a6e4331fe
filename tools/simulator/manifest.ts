import { metadata } from '../common/index.js';
import { licenseStandinCommand, simulatorCommand } from './commands.js';
import {
  INSTALL_ENV,
  LICENSE_READY_PATTERN,
  SIMULATOR_ENV,
  SIMULATOR_INSTALL_DIR,
  SIMULATOR_PORTS,
  SIMULATOR_READY_PATTERN,
  STANDIN_PRODUCT,
  SimulatorExitCode,
} from './constants.js';

/**
 * `manifest.json` at the top of the stand-in tarball (and in the install directory):
 * what an image build needs to know without running anything. The entry points' argv
 * are absolute for `installDir`, install.sh's default prefix, so they can go into a
 * supervisord config as they are; for another prefix use simulatorCommand(prefix).
 */
export interface SimulatorManifest {
  schema: 1;
  product: string;
  release: string;
  version: string;
  installDir: string;
  installScript: string;
  entryPoints: {
    simulator: { argv: string[]; ready: string };
    licenseStandin: { argv: string[]; ready: string };
  };
  ports: Record<'portMapper' | 'xcp' | 'discovery' | 'license', { port: number; protocol: 'tcp' | 'udp' }>;
  env: Record<string, string>;
  exitCodes: Record<string, number>;
  /** Runtimes the image must provide: the stand-in needs Python 3 and no .NET. */
  needs: { python3: boolean; dotnet: boolean };
}

export function standinManifest(): SimulatorManifest {
  return {
    schema: 1,
    product: STANDIN_PRODUCT,
    release: metadata.veosRelease,
    version: metadata.veosVersion,
    installDir: SIMULATOR_INSTALL_DIR,
    installScript: 'install.sh',
    entryPoints: {
      simulator: {
        argv: simulatorCommand(SIMULATOR_INSTALL_DIR),
        ready: SIMULATOR_READY_PATTERN.source,
      },
      licenseStandin: {
        argv: licenseStandinCommand(SIMULATOR_INSTALL_DIR, SIMULATOR_PORTS.license),
        ready: LICENSE_READY_PATTERN.source,
      },
    },
    ports: {
      portMapper: { port: SIMULATOR_PORTS.portMapper, protocol: 'tcp' },
      xcp: { port: SIMULATOR_PORTS.xcp, protocol: 'udp' },
      discovery: { port: SIMULATOR_PORTS.discovery, protocol: 'udp' },
      license: { port: SIMULATOR_PORTS.license, protocol: 'tcp' },
    },
    env: { ...SIMULATOR_ENV, ...INSTALL_ENV },
    exitCodes: { ...SimulatorExitCode },
    needs: { python3: true, dotnet: false },
  };
}

/**
 * Checks that parsed JSON looks like a manifest: returns a reason when it does not.
 * Loose on purpose: only what consumers read is checked, so later fields can be added.
 */
export function manifestProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'is not a JSON object';
  const m = value as Record<string, unknown>;
  for (const key of ['product', 'release', 'version'] as const) {
    if (typeof m[key] !== 'string') return `has no string "${key}"`;
  }
  const needs = m['needs'] as Record<string, unknown> | undefined;
  if (typeof needs !== 'object' || needs === null || typeof needs['python3'] !== 'boolean' || typeof needs['dotnet'] !== 'boolean') {
    return 'has no "needs" with booleans "python3" and "dotnet"';
  }
  const entry = (m['entryPoints'] as Record<string, { argv?: unknown }> | undefined)?.['simulator'];
  if (!Array.isArray(entry?.argv) || !entry.argv.every((a) => typeof a === 'string')) {
    return 'has no "entryPoints.simulator.argv" string array';
  }
  return undefined;
}
