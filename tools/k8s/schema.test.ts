import { describe, expect, it } from 'vitest';
import { assertValid, definitionName, loadSchema, manifest, renderManifests, SCHEMA_VERSIONS, type K8sObject, type K8sParams } from './index.js';

type Json = any;

/** Every parameter set a user can reach, rendered. */
const VARIANTS: Array<[string, K8sParams]> = [
  ['defaults', {}],
  ['tcp, namespace, registry, node port', { transport: 'tcp', namespace: 'sim', registry: 'registry.local:5000', nodePort: 31723, licenseServer: '22350@lic' }],
  ['tls', { tlsSecret: 'ctun-tls', nodePort: 31723, replicas: 1, shmSize: '512Mi', imagePullPolicy: 'Never' }],
  ['tls with its CRL, tcp', { tlsSecret: 'ctun-tls', crl: true, transport: 'tcp' }],
  ['IPv4 single stack', { ipFamily: 'ipv4' }],
  ['IPv6 single stack, tls over udp', { ipFamily: 'ipv6', tlsSecret: 'ctun-tls', nodePort: 31723 }],
];

describe(`every rendered manifest is valid for Kubernetes ${SCHEMA_VERSIONS.join(', ')} (offline)`, () => {
  for (const [name, params] of VARIANTS) {
    it(name, () => {
      const schema = loadSchema();
      for (const m of renderManifests(params)) {
        for (const o of m.objects) expect(schema.validate(o), `${m.file} (${schema.source})`).toEqual([]);
      }
    });
  }
});

describe('an invalid manifest is refused, each issue with its path', () => {
  const deployment = (): Json => structuredClone(manifest(renderManifests(), 'integrated').objects[0]);
  const service = (): Json => structuredClone(manifest(renderManifests(), 'service').objects.find((o) => o.kind === 'Service'));

  it('knows the kinds ctun renders', () => {
    for (const d of ['io.k8s.api.apps.v1.Deployment', 'io.k8s.api.core.v1.Service']) expect(loadSchema().definitions.has(d), d).toBe(true);
  });

  it('a wrong enum value (imagePullPolicy, Service type) names the allowed ones', () => {
    const d = deployment();
    d.spec.template.spec.containers[0].imagePullPolicy = 'Sometimes';
    expect(loadSchema().validate(d)).toEqual([{ path: '/spec/template/spec/containers/0/imagePullPolicy', message: 'must be one of "Always", "IfNotPresent", "Never"' }]);
    const s = service();
    s.spec.type = 'NodePorts';
    expect(loadSchema().validate(s)).toEqual([{ path: '/spec/type', message: 'must be one of "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"' }]);
  });

  it('unknown fields, missing required fields and wrong types are reported with their path', () => {
    const o = deployment();
    o.spec.template.spec.containers[0].imagePullPolicyy = 'Always';
    o.spec.template.spec.securityContextt = {};
    delete o.spec.template.spec.containers[1].name;
    o.spec.template.spec.volumes[1].hostPath.path = 7;
    o.spec.replicas = 'one';
    const issues = loadSchema().validate(o);
    expect(issues).toEqual(
      expect.arrayContaining([
        { path: '/spec/template/spec/containers/0', message: 'unknown field "imagePullPolicyy"' },
        { path: '/spec/template/spec', message: 'unknown field "securityContextt"' },
        { path: '/spec/template/spec/containers/1', message: 'missing required field "name"' },
        { path: '/spec/template/spec/volumes/1/hostPath/path', message: 'must be string' },
        { path: '/spec/replicas', message: 'must be integer' },
      ]),
    );
    expect(issues).toHaveLength(5);
    expect(() => assertValid([o])).toThrow(/not valid for Kubernetes 1\.34: Deployment\/veos-ctun/);
  });

  it('maps (labels, annotations) take any key; objects without apiVersion, kind or metadata are refused', () => {
    const o = deployment();
    o.metadata.annotations = { 'example.com/anything': 'x' };
    expect(loadSchema().validate(o)).toEqual([]);
    delete o.metadata;
    expect(loadSchema().validate(o)).toEqual([{ path: '/', message: 'missing required field "metadata"' }]);
    expect(loadSchema().validate({ kind: 'Service' })[0]!.message).toMatch(/apiVersion and kind are required/);
  });

  it('apiVersion must match the kind; unknown kinds and releases have no schema', () => {
    const o = deployment();
    o.apiVersion = 'apps/v1beta1';
    expect(loadSchema().validate(o)[0]!.message).toMatch(/no schema for apps\/v1beta1 Deployment/);
    expect(() => loadSchema('1.29' as never)).toThrow(/no Kubernetes 1\.29 schema/);
    expect(definitionName('v1', 'Service')).toBe('io.k8s.api.core.v1.Service');
    expect(definitionName('networking.k8s.io/v1', 'Ingress')).toBe('io.k8s.api.networking.v1.Ingress');
  });
});

// Security and operability properties: asserted on the rendered objects of every variant.
function pods(objects: K8sObject[]): Array<{ name: string; spec: Json; labels: Record<string, string> }> {
  return objects.filter((o) => o.kind === 'Deployment').map((o) => ({ name: o.metadata.name, spec: (o as Json).spec.template.spec, labels: (o as Json).spec.template.metadata.labels }));
}

describe('security and operability of every pod', () => {
  for (const [name, params] of VARIANTS) {
    const rendered = renderManifests(params);
    const all = rendered.flatMap((m) => m.objects);

    it(`${name}: nothing privileged; NET_ADMIN is the only capability added, and only to tunnel servers`, () => {
      for (const p of pods(all)) {
        expect(p.spec.hostNetwork ?? false).toBe(false);
        for (const c of p.spec.containers) {
          expect(c.securityContext?.privileged, `${p.name}/${c.name}`).toBe(false);
          expect(c.securityContext?.allowPrivilegeEscalation, `${p.name}/${c.name}`).toBe(false);
          const added = c.securityContext?.capabilities?.add ?? [];
          expect(added).toEqual(c.name === 'ctun' ? ['NET_ADMIN'] : []);
        }
      }
    });

    it(`${name}: a TAP is made only where /dev/net/tun is a CharDevice hostPath, mounted only into the tunnel container`, () => {
      for (const p of pods(all)) {
        const hostPaths = (p.spec.volumes ?? []).filter((v: Json) => v.hostPath);
        const makesTap = p.spec.containers.some((c: Json) => c.name === 'ctun');
        expect(hostPaths).toEqual(makesTap ? [{ name: 'dev-net-tun', hostPath: { path: '/dev/net/tun', type: 'CharDevice' } }] : []);
        for (const c of p.spec.containers) {
          const mounts = (c.volumeMounts ?? []).filter((m: Json) => m.name === 'dev-net-tun');
          expect(mounts).toEqual(c.name === 'ctun' ? [{ name: 'dev-net-tun', mountPath: '/dev/net/tun' }] : []);
        }
      }
    });

    it(`${name}: ip_forward sysctl on the separate server only, with the kubelet note`, () => {
      for (const p of pods(all)) {
        const sysctls = p.spec.securityContext?.sysctls ?? [];
        const forwarding = [{ name: 'net.ipv4.ip_forward', value: '1' }, ...(params.ipFamily === 'ipv6' ? [{ name: 'net.ipv6.conf.all.forwarding', value: '1' }] : [])];
        expect(sysctls).toEqual(p.name === 'ctun-separate-server' ? forwarding : []);
      }
      const sep = manifest(rendered, 'separateServer');
      expect(sep.yaml).toContain('kubelet --allowed-unsafe-sysctls=net.ipv4.ip_forward');
      expect(sep.yaml).toContain('NOT in the kubelet\'s safe sysctl set');
      expect((sep.objects[0] as Json).spec.template.metadata.annotations['ctun/requires']).toMatch(/allowed-unsafe-sysctls=net\.ipv4\.ip_forward/);
    });

    it(`${name}: readiness and liveness probes on every container; tunnel probes on the metrics endpoint (/readyz: TAP and socket), simulator probes its port mapper`, () => {
      for (const p of pods(all)) {
        for (const c of p.spec.containers) {
          expect(c.readinessProbe, `${p.name}/${c.name}`).toBeDefined();
          expect(c.livenessProbe, `${p.name}/${c.name}`).toBeDefined();
          if (c.name === 'ctun') {
            expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
            expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
            expect(c.ports).toContainEqual({ name: 'metrics', containerPort: 9723, protocol: 'TCP' });
          } else {
            // The simulator contract: a TCP port that accepts (27027 by default), no log line.
            expect(c.startupProbe.tcpSocket.port).toBe(27027);
            expect(c.readinessProbe.tcpSocket.port).toBe(27027);
            expect(c.livenessProbe.tcpSocket.port).toBe(27027);
            expect(c.ports).toContainEqual({ name: 'portmapper', containerPort: 27027, protocol: 'TCP' });
          }
        }
      }
    });

    it(`${name}: requests and limits on every container; /dev/shm memory-backed with a size limit for the simulator`, () => {
      for (const p of pods(all)) {
        for (const c of p.spec.containers) {
          expect(Object.keys(c.resources.requests).sort()).toEqual(['cpu', 'memory']);
          expect(Object.keys(c.resources.limits).sort()).toEqual(['cpu', 'memory']);
        }
        const sim = p.spec.containers.find((c: Json) => c.name === 'veos');
        if (sim) {
          expect(sim.volumeMounts).toContainEqual({ name: 'dshm', mountPath: '/dev/shm' });
          expect(p.spec.volumes).toContainEqual({ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: params.shmSize ?? '256Mi' } });
          expect(sim.env).toContainEqual({ name: 'DS_CMU_SERVER', value: params.licenseServer ?? '<LICENSE_SERVER>' });
        }
      }
    });

    it(`${name}: restartPolicy Always (kubelet back-off), logs to stdout (JSON lines), app.kubernetes.io labels on every object`, () => {
      for (const p of pods(all)) {
        expect(p.spec.restartPolicy).toBe('Always');
        for (const c of p.spec.containers.filter((c: Json) => c.name === 'ctun')) expect(c.args.join(' ')).toContain('--log-format json');
        for (const k of ['name', 'instance', 'component', 'version', 'part-of', 'managed-by']) expect(p.labels[`app.kubernetes.io/${k}`], `${p.name} ${k}`).toBeTruthy();
      }
      for (const o of all) expect(o.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('ctun');
      expect(manifest(rendered, 'separateServer').yaml).toMatch(/back-off/);
    });

    it(`${name}: the Service selects one deployment's tunnel server only; the file applied last decides which`, () => {
      const selects = (svc: Json): string[] => {
        const selector = svc.spec.selector as Record<string, string>;
        return pods(all)
          .filter((p) => Object.entries(selector).every(([k, v]) => p.labels[k] === v))
          .map((p) => p.name)
          .sort();
      };
      // ctun-service.yaml alone (§2.4.1 applies it before the integrated pod).
      expect(selects(manifest(rendered, 'service').objects[0])).toEqual(['veos-ctun']);
      // The server manifests carry it again with their own selector (§2.4.2 applies ctun-separate-server.yaml last).
      const carried = (key: 'integrated' | 'separateServer'): Json => manifest(rendered, key).objects.find((o) => o.kind === 'Service');
      expect(selects(carried('integrated'))).toEqual(['veos-ctun']);
      expect(selects(carried('separateServer'))).toEqual(['ctun-separate-server']);
      // Same keys in both: re-applying moves the selector instead of widening it.
      expect(Object.keys(carried('integrated').spec.selector)).toEqual(Object.keys(carried('separateServer').spec.selector));
      expect({ ...carried('integrated'), spec: { ...carried('integrated').spec, selector: {} } }).toEqual({ ...manifest(rendered, 'service').objects[0], spec: { ...(manifest(rendered, 'service').objects[0] as Json).spec, selector: {} } });
    });
  }
});
