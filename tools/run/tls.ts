import { X509Certificate } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { CtunError, ExitCode, TLS_MOUNT_PATH, unbracket } from '../common/index.js';
import { loadTlsMaterial } from '../tunnel/secure/index.js';
import { CTUN_ENV, type BindMount, type ContainerPlan, type DeploymentPlan, type PortSpec } from './plan.js';

/**
 * `ctun-run veos|separate --tls DIR`: the deployment with mutual TLS, from a folder
 * made by `ctun certs` (ca.crt, server.crt/key, client certificates, ca.crl when
 * something was revoked). The server container gets exactly the files it needs,
 * mounted read-only one by one (never ca.key, never a client key, never baked into
 * an image); the client command and `--connect` get the CA, a client certificate and
 * its key.
 */

/** The files of a `ctun certs` folder a deployment uses, as absolute host paths. */
export interface RunTls {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  /** ca.crl, when the folder has one: the server refuses what it lists. */
  crl?: string;
  client: { name: string; cert: string; key: string };
}

function usage(message: string, hint: string): CtunError {
  return new CtunError('TLS_DIR', message, { hint, exitCode: ExitCode.Usage });
}

/** Client certificates of a folder: `NAME.crt` with `NAME.key` beside it, but the CA's and the server's. */
export function clientNames(files: string[]): string[] {
  return files
    .filter((f) => f.endsWith('.crt') && f !== 'ca.crt' && f !== 'server.crt')
    .map((f) => f.slice(0, -4))
    .filter((n) => files.includes(`${n}.key`))
    .sort();
}

/**
 * Reads a `ctun certs` folder: every file there and sound (each key belongs to its
 * certificate), the client certificate chosen, and the server certificate naming the
 * host the client dials (otherwise the client would refuse the server, later and
 * less clearly). Usage errors name the file and the `ctun certs` command that fixes it.
 */
export function resolveRunTls(dirGiven: string, given: { client?: string; clientHost: string }): RunTls {
  // The certificate names an IPv6 address bare, however --host wrote it.
  const o = { ...given, clientHost: unbracket(given.clientHost) };
  const dir = resolve(dirGiven);
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch (e) {
    throw new CtunError('TLS_DIR', `--tls ${dirGiven} cannot be read: ${(e as Error).message}`, {
      hint: `make it with: ctun certs init --out ${dirGiven} && ctun certs server --host ${o.clientHost} --out ${dirGiven} && ctun certs client NAME --out ${dirGiven}`,
      exitCode: ExitCode.Usage,
      cause: e,
    });
  }
  const missing = ['ca.crt', 'server.crt', 'server.key'].filter((f) => !files.includes(f));
  if (missing.length) {
    throw usage(`--tls ${dirGiven} lacks ${missing.join(', ')}`, missing.includes('ca.crt') ? `make the CA first: ctun certs init --out ${dirGiven}` : `ctun certs server --host ${o.clientHost} --out ${dirGiven}`);
  }
  const clients = clientNames(files);
  let name = o.client;
  if (name === undefined) {
    if (clients.length !== 1) {
      throw usage(
        clients.length === 0 ? `--tls ${dirGiven} holds no client certificate` : `--tls ${dirGiven} holds ${clients.length} client certificates (${clients.join(', ')})`,
        clients.length === 0 ? `make one: ctun certs client NAME --out ${dirGiven}` : 'choose one with --tlsClient NAME',
      );
    }
    name = clients[0]!;
  } else if (!clients.includes(name)) {
    throw usage(`--tlsClient ${name}: ${dirGiven} has no ${name}.crt with ${name}.key`, clients.length ? `choose one of ${clients.join(', ')}` : `make it: ctun certs client ${name} --out ${dirGiven}`);
  }
  const tls: RunTls = {
    dir,
    ca: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    client: { name, cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) },
  };
  if (files.includes('ca.crl')) tls.crl = join(dir, 'ca.crl');
  // Both ends' material is loaded as the tunnel will load it: a broken file fails here.
  const server = loadTlsMaterial({ ca: tls.ca, cert: tls.serverCert, key: tls.serverKey, ...(tls.crl ? { crl: tls.crl } : {}) });
  loadTlsMaterial({ ca: tls.ca, cert: tls.client.cert, key: tls.client.key });
  const cert = new X509Certificate(server.cert);
  const named = isIP(o.clientHost) ? cert.checkIP(o.clientHost) : cert.checkHost(o.clientHost);
  if (!named) {
    throw usage(
      `${tls.serverCert} does not name ${o.clientHost}, the address the client dials (${cert.subjectAltName ?? 'no subject alternative names'}), so the client would refuse the server`,
      `issue it for that address: ctun certs server --host ${o.clientHost} --out ${dirGiven} --force (or give --host the name it lists)`,
    );
  }
  return tls;
}

/** `ctun server` flags for the files as the container sees them. */
export function serverTlsFlags(tls: RunTls): string[] {
  const at = (f: string) => `${TLS_MOUNT_PATH}/${f}`;
  return ['--tls', '--ca', at('ca.crt'), '--cert', at('server.crt'), '--key', at('server.key'), ...(tls.crl ? ['--crl', at('ca.crl')] : [])];
}

/** The read-only bind mounts of the server container: each file alone, so ca.key stays out. */
export function serverTlsMounts(tls: RunTls): BindMount[] {
  const pairs: Array<[string, string]> = [
    [tls.ca, 'ca.crt'],
    [tls.serverCert, 'server.crt'],
    [tls.serverKey, 'server.key'],
  ];
  if (tls.crl) pairs.push([tls.crl, 'ca.crl']);
  return pairs.map(([source, name]) => ({ source, target: `${TLS_MOUNT_PATH}/${name}` }));
}

/**
 * A plan with mutual TLS (pure): the tunnel server gets the files and the flags; over
 * UDP its port is published for TCP too (the handshake runs over TCP on the same port
 * number); the client gets its certificate.
 */
export function withTls(plan: DeploymentPlan, tls: RunTls): DeploymentPlan {
  if (!plan.tunnel || !plan.client) {
    throw usage('--tls needs a tunnel server, and none is started', 'add --startCtun yes (on an image built with --installCtun yes)');
  }
  const flags = serverTlsFlags(tls);
  const containers = plan.containers.map((c): ContainerPlan => {
    const serves = plan.kind === 'separated' ? c.role === 'ctun-server' : c.role === 'veos';
    if (!serves) return c;
    const ports: PortSpec[] = [...c.ports];
    for (const p of c.ports) {
      if (p.protocol === 'udp' && !c.ports.some((q) => q.protocol === 'tcp' && q.container === p.container)) ports.push({ ...p, protocol: 'tcp' });
    }
    const next: ContainerPlan = { ...c, ports, mounts: [...(c.mounts ?? []), ...serverTlsMounts(tls)] };
    if (plan.kind === 'separated') next.cmd = [...(c.cmd ?? []), ...flags];
    // The integrated server runs under supervisord beside the simulator; the image's
    // entrypoint hands CTUN_ARGS to `ctun server`.
    else next.env = { ...c.env, [CTUN_ENV.args]: [c.env[CTUN_ENV.args], ...flags].filter(Boolean).join(' ') };
    return next;
  });
  return { ...plan, containers, client: { ...plan.client, tls: { ca: tls.ca, cert: tls.client.cert, key: tls.client.key } } };
}

