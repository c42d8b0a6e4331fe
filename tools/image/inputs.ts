import { isIP } from 'node:net';
import { CtunError, ExitCode, type ErrorCode } from '../common/index.js';

/**
 * What each build input may contain, checked before a value reaches a Dockerfile, a
 * build argument, an apt sources file or a shell. Every check returns problems
 * instead of throwing at the first, so one run of `ctun-build` can report them all;
 * {@link throwInputProblems} turns a list into one CtunError.
 *
 * Values that pass are returned normalized (a URL as the WHATWG parser writes it,
 * without a trailing slash): the plan carries that form, never the raw text. The
 * parser alone is not enough: it silently drops tabs and newlines, so the raw text is
 * checked first.
 */

export interface InputProblem {
  /** `BAD_BASE_IMAGE`, `BAD_PIP_INDEX`, ...: one per kind of input. */
  code: ErrorCode;
  /** The option that carried the value, as the user typed it (`--baseImage`). */
  option: string;
  /** The value as given. */
  value: string;
  /** One line naming the value and what is wrong with it. */
  message: string;
  /** One line saying what is allowed. */
  hint: string;
}

/** A checked value: the normalized form, or the problems that stop it. */
export type Checked<T = string> = { ok: true; value: T } | { ok: false; problems: InputProblem[] };

const NAMES: Record<string, string> = {
  '\n': 'a newline',
  '\r': 'a carriage return',
  '\t': 'a tab',
  ' ': 'a space',
  '\0': 'a NUL byte',
};

/** The first character of `value` outside `allowed`, named for a message ("a newline", "`$`"). */
function firstBad(value: string, allowed: RegExp): string | undefined {
  for (const ch of value) {
    if (allowed.test(ch)) continue;
    if (NAMES[ch]) return NAMES[ch];
    const code = ch.codePointAt(0)!;
    return code < 0x20 || code === 0x7f ? `control character 0x${code.toString(16).padStart(2, '0')}` : `\`${ch}\``;
  }
  return undefined;
}

/** Shows a value in a one-line message: control characters escaped, long values cut. */
export function showValue(value: string): string {
  const escaped = JSON.stringify(value.length > 120 ? `${value.slice(0, 117)}...` : value);
  return escaped;
}

function problem(code: ErrorCode, option: string, value: string, what: string, hint: string): InputProblem {
  return { code, option, value, message: `${option} ${showValue(value)} ${what}`, hint };
}

function fail(p: InputProblem): Checked<never> {
  return { ok: false, problems: [p] };
}

// ---------------------------------------------------------------- URLs

/**
 * Characters a URL input may hold: RFC 3986's unreserved and the delimiters a
 * package server URL needs. Left out on purpose: quotes, `$`, backquote, `\`,
 * parentheses, `;`, `|`, `<>`, `{}`, `*`, `!`, whitespace: none belongs in a server address,
 * and each means something to a shell or a Dockerfile.
 */
const URL_CHAR = /^[A-Za-z0-9._~:/?#=&%+,@[\]-]$/;
const URL_HINT_CHARS = 'letters, digits and . _ ~ : / ? = & % + , @ - [ ]';

export interface UrlRule {
  code: ErrorCode;
  /** Schemes accepted; default http and https. */
  schemes?: string[];
  /** What the URL is, for the hint: "a pip index such as https://pypi.org/simple". */
  example: string;
}

/** Checks a URL given by the user; returns its normalized form (no trailing slash, no fragment). */
export function checkUrl(option: string, value: string, rule: UrlRule): Checked {
  const schemes = rule.schemes ?? ['http', 'https'];
  const hint = `give ${rule.example} (${schemes.join(' or ')}; ${URL_HINT_CHARS})`;
  const bad = firstBad(value, URL_CHAR);
  if (bad) return fail(problem(rule.code, option, value, `contains ${bad}, which no server URL may hold`, hint));
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail(problem(rule.code, option, value, 'is not a URL', hint));
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (!schemes.includes(scheme)) return fail(problem(rule.code, option, value, `has the scheme ${scheme}:`, hint));
  if (url.hostname === '') return fail(problem(rule.code, option, value, 'names no host', hint));
  if (url.username || url.password) {
    return fail(problem(rule.code, option, value, 'holds credentials, which would stay in the image', 'give the URL without user:password@ (use a server that needs none from the build network)'));
  }
  if (url.hash) return fail(problem(rule.code, option, value, 'has a #fragment, which a server URL cannot use', hint));
  const normalized = url.href.replace(/\/+$/, '');
  // The parser percent-encodes, never decodes into unsafe characters; checked anyway
  // because the normalized form is what reaches the Dockerfile.
  const after = firstBad(normalized, URL_CHAR);
  if (after) return fail(problem(rule.code, option, value, `normalizes to ${showValue(normalized)}, which contains ${after}`, hint));
  return { ok: true, value: normalized };
}

// ---------------------------------------------------------------- image references

// The reference grammar of distribution/reference, written out: a registry host (a
// name with a dot or a port, or localhost), path components in lower case, a tag,
// an optional digest.
const HOST_PART = '(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)';
const REGISTRY = `(?:${HOST_PART}(?:\\.${HOST_PART})*(?::[0-9]{1,5})?|\\[[0-9A-Fa-f:.]+\\](?::[0-9]{1,5})?)`;
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REPOSITORY = `${COMPONENT}(?:/${COMPONENT})*`;
const TAG = '[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const IMAGE_REF = new RegExp(`^(?:${REGISTRY}/)?${REPOSITORY}(?::${TAG})?(?:@${DIGEST})?$`);
const REGISTRY_PREFIX = new RegExp(`^(?:${REGISTRY}|${REGISTRY}/${REPOSITORY}|${REPOSITORY})$`);
const IMAGE_CHAR = /^[A-Za-z0-9._:/@[\]-]$/;

const IMAGE_HINT = 'an image reference [registry[:port]/]name[:tag][@sha256:...] with a lower-case name (letters, digits, . _ - / : @)';

/** An image reference (`debian:12`, `10.0.0.5:5000/ubuntu:22.04`, `dspace/veos/simulator:23.1`). */
export function checkImageRef(option: string, value: string, code: ErrorCode = 'BAD_IMAGE_NAME'): Checked {
  const bad = firstBad(value, IMAGE_CHAR);
  if (bad) return fail(problem(code, option, value, `contains ${bad}, which no image name may hold`, `give ${IMAGE_HINT}`));
  if (value.length > 255 || !IMAGE_REF.test(value)) return fail(problem(code, option, value, 'is not an image reference', `give ${IMAGE_HINT}`));
  return { ok: true, value };
}

/** A registry, or a registry with a path, put before image names (`--tagPrefix`, `--dockerRepository`). */
export function checkRegistryPrefix(option: string, value: string, code: ErrorCode, o: { scheme?: boolean } = {}): Checked {
  // A registry may be written as a URL (http://10.0.0.5:5000): image names hold no scheme.
  const trimmed = (o.scheme ? value.replace(/^https?:\/\//i, '') : value).replace(/\/+$/, '');
  const hint = 'give a registry host[:port] and optionally a lower-case path, e.g. 10.0.0.5:5000 or registry.lab/ctun';
  const bad = firstBad(trimmed, IMAGE_CHAR);
  if (bad) return fail(problem(code, option, value, `contains ${bad}, which no registry or image path may hold`, hint));
  if (trimmed === '' || trimmed.length > 200 || !REGISTRY_PREFIX.test(trimmed)) return fail(problem(code, option, value, 'is not a registry or image path prefix', hint));
  return { ok: true, value: trimmed };
}

// ---------------------------------------------------------------- mirrors, names, packages

/**
 * An apt mirror as the seed takes it: a host name, an IP, or a URL. Only the URL form
 * is normalized here (apt.ts resolves the other two); a newline in any of them would
 * add a line to the image's sources.
 */
export function checkMirror(option: string, value: string, code: ErrorCode = 'BAD_MIRROR', exampleUrl = 'http://10.0.0.5/ubuntu'): Checked {
  // Not trimmed: a trailing newline is refused, not cut off.
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return checkUrl(option, value, { code, example: `a URL such as ${exampleUrl}` });
  const hint = `give a host name, an IP address or a URL, e.g. mirror.example.org, 10.0.0.5 or ${exampleUrl}`;
  const bad = firstBad(value, /^[A-Za-z0-9.:[\]-]$/);
  if (bad) return fail(problem(code, option, value, `contains ${bad}, which no host name or address may hold`, hint));
  const bare = value.replace(/^\[(.*)\]$/, '$1');
  if (isIP(bare) || /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?$/.test(value)) return { ok: true, value };
  return fail(problem(code, option, value, 'is neither a host name, an IP address nor a URL', hint));
}

/** A Docker network name (`--buildNetwork`). */
export function checkNetworkName(option: string, value: string): Checked {
  if (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(value)) return { ok: true, value };
  return fail(problem('BAD_NETWORK_NAME', option, value, 'is not a Docker network name', 'use letters, digits, _ . - (starting with a letter or digit)'));
}

/** A Debian package name, optionally `=version` (`--dotnetPackages`). */
export function checkPackageName(option: string, value: string): Checked {
  if (/^[a-z0-9][a-z0-9+.-]*(?:=[A-Za-z0-9.+~:-]+)?$/.test(value)) return { ok: true, value };
  return fail(problem('BAD_PACKAGE_NAME', option, value, 'is not a Debian package name', 'package names are lower-case letters, digits and + . - (optionally =VERSION), comma-separated'));
}

// ---------------------------------------------------------------- the inputs of a build

/** The user-given values of one `ctun-build ctun|veos` run, as they came in. */
export interface BuildInputs {
  baseImage?: string;
  dockerRepository?: string;
  tagPrefix?: string;
  archiveServer?: string;
  securityServer?: string;
  network?: string;
  /** Tag of the simulator image (veos). */
  image?: string;
  pipIndexUrl?: string;
  /** `--pipTrustedHost`: an http pip index is accepted without TLS. */
  pipTrustedHost?: boolean;
  dotnetServer?: string;
  /** A URL (a file path is read and parsed as a key by the preflight instead). */
  dotnetKey?: string;
  dotnetPackages?: string[];
}

/** Option names as the CLI spells them, for messages. */
export const INPUT_OPTIONS: Record<keyof BuildInputs, string> = {
  baseImage: '--baseImage',
  dockerRepository: '--dockerRepository',
  tagPrefix: '--tagPrefix',
  archiveServer: '--ubuntuArchiveServer',
  securityServer: '--ubuntuSecurityServer',
  network: '--buildNetwork',
  image: 'IMAGE',
  pipIndexUrl: '--pipIndexUrl',
  pipTrustedHost: '--pipTrustedHost',
  dotnetServer: '--dotnetServer',
  dotnetKey: '--dotnetKey',
  dotnetPackages: '--dotnetPackages',
};

/** The normalized values of the inputs that passed, for the plan. */
export type NormalizedInputs = Omit<BuildInputs, 'pipTrustedHost'>;

/**
 * Checks every input of a build and returns all problems (empty: all good) with the
 * normalized values. Pure: nothing is read or contacted.
 */
export function checkBuildInputs(inputs: BuildInputs): { problems: InputProblem[]; normalized: NormalizedInputs } {
  const problems: InputProblem[] = [];
  const normalized: NormalizedInputs = {};
  const take = <K extends keyof NormalizedInputs>(key: K, r: Checked<NonNullable<NormalizedInputs[K]>>): void => {
    if (r.ok) normalized[key] = r.value;
    else problems.push(...r.problems);
  };
  const o = INPUT_OPTIONS;
  if (inputs.baseImage !== undefined) take('baseImage', checkImageRef(o.baseImage, inputs.baseImage, 'BAD_BASE_IMAGE'));
  if (inputs.image !== undefined) take('image', checkImageRef(o.image, inputs.image));
  if (inputs.dockerRepository !== undefined) take('dockerRepository', checkRegistryPrefix(o.dockerRepository, inputs.dockerRepository, 'BAD_REGISTRY', { scheme: true }));
  if (inputs.tagPrefix !== undefined) take('tagPrefix', checkRegistryPrefix(o.tagPrefix, inputs.tagPrefix, 'BAD_TAG_PREFIX'));
  if (inputs.archiveServer !== undefined) take('archiveServer', checkMirror(o.archiveServer, inputs.archiveServer));
  if (inputs.securityServer !== undefined) take('securityServer', checkMirror(o.securityServer, inputs.securityServer));
  if (inputs.network !== undefined) take('network', checkNetworkName(o.network, inputs.network));
  if (inputs.pipIndexUrl !== undefined) {
    const r = checkUrl(o.pipIndexUrl, inputs.pipIndexUrl, { code: 'BAD_PIP_INDEX', example: 'a pip index such as https://pypi.org/simple' });
    if (r.ok && r.value.startsWith('http:') && !inputs.pipTrustedHost) {
      problems.push(
        problem(
          'PIP_INDEX_INSECURE',
          o.pipIndexUrl,
          inputs.pipIndexUrl,
          'is plain http: packages from it arrive unauthenticated and would run in the image',
          'use an https index, or --wheels DIR, or accept the risk with --pipTrustedHost (pip --trusted-host)',
        ),
      );
    } else take('pipIndexUrl', r);
  }
  // Like the mirrors, the .NET server may be a host or an IP (plan.ts resolveDotnetServer adds the feed's path).
  if (inputs.dotnetServer !== undefined) take('dotnetServer', checkMirror(o.dotnetServer, inputs.dotnetServer, 'BAD_DOTNET_SERVER', 'https://packages.microsoft.com/ubuntu/22.04/prod'));
  if (inputs.dotnetKey !== undefined) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(inputs.dotnetKey)) {
      take('dotnetKey', checkUrl(o.dotnetKey, inputs.dotnetKey, { code: 'BAD_DOTNET_KEY', schemes: ['https', 'http'], example: 'a key URL such as https://packages.microsoft.com/keys/microsoft.asc, or a key file' }));
    } else normalized.dotnetKey = inputs.dotnetKey; // a file: read and parsed as a key by the preflight, never written into the Dockerfile
  }
  if (inputs.dotnetPackages !== undefined) {
    const names: string[] = [];
    for (const p of inputs.dotnetPackages) {
      const r = checkPackageName(o.dotnetPackages, p);
      if (r.ok) names.push(r.value);
      else problems.push(...r.problems);
    }
    normalized.dotnetPackages = names;
  }
  return { problems, normalized };
}

/** Throws the problems of a run as one CtunError (a usage error); nothing when there are none. */
export function throwInputProblems(problems: InputProblem[]): void {
  if (problems.length === 0) return;
  const [first] = problems as [InputProblem];
  if (problems.length === 1) {
    throw new CtunError(first.code, first.message, { hint: first.hint, exitCode: ExitCode.Usage });
  }
  throw new CtunError('BUILD_INPUTS_INVALID', `${problems.length} build inputs are refused:\n${problems.map((p) => `  - ${p.message} (${p.hint})`).join('\n')}`, {
    hint: 'fix each value listed; nothing was built',
    exitCode: ExitCode.Usage,
  });
}

// ---------------------------------------------------------------- what the tarball's manifest says

/** The fields of a simulator tarball's manifest that reach the Dockerfile and supervisord's configuration. */
export interface TarballFields {
  path: string;
  topDir: string;
  installScript: string;
  installDir: string;
  ports: string[];
  simulatorArgv: string[];
}

const PATH_CHARS = /^[A-Za-z0-9._/+-]$/;

/**
 * The tarball is an input too: its manifest names the install directory, the install
 * script, the ports and the simulator's command line, which end up in RUN, COPY and
 * EXPOSE lines and in supervisord's configuration. A damaged or hostile manifest must
 * not add a line to either.
 */
export function checkTarballFields(t: TarballFields): InputProblem[] {
  const problems: InputProblem[] = [];
  const where = `the tarball ${t.path}`;
  const path = (field: string, value: string, absolute: boolean): void => {
    const bad = firstBad(value, PATH_CHARS);
    const shape = absolute ? value.startsWith('/') : !value.startsWith('/');
    if (bad || !shape || value.split('/').includes('..') || value.length > 255) {
      problems.push({
        code: 'BAD_TARBALL_MANIFEST',
        option: 'TARBALL',
        value,
        message: `${where} gives ${field} ${showValue(value)}, which ${bad ? `contains ${bad}` : 'is not a plain ' + (absolute ? 'absolute' : 'relative') + ' path'}`,
        hint: `${field} must be a${absolute ? 'n absolute' : ' relative'} path of letters, digits and . _ / + - without ..; use the tarball dSPACE ships, or rebuild the stand-in with ctun-build standin`,
      });
    }
  };
  if (t.topDir !== '') path('its top directory', t.topDir, false);
  path('the install script', t.installScript, false);
  path('the install directory', t.installDir, true);
  for (const p of t.ports) {
    const m = /^([0-9]{1,5})\/(tcp|udp)$/.exec(p);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535) {
      problems.push({ code: 'BAD_TARBALL_MANIFEST', option: 'TARBALL', value: p, message: `${where} gives the port ${showValue(p)}`, hint: 'ports are NUMBER/tcp or NUMBER/udp, 1-65535' });
    }
  }
  for (const a of t.simulatorArgv) {
    const bad = firstBad(a, /^[^\x00-\x1f\x7f]$/);
    if (bad) {
      problems.push({
        code: 'BAD_TARBALL_MANIFEST',
        option: 'TARBALL',
        value: a,
        message: `${where} gives a simulator argument ${showValue(a)}, which contains ${bad}`,
        hint: 'arguments of the simulator command may hold no control characters',
      });
    }
  }
  return problems;
}

/**
 * Checks the inputs of a plan's options and returns the options with the normalized
 * values in their place; throws all problems at once as one CtunError.
 */
export function normalizeBuildOptions<T extends BuildInputs>(options: T, tarball?: TarballFields): T {
  const { problems, normalized } = checkBuildInputs(options);
  if (tarball) problems.push(...checkTarballFields(tarball));
  throwInputProblems(problems);
  return { ...options, ...normalized };
}
