/**
 * Where the demo's simulator image gets its Python packages when no wheels are given.
 * PyPI is used only when it answers; a site without it (or a test, which must never
 * reach or even resolve pypi.org) gets wheels made from the host's Debian mirror plus
 * the demo's own stand-ins, in a folder of this run only, so a user's `ctun-build veos`
 * never picks them up.
 */
import { CtunError, ExitCode } from '../common/index.js';
import { DEFAULT_PIP_INDEX, httpProber, type Prober } from '../image/index.js';

/** `auto`: PyPI when it answers, else the Debian mirror; `pypi`: PyPI, not asked first; `debian`: the Debian mirror, PyPI never contacted. */
export type PythonSource = 'auto' | 'pypi' | 'debian';
export const PYTHON_SOURCES: readonly PythonSource[] = ['auto', 'pypi', 'debian'];

/** Environment variable that sets the source when no option does (e.g. `debian` on an offline site). */
export const PYTHON_SOURCE_ENV = 'CTUN_DEMO_PYTHON';

/** How long PyPI may take to answer the probe, name lookup included. */
export const PYPI_PROBE_TIMEOUT_MS = 4000;

export interface PythonDecision {
  source: 'pypi' | 'debian';
  /** Why, for the one progress line. */
  reason: string;
}

/** The source asked for: the option, else $CTUN_DEMO_PYTHON, else `auto`; anything else is a usage error. */
export function pythonSourceFrom(option: string | undefined, env: NodeJS.ProcessEnv = process.env): PythonSource {
  const value = option ?? env[PYTHON_SOURCE_ENV] ?? 'auto';
  if ((PYTHON_SOURCES as readonly string[]).includes(value)) return value as PythonSource;
  const from = option !== undefined ? '--python' : `$${PYTHON_SOURCE_ENV}`;
  throw new CtunError('DEMO_BAD_PYTHON_SOURCE', `${from} is "${value}"; expected one of ${PYTHON_SOURCES.join(', ')}`, {
    hint: 'use --python debian where PyPI cannot be reached, --python pypi where it can, or leave it out to let the demo ask',
    exitCode: ExitCode.Usage,
  });
}

/** Asks PyPI's project page for supervisor, bounded in time as a whole (lookup, connect, answer). */
export async function pypiAnswers(prober: Prober = httpProber(PYPI_PROBE_TIMEOUT_MS), timeoutMs = PYPI_PROBE_TIMEOUT_MS): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    const outcome = await Promise.race([prober(`${DEFAULT_PIP_INDEX}/supervisor/`, undefined), late]);
    return outcome !== false && 'status' in outcome && outcome.status >= 200 && outcome.status < 400;
  } finally {
    clearTimeout(timer);
  }
}

/** Decides the source; the probe runs only for `auto`. */
export async function choosePythonSource(source: PythonSource, probe: () => Promise<boolean> = () => pypiAnswers()): Promise<PythonDecision> {
  if (source === 'pypi') return { source: 'pypi', reason: 'PyPI as asked (--python pypi)' };
  if (source === 'debian') return { source: 'debian', reason: 'PyPI not asked (--python debian)' };
  return (await probe())
    ? { source: 'pypi', reason: 'PyPI answers' }
    : { source: 'debian', reason: `PyPI does not answer within ${PYPI_PROBE_TIMEOUT_MS / 1000} s` };
}
