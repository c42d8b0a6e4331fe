import { CtunError, ExitCode, metadata, SERVER_CIDR, TUNNEL_DEFAULTS } from '../common/index.js';
import { SIMULATOR_PORTS } from '../simulator/index.js';

/** The tunnel's transport, as `ctun server --transport`. */
export type K8sTransport = 'udp' | 'tcp';

/**
 * The IP families the tunnel serves in the cluster. What each means for the server's
 * listening address and the Service is in {@link IP_FAMILIES}.
 */
export type K8sIpFamily = 'dual' | 'ipv4' | 'ipv6';

/**
 * Per family: where the tunnel server and its metrics endpoint listen in the pod, and
 * the Service's family fields (the API's own names; `undefined` leaves the field out).
 * `::` is IPv6 and, by Linux's default, IPv4 too, so one pod works on an IPv4, an IPv6
 * and a dual-stack cluster, and the kubelet's HTTP probes reach /readyz at the pod IP
 * of either family. `0.0.0.0` serves IPv4 only, through the addon's batch socket, the
 * fast path the IPv6 socket lacks (node:dgram).
 */
export const IP_FAMILIES: Record<K8sIpFamily, { listen: string; ipFamilyPolicy: 'PreferDualStack' | 'SingleStack'; ipFamilies?: Array<'IPv4' | 'IPv6'> }> = {
  dual: { listen: '::', ipFamilyPolicy: 'PreferDualStack' },
  ipv4: { listen: '0.0.0.0', ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv4'] },
  ipv6: { listen: '::', ipFamilyPolicy: 'SingleStack', ipFamilies: ['IPv6'] },
};

/**
 * What the manifests are rendered from. Every field is optional; {@link resolveParams}
 * fills the defaults, which are the seed's (images and port from metadata.json).
 */
export interface K8sParams {
  /** License server for `DS_CMU_SERVER`, `host` or `port@host`. Default: `<LICENSE_SERVER>` (a placeholder that the seed's manual asks to replace). */
  licenseServer?: string;
  /** Registry prefixed to every image, e.g. `registry.local:5000`. Default: none (images as loaded with `minikube image load`). */
  registry?: string;
  /** Simulator image. Default: metadata `images.veos` (dspace/veos/simulator:23.1). */
  veosImage?: string;
  /** Tunnel server image of the integrated pod. Default: metadata `images.localServer`. */
  localServerImage?: string;
  /** Tunnel server image of the separated deployment. Default: metadata `images.separateServer`. */
  separateServerImage?: string;
  /** Simulator pods of the separated deployment (veos.23.1.yaml). Default: 5, as the seed. */
  replicas?: number;
  /** Tunnel port in the pods and on the Service. Default: metadata `defaultPort` (1723). */
  port?: number;
  /** Fixed NodePort (30000-32767). Default: none, the cluster allocates one. */
  nodePort?: number;
  /** Tunnel transport. Default: `udp`; `tcp` for `--via port-forward` and TCP-only networks. */
  transport?: K8sTransport;
  /**
   * IP families of the tunnel. Default: `dual`: the server listens on `::` (IPv6 and
   * IPv4) and the Service asks for `ipFamilyPolicy: PreferDualStack`, so it works on
   * IPv4, IPv6 and dual-stack clusters; the client is given the node address the node
   * lists first. `ipv4`: `0.0.0.0` (the addon's batch socket), an IPv4 single-stack
   * Service and an IPv4 node address; `ipv6`: `::`, an IPv6 single-stack Service and
   * an IPv6 node address.
   */
  ipFamily?: K8sIpFamily;
  /** Namespace written into the manifests. Default: none (kubectl's or the context's). */
  namespace?: string;
  /**
   * Secret holding `ca.crt`, `tls.crt` and `tls.key` (e.g. made by `kubectl create secret
   * generic NAME --from-file=...` from `ctun certs` output). When given, it is mounted at
   * {@link TLS_MOUNT_PATH} and the server gets `--tls --ca --cert --key`. Default: none
   * (plain tunnel, which the server says in its start-up line).
   */
  tlsSecret?: string;
  /**
   * The TLS secret also holds `ca.crl` (`ctun certs revoke`): it is mounted beside the
   * certificates and the server gets `--crl`, so revoked clients are refused. Needs
   * {@link tlsSecret}. Default: false.
   */
  crl?: boolean;
  /** Size of the simulator's /dev/shm (memory-backed emptyDir). Default: `256Mi`, as the seed's `--shm-size 256m`. */
  shmSize?: string;
  /** `imagePullPolicy` of every container. Default: `IfNotPresent` (works with `minikube image load`). */
  imagePullPolicy?: 'IfNotPresent' | 'Always' | 'Never';
  /** TCP port whose accepting makes the simulator ready (startup, readiness, liveness probes). Default: 27027, the port mapper. */
  readyPort?: number;
}

export type ResolvedK8sParams = Required<Omit<K8sParams, 'registry' | 'nodePort' | 'namespace' | 'tlsSecret'>> &
  Pick<K8sParams, 'registry' | 'nodePort' | 'namespace' | 'tlsSecret'>;

/** Where a TLS secret is mounted in the tunnel server containers (one home: tools/common). */
export { TLS_MOUNT_PATH } from '../common/index.js';

/** Placeholder license server of the checked-in manifests (the seed's `nano` step). */
export const LICENSE_SERVER_PLACEHOLDER = '<LICENSE_SERVER>';

/** TAP the server creates in the pod, and its tunnel address (the `ctun server` defaults). */
export const SERVER_TAP = { name: TUNNEL_DEFAULTS.serverTap, address: SERVER_CIDR } as const;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUANTITY = /^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$/;

function bad(message: string, hint?: string): CtunError {
  return new CtunError('K8S_PARAMS', message, { hint, exitCode: ExitCode.Usage });
}

/** Fills defaults and checks every value once, at the entry ("Expected x to be ..., got y"). */
export function resolveParams(p: K8sParams = {}): ResolvedK8sParams {
  const r: ResolvedK8sParams = {
    licenseServer: p.licenseServer ?? LICENSE_SERVER_PLACEHOLDER,
    registry: p.registry?.replace(/\/+$/, '') || undefined,
    veosImage: p.veosImage ?? metadata.images.veos,
    localServerImage: p.localServerImage ?? metadata.images.localServer,
    separateServerImage: p.separateServerImage ?? metadata.images.separateServer,
    replicas: p.replicas ?? 5,
    port: p.port ?? TUNNEL_DEFAULTS.port,
    nodePort: p.nodePort,
    transport: p.transport ?? TUNNEL_DEFAULTS.transport,
    ipFamily: p.ipFamily ?? 'dual',
    namespace: p.namespace,
    tlsSecret: p.tlsSecret,
    crl: p.crl ?? false,
    shmSize: p.shmSize ?? '256Mi',
    imagePullPolicy: p.imagePullPolicy ?? 'IfNotPresent',
    readyPort: p.readyPort ?? SIMULATOR_PORTS.portMapper,
  };
  if (!Number.isInteger(r.readyPort) || r.readyPort < 1 || r.readyPort > 65535) throw bad(`Expected the ready port to be a TCP port 1-65535, got ${r.readyPort}`);
  if (r.licenseServer.trim() === '' || /\s/.test(r.licenseServer)) {
    throw bad(`Expected the license server to be host or port@host, got "${r.licenseServer}"`, 'e.g. ctun-run k8s integrated 22350@license.example');
  }
  if (!Number.isInteger(r.replicas) || r.replicas < 1 || r.replicas > 100) throw bad(`Expected replicas to be 1-100, got ${r.replicas}`);
  if (!Number.isInteger(r.port) || r.port < 1 || r.port > 65535) throw bad(`Expected the port to be 1-65535, got ${r.port}`);
  if (r.nodePort !== undefined && (!Number.isInteger(r.nodePort) || r.nodePort < 30000 || r.nodePort > 32767)) {
    throw bad(`Expected the NodePort to be 30000-32767 (the default service-node-port-range), got ${r.nodePort}`);
  }
  if (r.transport !== 'udp' && r.transport !== 'tcp') throw bad(`Expected the transport to be udp or tcp, got "${String(r.transport)}"`);
  if (!Object.hasOwn(IP_FAMILIES, r.ipFamily)) throw bad(`Expected the IP family to be ${Object.keys(IP_FAMILIES).join(', ')}, got "${String(r.ipFamily)}"`, 'e.g. --ip-family dual (IPv4 and IPv6, the default)');
  if (r.namespace !== undefined && (!DNS_LABEL.test(r.namespace) || r.namespace.length > 63)) {
    throw bad(`Expected the namespace to be a DNS label (lower case, digits, '-'), got "${r.namespace}"`);
  }
  if (r.tlsSecret !== undefined && (!DNS_SUBDOMAIN.test(r.tlsSecret) || r.tlsSecret.length > 253)) {
    throw bad(`Expected the TLS secret to be a Secret name, got "${r.tlsSecret}"`);
  }
  if (r.crl && r.tlsSecret === undefined) throw bad('Expected a TLS secret with --crl: the CRL is read from the secret that holds the certificates', 'add --tls-secret NAME (a Secret with ca.crt, tls.crt, tls.key and ca.crl)');
  if (!QUANTITY.test(r.shmSize)) throw bad(`Expected the shm size to be a quantity such as 256Mi, got "${r.shmSize}"`);
  if (!['IfNotPresent', 'Always', 'Never'].includes(r.imagePullPolicy)) throw bad(`Expected imagePullPolicy IfNotPresent, Always or Never, got "${r.imagePullPolicy}"`);
  for (const [what, image] of [['veos image', r.veosImage], ['local server image', r.localServerImage], ['separate server image', r.separateServerImage]] as const) {
    if (image.trim() === '' || /\s/.test(image)) throw bad(`Expected the ${what} to be an image reference, got "${image}"`);
  }
  return r;
}

/** `registry/name:tag`, or the image as given when no registry is set. */
export function imageRef(registry: string | undefined, image: string): string {
  return registry ? `${registry}/${image}` : image;
}
