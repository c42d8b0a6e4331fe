import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CtunError, ExitCode, formatHostPort, metadata } from '../common/index.js';
import { SIMULATOR_PORTS } from '../simulator/index.js';
import { fillTemplate, group, leafPaths, pickValues, templateRefs } from './template.js';
import { imageRef, IP_FAMILIES, resolveParams, SERVER_TAP, TLS_MOUNT_PATH, type K8sParams, type ResolvedK8sParams } from './params.js';

/** A Kubernetes object as rendered: plain JSON. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

/** The seed's four manifest files, by the names its manual applies. */
export const MANIFEST_FILES = {
  service: 'ctun-service.yaml',
  integrated: 'veos.23.1.ctun.yaml',
  simulator: 'veos.23.1.yaml',
  separateServer: 'ctun-separate-server.yaml',
  /** Ours, not the seed's: only the tunnel port reaches the tunnel server pod. */
  networkPolicy: 'ctun-network-policy.yaml',
} as const;
export type ManifestKey = keyof typeof MANIFEST_FILES;

/** Object names, fixed so the seed's commands (`kubectl get service ctun-service`, `-l app=veos`) keep working. */
export const OBJECT_NAMES = {
  service: 'ctun-service',
  integrated: 'veos-ctun',
  simulator: 'veos',
  separateServer: 'ctun-separate-server',
  networkPolicy: 'ctun-tunnel-port-only',
} as const;

/** Label every object carries; `ctun-run k8s delete` finds what to remove by it, never by name. */
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'ctun' } as const;
export const MANAGED_SELECTOR = 'app.kubernetes.io/managed-by=ctun';

/** Selector of the simulator pods of the separated deployment (the seed's `-l app=veos`). */
export const SIMULATOR_SELECTOR = 'app=veos';

export interface RenderedManifest {
  key: ManifestKey;
  file: string;
  /** The objects, for validation and server-side apply. */
  objects: K8sObject[];
  /** The YAML text, with the template's comments and a header. */
  yaml: string;
}

/** The templates folder of this checkout (default: templates/k8s beside tools/). */
export function defaultTemplateDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'templates', 'k8s');
}

/** Containers whose exit codes are ctun's (the others are the simulator's). */
export const TUNNEL_CONTAINER = 'ctun';
export const SIMULATOR_CONTAINER = 'veos';

function labels(name: string, instance: string, component: string, version: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...extra,
    'app.kubernetes.io/name': name,
    'app.kubernetes.io/instance': instance,
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/version': version,
    'app.kubernetes.io/part-of': 'ctun',
    ...MANAGED_BY,
  };
}

/**
 * What the Service selects: the tunnel server of ONE deployment. Both server pods are
 * `tunnel-server`s; a selector matching both would split clients between two Layer-2
 * segments when both deployments are applied. The same keys in both, so applying
 * the other deployment's manifest (which carries the Service too) moves the Service
 * over instead of widening it.
 */
export const SERVICE_SELECTORS = {
  integrated: { 'app.kubernetes.io/component': 'tunnel-server', 'app.kubernetes.io/instance': OBJECT_NAMES.integrated },
  separate: { 'app.kubernetes.io/component': 'tunnel-server', 'app.kubernetes.io/instance': OBJECT_NAMES.separateServer },
} as const;

/** The manifests that carry the Service with their own selector, after their Deployment. */
const SERVICE_CARRIED_BY: Partial<Record<ManifestKey, keyof typeof SERVICE_SELECTORS>> = { integrated: 'integrated', separateServer: 'separate' };

/**
 * The tunnel server's HTTP endpoint (`--metrics`): Prometheus scrapes /metrics, the
 * kubelet probes /readyz (TAP present, socket bound) and /healthz (process alive). On
 * every pod address, as probes and scrapes come to the pod IP; the NetworkPolicy
 * admits it from inside the cluster only, and the Service does not carry it.
 */
export const METRICS_PORT_NAME = 'metrics';

/** The probes of a tunnel server container, on its named metrics port. */
export function tunnelProbes() {
  return {
    readiness: { httpGet: { path: '/readyz', port: METRICS_PORT_NAME }, periodSeconds: 5, failureThreshold: 3 },
    liveness: { httpGet: { path: '/healthz', port: METRICS_PORT_NAME }, initialDelaySeconds: 10, periodSeconds: 10, failureThreshold: 3 },
  };
}

/** The annotations Prometheus's Kubernetes service discovery reads (the common relabelling convention). */
export function scrapeAnnotations(): Record<string, string> {
  return { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(metadata.metricsPort), 'prometheus.io/path': '/metrics' };
}

/** `ctun server` arguments after the image's entrypoint (`ctun server --mode ...`). */
export function serverArgs(p: ResolvedK8sParams): string[] {
  // The metrics endpoint listens where the tunnel does: the kubelet probes it at the pod IP.
  const listen = IP_FAMILIES[p.ipFamily].listen;
  const args = ['--listen', listen, '--port', String(p.port), '--transport', p.transport, '--tap', SERVER_TAP.name, '--address', SERVER_TAP.address, '--log-format', 'json', '--metrics', formatHostPort(listen, metadata.metricsPort)];
  if (p.tlsSecret) {
    args.push('--tls', '--ca', `${TLS_MOUNT_PATH}/ca.crt`, '--cert', `${TLS_MOUNT_PATH}/tls.crt`, '--key', `${TLS_MOUNT_PATH}/tls.key`);
    if (p.crl) args.push('--crl', `${TLS_MOUNT_PATH}/ca.crl`);
  }
  return args;
}

/**
 * Requests are what the scheduler reserves; limits cap a runaway process. The
 * simulator's limit includes its memory-backed /dev/shm, which counts against it.
 */
export const RESOURCES = {
  simulator: { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '2', memory: '2Gi' } },
  tunnel: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '1', memory: '256Mi' } },
} as const;

/** The template values for resolved parameters (pure). */
export function templateValues(p: ResolvedK8sParams) {
  const protocol = p.transport === 'udp' ? 'UDP' : 'TCP';
  const portName = `ctun-${p.transport}`;
  const tlsVolumes = p.tlsSecret
    ? [{ name: 'ctun-tls', secret: { secretName: p.tlsSecret, defaultMode: 0o400, items: ['ca.crt', 'tls.crt', 'tls.key', ...(p.crl ? ['ca.crl'] : [])].map((k) => ({ key: k, path: k })) } }]
    : [];
  const tlsMounts = p.tlsSecret ? [{ name: 'ctun-tls', mountPath: TLS_MOUNT_PATH, readOnly: true }] : [];
  // With --tls on UDP the handshake and control channel run over TCP on the same port
  // number, so the pod and the Service open both, and the client dials one NodePort
  // number for both protocols: that needs the NodePort fixed.
  const controlPort = p.tlsSecret !== undefined && p.transport === 'udp';
  if (controlPort && p.nodePort === undefined) {
    throw new CtunError('K8S_PARAMS', 'TLS over UDP needs a fixed NodePort: the TLS handshake uses TCP on the same port number as the UDP data', {
      hint: 'give the NodePort, e.g. --node-port 31723 (30000-32767)',
      exitCode: ExitCode.Usage,
    });
  }
  const containerPorts = [{ name: portName, containerPort: p.port, protocol }];
  if (controlPort) containerPorts.push({ name: 'ctun-tls', containerPort: p.port, protocol: 'TCP' });
  const policyPorts = containerPorts.map((c) => ({ protocol: c.protocol, port: p.port }));
  const servicePorts = containerPorts.map((c) => ({ name: c.name, protocol: c.protocol, port: p.port, targetPort: c.name, ...(p.nodePort === undefined ? {} : { nodePort: p.nodePort }) }));
  return {
    namespace: p.namespace,
    licenseServer: p.licenseServer,
    imagePullPolicy: p.imagePullPolicy,
    replicas: p.replicas,
    shmSize: p.shmSize,
    names: group({ ...OBJECT_NAMES }),
    images: group({
      veos: imageRef(p.registry, p.veosImage),
      localServer: imageRef(p.registry, p.localServerImage),
      separateServer: imageRef(p.registry, p.separateServerImage),
    }),
    labels: group({
      service: labels('ctun', OBJECT_NAMES.service, 'tunnel-service', metadata.ctunVersion),
      integrated: labels('veos-ctun', OBJECT_NAMES.integrated, 'tunnel-server', metadata.veosVersion, { app: 'veos-ctun' }),
      simulator: labels('veos', OBJECT_NAMES.simulator, 'simulator', metadata.veosVersion, { app: 'veos' }),
      separateServer: labels('ctun-separate-server', OBJECT_NAMES.separateServer, 'tunnel-server', metadata.ctunVersion, { app: 'ctun-separate-server' }),
      networkPolicy: labels('ctun', OBJECT_NAMES.networkPolicy, 'tunnel-network-policy', metadata.ctunVersion),
    }),
    selectors: group({
      // ctun-service.yaml on its own (§2.4.1 applies it first): the integrated server.
      tunnelServer: SERVICE_SELECTORS.integrated,
      // The NetworkPolicy guards every tunnel server pod, whichever deployment made it.
      anyTunnelServer: { 'app.kubernetes.io/component': 'tunnel-server' },
      integrated: { app: 'veos-ctun', 'app.kubernetes.io/instance': OBJECT_NAMES.integrated },
      simulator: { app: 'veos', 'app.kubernetes.io/instance': OBJECT_NAMES.simulator },
      separateServer: { app: 'ctun-separate-server', 'app.kubernetes.io/instance': OBJECT_NAMES.separateServer },
    }),
    annotations: group({
      integrated: scrapeAnnotations(),
      separateServer: {
        'ctun/requires': `kubelet --allowed-unsafe-sysctls=${forwardingSysctls(p).map((x) => x.name).join(',')} (not in the safe sysctl set)`,
        ...scrapeAnnotations(),
      },
    }),
    simulator: group({
      ports: [
        { name: 'portmapper', containerPort: SIMULATOR_PORTS.portMapper, protocol: 'TCP' },
        { name: 'xcp', containerPort: SIMULATOR_PORTS.xcp, protocol: 'UDP' },
        { name: 'discovery', containerPort: SIMULATOR_PORTS.discovery, protocol: 'UDP' },
        ...(p.readyPort === SIMULATOR_PORTS.portMapper ? [] : [{ name: 'ready', containerPort: p.readyPort, protocol: 'TCP' }]),
      ],
      // The simulator contract: ready when this TCP port accepts (any simulator has one).
      readyPort: p.readyPort,
    }),
    resources: group({ simulator: RESOURCES.simulator, tunnel: RESOURCES.tunnel }),
    tunnel: group({
      args: serverArgs(p),
      sysctls: forwardingSysctls(p),
      containerPorts: [...containerPorts, { name: METRICS_PORT_NAME, containerPort: metadata.metricsPort, protocol: 'TCP' }],
      servicePorts,
      ipFamilyPolicy: IP_FAMILIES[p.ipFamily].ipFamilyPolicy,
      ipFamilies: IP_FAMILIES[p.ipFamily].ipFamilies,
      policyPorts,
      metricsPolicyPorts: [{ protocol: 'TCP', port: metadata.metricsPort }],
      readinessProbe: tunnelProbes().readiness,
      livenessProbe: tunnelProbes().liveness,
    }),
    tls: group({ volumes: tlsVolumes, volumeMounts: tlsMounts }),
  };
}

/**
 * The separate server's forwarding sysctls (unsafe: each must be allowed by the
 * kubelet). IPv6 forwarding only under --ip-family ipv6, where the --dest is an IPv6
 * pod IP; dual targets a pod's IPv4 address (targetPod) and keeps the one sysctl.
 */
function forwardingSysctls(p: ResolvedK8sParams): Array<{ name: string; value: string }> {
  const ipv4 = { name: 'net.ipv4.ip_forward', value: '1' };
  return p.ipFamily === 'ipv6' ? [ipv4, { name: 'net.ipv6.conf.all.forwarding', value: '1' }] : [ipv4];
}

function describeParams(p: ResolvedK8sParams): string {
  const parts = [`license server ${p.licenseServer}`, `port ${p.port}/${p.transport}`, `IP family ${p.ipFamily}`];
  if (p.registry) parts.push(`registry ${p.registry}`);
  if (p.namespace) parts.push(`namespace ${p.namespace}`);
  if (p.tlsSecret) parts.push(`TLS secret ${p.tlsSecret}${p.crl ? ' with its CRL' : ''}`);
  return parts.join(', ');
}

/**
 * Renders the manifests, the seed's four and the NetworkPolicy (pure but for reading
 * the templates). Each file uses a part of the values; together they must use every
 * one, so no parameter is silently ignored.
 */
export function renderManifests(params: K8sParams = {}, options: { templateDir?: string } = {}): RenderedManifest[] {
  const p = resolveParams(params);
  const dir = options.templateDir ?? defaultTemplateDir();
  const values = templateValues(p);
  const texts = (Object.keys(MANIFEST_FILES) as ManifestKey[]).map((key) => ({ key, file: MANIFEST_FILES[key], text: readFileSync(join(dir, MANIFEST_FILES[key]), 'utf8') }));
  const allRefs = new Set(texts.flatMap((t) => [...templateRefs(t.text)]));
  const unused = leafPaths(values).filter((v) => !allRefs.has(v));
  if (unused.length > 0) throw new CtunError('TEMPLATE', `templates/k8s: values no template uses: ${unused.join(', ')}`);
  const serviceText = texts.find((t) => t.key === 'service')!.text;
  return texts.map(({ key, file, text }) => {
    const doc = fillTemplate(text, pickValues(values, templateRefs(text)), `templates/k8s/${file}`);
    const header = ` Rendered by \`ctun-run k8s render\` from templates/k8s/${file}\n (${describeParams(p)}).\n Do not edit by hand: change the template or the parameters and render again.`;
    doc.commentBefore = doc.commentBefore ? `${doc.commentBefore}\n#\n${header}` : header;
    const docs = [doc];
    const carried = SERVICE_CARRIED_BY[key];
    if (carried) {
      // The Service again, selecting this deployment's server: applying this file
      // (after ctun-service.yaml, as the seed's manual does) points it here.
      const own = { ...values, selectors: group({ ...(values.selectors as { values: Record<string, unknown> }).values, tunnelServer: SERVICE_SELECTORS[carried] }) };
      const svc = fillTemplate(serviceText, pickValues(own, templateRefs(serviceText)), `templates/k8s/${MANIFEST_FILES.service}`);
      svc.commentBefore = ` ${OBJECT_NAMES.service}, selecting only this deployment's tunnel server (${Object.values(SERVICE_SELECTORS[carried]).join(', ')}).`;
      docs.push(svc);
    }
    return { key, file, objects: docs.map((d) => d.toJS() as K8sObject), yaml: docs.map((d) => d.toString({ lineWidth: 0 })).join('---\n') };
  });
}

/** The rendered manifests of one key (throws on an unknown key). */
export function manifest(rendered: RenderedManifest[], key: ManifestKey): RenderedManifest {
  const m = rendered.find((r) => r.key === key);
  if (!m) throw new Error(`no manifest ${key}`);
  return m;
}

/** The checked-in manifests of the seed (k8s/ beside tools/). */
export function defaultManifestDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'k8s');
}

/** Writes the rendered files into `dir`; returns their paths. */
export function writeManifests(dir: string, rendered: RenderedManifest[]): string[] {
  mkdirSync(dir, { recursive: true });
  return rendered.map((m) => {
    const path = join(dir, m.file);
    writeFileSync(path, m.yaml);
    return path;
  });
}

/** Files in `dir` that differ from a fresh rendering (missing files count). */
export function staleManifests(dir: string, rendered: RenderedManifest[]): string[] {
  return rendered
    .filter((m) => {
      const path = join(dir, m.file);
      return !existsSync(path) || readFileSync(path, 'utf8') !== m.yaml;
    })
    .map((m) => m.file);
}
