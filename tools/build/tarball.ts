import { posix } from 'node:path';
import { metadata } from '../common/index.js';
import {
  inspectSimulatorTarball,
  SIMULATOR_INSTALL_DIR,
  SIMULATOR_PORTS,
  simulatorCommand,
  type SimulatorTarballInfo,
} from '../simulator/index.js';
import type { TarballInfo } from './plan.js';

/** The part of an inspected tarball a BuildPlan holds (pure, for tests). */
export function tarballInfoFrom(info: SimulatorTarballInfo): TarballInfo {
  const m = info.manifest;
  const installDir = m?.installDir ?? SIMULATOR_INSTALL_DIR;
  const script = info.topDir && info.installScript.startsWith(`${info.topDir}/`) ? info.installScript.slice(info.topDir.length + 1) : info.installScript;
  const ports = m
    ? Object.entries(m.ports)
        .filter(([name]) => name !== 'license') // the license server is a client connection
        .map(([, p]) => `${p.port}/${p.protocol}`)
    : [`${SIMULATOR_PORTS.portMapper}/tcp`, `${SIMULATOR_PORTS.xcp}/udp`, `${SIMULATOR_PORTS.discovery}/udp`];
  return {
    path: info.path,
    product: info.product ?? m?.product ?? 'VEOS',
    release: info.release,
    version: info.version ?? m?.version ?? metadata.veosVersion,
    topDir: info.topDir,
    installScript: posix.normalize(script),
    installDir,
    simulatorArgv: m?.entryPoints.simulator.argv ?? simulatorCommand(installDir),
    needsDotnet: m?.needs.dotnet ?? true,
    ports,
  };
}

/**
 * Validates the simulator tarball before anything is built (missing file, not a
 * simulator tarball, wrong release: a CtunError with a hint) and returns what the
 * plan needs.
 */
export async function describeTarball(path: string): Promise<TarballInfo> {
  return tarballInfoFrom(await inspectSimulatorTarball(path, { expectedRelease: metadata.veosRelease }));
}
