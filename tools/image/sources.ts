import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { CtunError, ExitCode, type ErrorCode } from '../common/index.js';
import { securitySuite } from './apt.js';
import type { BuildPlan } from './plan.js';

/**
 * Preflight of the package sources a plan names: each one is asked for a file it must
 * serve, from the build host, before anything is built. A failure names the source,
 * the address tried and what came back.
 */
export type SourceRole = 'apt archive' | 'apt security' | '.NET feed' | 'registry';

export interface SourceProbe {
  role: SourceRole;
  /** What the user gave (host, IP or URL), for messages. */
  given: string;
  /** Alternatives tried in order; the first that answers as expected wins. */
  urls: string[];
  /** `name:ip` the build maps (the seed's IP form): the probe connects to the IP. */
  extraHosts: string[];
  /** Registries answer 401 on /v2/ without credentials: any HTTP answer counts. */
  anyStatus: boolean;
}

const CODES: Record<SourceRole, ErrorCode> = {
  'apt archive': 'APT_ARCHIVE_UNREACHABLE',
  'apt security': 'APT_SECURITY_UNREACHABLE',
  '.NET feed': 'DOTNET_SERVER_UNREACHABLE',
  registry: 'REGISTRY_UNREACHABLE',
};

const OPTIONS: Record<SourceRole, string> = {
  'apt archive': '--ubuntuArchiveServer / --archiveServer (UBUNTU_ARCHIVE_SERVER)',
  'apt security': '--ubuntuSecurityServer / --securityServer (UBUNTU_SECURITY_SERVER)',
  '.NET feed': '--dotnetServer (MICROSOFT_DOTNET_SERVER)',
  registry: '--dockerRepository',
};

/** Pure: what to ask each apt and .NET source of a plan (the registry is probed only when a pull is needed). */
export function sourceProbes(plan: BuildPlan): SourceProbe[] {
  const probes: SourceProbe[] = [];
  if (plan.apt.rewrite) {
    const suite = plan.apt.release.suite;
    for (const [role, server, s] of [
      ['apt archive', plan.apt.archive, suite],
      ['apt security', plan.apt.security, securitySuite(plan.apt.release)],
    ] as const) {
      probes.push({
        role,
        given: server.given,
        urls: [`${server.url}/dists/${s}/InRelease`, `${server.url}/dists/${s}/Release`],
        extraHosts: server.extraHosts,
        anyStatus: false,
      });
    }
  }
  const d = plan.dotnet;
  if (d?.needed) {
    probes.push({
      role: '.NET feed',
      given: d.server,
      urls: [`${d.server}/dists/${d.suite}/InRelease`, `${d.server}/dists/${d.suite}/Release`],
      extraHosts: [],
      anyStatus: false,
    });
  }
  return probes;
}

export function registryProbe(registry: string): SourceProbe {
  const host = registry.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
  return { role: 'registry', given: registry, urls: [`https://${host}/v2/`, `http://${host}/v2/`], extraHosts: [], anyStatus: true };
}

/** The outcome of asking one URL: an HTTP status, or why there was none. */
export type ProbeOutcome = { status: number } | { error: string };

/** How URLs are asked (the real one speaks HTTP; unit tests pass a table). */
export type Prober = (url: string, connectTo: string | undefined) => Promise<ProbeOutcome>;

/** GET with a bounded time; only the status line matters, the body is dropped. */
export function httpProber(timeoutMs = 5000): Prober {
  return (url, connectTo) =>
    new Promise<ProbeOutcome>((resolve) => {
      const u = new URL(url);
      const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
        {
          host: connectTo ?? u.hostname.replace(/^\[(.*)\]$/, '$1'),
          port: u.port || (u.protocol === 'https:' ? 443 : 80),
          path: u.pathname + u.search,
          method: 'GET',
          headers: { host: u.host, 'user-agent': 'ctun-build-preflight' },
          servername: u.hostname,
          timeout: timeoutMs,
        },
        (res) => {
          resolve({ status: res.statusCode ?? 0 });
          res.destroy();
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code && !e.message.includes(e.code) ? `${e.code} ${e.message}` : e.message }));
      req.end();
    });
}

/** Asks every probe; the first source that does not answer is a CtunError naming it. */
export async function checkSources(probes: SourceProbe[], prober: Prober): Promise<void> {
  for (const p of probes) {
    const tried: string[] = [];
    let ok = false;
    for (const url of p.urls) {
      const host = new URL(url).hostname;
      const mapped = p.extraHosts.find((h) => h.startsWith(`${host}:`))?.slice(host.length + 1);
      const outcome = await prober(url, mapped);
      const where = mapped ? `${url} (at ${mapped})` : url;
      if ('status' in outcome && (p.anyStatus || (outcome.status >= 200 && outcome.status < 300))) {
        ok = true;
        break;
      }
      tried.push('status' in outcome ? `${where}: HTTP ${outcome.status}` : `${where}: ${outcome.error}`);
    }
    if (!ok) {
      throw new CtunError(CODES[p.role], `the ${p.role} source "${p.given}" does not answer: ${tried.join('; ')}`, {
        hint: `check ${OPTIONS[p.role]} and that this host and the build network reach it`,
        exitCode: ExitCode.Failure,
      });
    }
  }
}
