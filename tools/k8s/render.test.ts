import { readFileSync, writeFileSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { metadata } from '../common/index.js';
import { defaultManifestDir, defaultTemplateDir, manifest, MANIFEST_FILES, renderManifests, resolveParams, staleManifests, writeManifests, type K8sObject } from './index.js';
import { fillTemplate, group } from './template.js';
import { parseMetricsAddress } from '../tunnel/index.js';
import { tempDir } from '../lab/testing.js';

type Json = any;
const podSpec = (o: K8sObject): Json => (o as Json).spec.template.spec;
const container = (o: K8sObject, name: string): Json => podSpec(o).containers.find((c: Json) => c.name === name);

describe('k8s/ holds the templates rendered with defaults', () => {
  it('is not stale (run `ctun-run k8s render` after changing a template)', () => {
    const stale = staleManifests(defaultManifestDir(), renderManifests());
    expect(stale, `stale files in k8s/: ${stale.join(', ')}`).toEqual([]);
  });

  it('detects a stale file', () => {
    const dir = tempDir('k8s');
    writeManifests(dir, renderManifests());
    expect(staleManifests(dir, renderManifests())).toEqual([]);
    writeFileSync(join(dir, MANIFEST_FILES.simulator), readFileSync(join(dir, MANIFEST_FILES.simulator), 'utf8').replace('replicas: 5', 'replicas: 4'));
    expect(staleManifests(dir, renderManifests())).toEqual([MANIFEST_FILES.simulator]);
  });

  it('the YAML text parses to the same objects that are applied, with the header', () => {
    for (const m of renderManifests()) {
      expect(parseAllDocuments(m.yaml).map((d) => d.toJS())).toEqual(m.objects);
      expect(m.yaml).toMatch(/^# Rendered by `ctun-run k8s render` from templates\/k8s\//);
    }
  });
});

describe('parameters', () => {
  it('defaults are the seed: images and port from metadata, 5 simulator pods, UDP NodePort, placeholder license', () => {
    const r = renderManifests();
    const svc = manifest(r, 'service').objects[0] as Json;
    expect(svc.metadata.name).toBe('ctun-service');
    expect(svc.spec.type).toBe('NodePort');
    expect(svc.spec.ports).toEqual([{ name: 'ctun-udp', protocol: 'UDP', port: metadata.defaultPort, targetPort: 'ctun-udp' }]);
    const sim = manifest(r, 'simulator').objects[0] as Json;
    expect(sim.spec.replicas).toBe(5);
    expect(sim.spec.template.metadata.labels.app).toBe('veos');
    expect(container(sim, 'veos').image).toBe(metadata.images.veos);
    const integrated = manifest(r, 'integrated').objects[0]!;
    expect(podSpec(integrated).containers.map((c: Json) => [c.name, c.image])).toEqual([
      ['veos', metadata.images.veos],
      ['ctun', metadata.images.localServer],
    ]);
    expect(container(manifest(r, 'separateServer').objects[0]!, 'ctun').image).toBe(metadata.images.separateServer);
    expect(container(integrated, 'veos').env).toEqual([{ name: 'DS_CMU_SERVER', value: '<LICENSE_SERVER>' }]);
    for (const m of r) expect(m.objects[0]!.metadata.namespace).toBeUndefined();
  });

  it('license server, registry, replicas, port, namespace, node port reach the objects', () => {
    const r = renderManifests({ licenseServer: '22350@lic.example', registry: 'registry.local:5000/', replicas: 2, port: 4000, namespace: 'sim', nodePort: 31000 });
    for (const m of r) expect(m.objects[0]!.metadata.namespace).toBe('sim');
    const sim = manifest(r, 'simulator').objects[0] as Json;
    expect(sim.spec.replicas).toBe(2);
    expect(container(sim, 'veos').env[0].value).toBe('22350@lic.example');
    expect(container(sim, 'veos').image).toBe(`registry.local:5000/${metadata.images.veos}`);
    const server = container(manifest(r, 'separateServer').objects[0]!, 'ctun');
    expect(server.image).toBe(`registry.local:5000/${metadata.images.separateServer}`);
    expect(server.args.slice(0, 6)).toEqual(['--listen', '::', '--port', '4000', '--transport', 'udp']);
    expect(server.ports).toEqual([{ name: 'ctun-udp', containerPort: 4000, protocol: 'UDP' }, { name: 'metrics', containerPort: 9723, protocol: 'TCP' }]);
    expect((manifest(r, 'service').objects[0] as Json).spec.ports[0]).toMatchObject({ port: 4000, nodePort: 31000, protocol: 'UDP' });
  });

  it('--ready-port moves every simulator probe to that TCP port and declares it', () => {
    const r = renderManifests({ readyPort: 8080 });
    for (const key of ['integrated', 'simulator'] as const) {
      const veos = container(manifest(r, key).objects[0]!, 'veos');
      expect([veos.startupProbe, veos.readinessProbe, veos.livenessProbe].map((p: Json) => p.tcpSocket.port)).toEqual([8080, 8080, 8080]);
      expect(veos.ports).toContainEqual({ name: 'ready', containerPort: 8080, protocol: 'TCP' });
    }
    expect(() => renderManifests({ readyPort: 0 })).toThrow(/ready port to be a TCP port 1-65535/);
  });

  it('transport tcp: TCP Service port, server --transport tcp, probes on the metrics endpoint as with udp', () => {
    const r = renderManifests({ transport: 'tcp' });
    expect((manifest(r, 'service').objects[0] as Json).spec.ports).toEqual([{ name: 'ctun-tcp', protocol: 'TCP', port: 1723, targetPort: 'ctun-tcp' }]);
    const ctun = container(manifest(r, 'integrated').objects[0]!, 'ctun');
    expect(ctun.args).toContain('tcp');
    expect(ctun.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 'metrics' } });
  });

  it('tunnel servers: --metrics on every pod address, a named metrics port that the Service does not carry, scrape annotations, and the NetworkPolicy admits it from the cluster only', () => {
    const r = renderManifests({});
    for (const key of ['integrated', 'separateServer'] as const) {
      const o = manifest(r, key).objects[0] as Json;
      const ctun = container(o, 'ctun');
      expect(ctun.args.join(' ')).toContain('--metrics [::]:9723');
      expect(ctun.ports).toContainEqual({ name: 'metrics', containerPort: 9723, protocol: 'TCP' });
      expect(ctun.readinessProbe).toEqual({ httpGet: { path: '/readyz', port: 'metrics' }, periodSeconds: 5, failureThreshold: 3 });
      expect(ctun.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'metrics' } });
      expect(o.spec.template.metadata.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9723', 'prometheus.io/path': '/metrics' });
    }
    expect(JSON.stringify((manifest(r, 'service').objects[0] as Json).spec.ports)).not.toContain('9723');
    const policy = (manifest(r, 'networkPolicy').objects[0] as Json).spec.ingress;
    expect(policy).toContainEqual({ from: [{ namespaceSelector: {} }], ports: [{ protocol: 'TCP', port: 9723 }] });
  });

  it('IP families: by default the servers and their probes listen on :: and every Service prefers dual stack; ipv4 and ipv6 make them single-stack', () => {
    const services = (r: ReturnType<typeof renderManifests>): Json[] => r.flatMap((m) => m.objects).filter((o) => o.kind === 'Service');
    const servers = (r: ReturnType<typeof renderManifests>): Json[] => (['integrated', 'separateServer'] as const).map((k) => container(manifest(r, k).objects[0]!, 'ctun'));
    const flag = (c: Json, name: string): string => c.args[c.args.indexOf(name) + 1];
    const cases = [
      { params: {}, listen: '::', metrics: '[::]:9723', policy: 'PreferDualStack', families: undefined },
      { params: { ipFamily: 'dual' as const }, listen: '::', metrics: '[::]:9723', policy: 'PreferDualStack', families: undefined },
      { params: { ipFamily: 'ipv4' as const }, listen: '0.0.0.0', metrics: '0.0.0.0:9723', policy: 'SingleStack', families: ['IPv4'] },
      { params: { ipFamily: 'ipv6' as const, transport: 'tcp' as const }, listen: '::', metrics: '[::]:9723', policy: 'SingleStack', families: ['IPv6'] },
    ];
    for (const c of cases) {
      const r = renderManifests(c.params);
      // The standalone ctun-service.yaml and the copies the two server manifests carry.
      expect(services(r)).toHaveLength(3);
      for (const svc of services(r)) {
        expect(svc.spec.ipFamilyPolicy).toBe(c.policy);
        expect(svc.spec.ipFamilies).toEqual(c.families);
      }
      for (const ctun of servers(r)) {
        expect(flag(ctun, '--listen')).toBe(c.listen);
        // What the server's own parser makes of it: the probes' port on every pod address of that family.
        expect(flag(ctun, '--metrics')).toBe(c.metrics);
        expect(parseMetricsAddress(flag(ctun, '--metrics'))).toEqual({ host: c.listen, port: 9723 });
      }
    }
    // The separate server's forwarding: IPv4 only but under ipv6, whose --dest is an IPv6 pod IP.
    for (const family of ['dual', 'ipv4', 'ipv6'] as const) {
      const sep = manifest(renderManifests({ ipFamily: family }), 'separateServer').objects[0] as Json;
      const names = family === 'ipv6' ? ['net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding'] : ['net.ipv4.ip_forward'];
      expect(sep.spec.template.spec.securityContext.sysctls).toEqual(names.map((name) => ({ name, value: '1' })));
      expect(sep.spec.template.metadata.annotations['ctun/requires']).toBe(`kubelet --allowed-unsafe-sysctls=${names.join(',')} (not in the safe sysctl set)`);
    }
    expect(() => renderManifests({ ipFamily: 'ipv5' as never })).toThrowError(expect.objectContaining({ code: 'K8S_PARAMS', exitCode: 1, message: 'Expected the IP family to be dual, ipv4, ipv6, got "ipv5"' }));
  });

  it('a TLS secret mounts ca.crt/tls.crt/tls.key read-only and adds the TLS flags, on both servers only', () => {
    const r = renderManifests({ tlsSecret: 'ctun-tls', nodePort: 31723 });
    for (const key of ['integrated', 'separateServer'] as const) {
      const o = manifest(r, key).objects[0]!;
      const ctun = container(o, 'ctun');
      expect(ctun.args.slice(-7)).toEqual(['--tls', '--ca', '/etc/ctun/tls/ca.crt', '--cert', '/etc/ctun/tls/tls.crt', '--key', '/etc/ctun/tls/tls.key']);
      expect(ctun.volumeMounts).toContainEqual({ name: 'ctun-tls', mountPath: '/etc/ctun/tls', readOnly: true });
      const vol = podSpec(o).volumes.find((v: Json) => v.name === 'ctun-tls');
      expect(vol.secret.secretName).toBe('ctun-tls');
      expect(vol.secret.items.map((i: Json) => i.key)).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    }
    expect(JSON.stringify(manifest(r, 'simulator').objects)).not.toContain('ctun-tls');
    // TLS over UDP: the handshake runs over TCP on the same port and NodePort number.
    expect((manifest(r, 'service').objects[0] as any).spec.ports).toEqual([
      { name: 'ctun-udp', protocol: 'UDP', port: 1723, targetPort: 'ctun-udp', nodePort: 31723 },
      { name: 'ctun-tls', protocol: 'TCP', port: 1723, targetPort: 'ctun-tls', nodePort: 31723 },
    ]);
    expect(() => renderManifests({ tlsSecret: 'ctun-tls' })).toThrow(/TLS over UDP needs a fixed NodePort/);
    expect((manifest(renderManifests({ tlsSecret: 'ctun-tls', transport: 'tcp' }), 'service').objects[0] as any).spec.ports).toHaveLength(1);
    // Without a secret: no TLS flags, no secret volume.
    const plain = container(manifest(renderManifests(), 'integrated').objects[0]!, 'ctun');
    expect(plain.args).not.toContain('--tls');
    expect(plain.volumeMounts).toEqual([{ name: 'dev-net-tun', mountPath: '/dev/net/tun' }]);
  });

  it('bad parameters are usage errors that say what was expected', () => {
    expect(() => resolveParams({ replicas: 0 })).toThrow(/Expected replicas to be 1-100, got 0/);
    expect(() => resolveParams({ port: 70000 })).toThrow(/port to be 1-65535/);
    expect(() => resolveParams({ nodePort: 8080 })).toThrow(/NodePort to be 30000-32767/);
    expect(() => resolveParams({ namespace: 'Bad_NS' })).toThrow(/namespace to be a DNS label/);
    expect(() => resolveParams({ transport: 'sctp' as never })).toThrow(/udp or tcp/);
    expect(() => resolveParams({ licenseServer: 'a b' })).toThrow(/license server/);
    expect(() => resolveParams({ shmSize: '256m bytes' })).toThrow(/shm size/);
  });
});

describe('templates', () => {
  it('typed values, splices, removal and interpolation; comments survive', () => {
    const doc = fillTemplate(
      "# head\na: '{{n}}'\nb: '{{gone}}'\nlist:\n  - x\n  - '{{...more}}'\nmsg: 'port {{n}}/{{g.p}}'\n# tail\n",
      { n: 5, gone: undefined, more: ['y', 'z'], g: group({ p: 'udp' }) },
    );
    expect(doc.toJS()).toEqual({ a: 5, list: ['x', 'y', 'z'], msg: 'port 5/udp' });
    expect(doc.toString()).toContain('# head');
  });

  it('a placeholder without a value, or a value no placeholder uses, is an error', () => {
    expect(() => fillTemplate("a: '{{missing}}'\n", {})).toThrow(/no value for \{\{missing\}\}/);
    expect(() => fillTemplate("a: '{{x}}'\n", { x: 1, y: 2 })).toThrow(/values not used by the template: y/);
    expect(() => fillTemplate("a: '{{g.p}}'\n", { g: group({ p: 1, q: 2 }) })).toThrow(/g\.q/);
  });

  it('a template that drops a placeholder fails the rendering instead of ignoring the parameter', () => {
    const dir = tempDir('k8s-tpl');
    cpSync(defaultTemplateDir(), dir, { recursive: true });
    const file = join(dir, MANIFEST_FILES.separateServer);
    // The only user of annotations.separateServer: without it the value is unused.
    writeFileSync(file, readFileSync(file, 'utf8').replace("      annotations: '{{annotations.separateServer}}'\n", ''));
    expect(() => renderManifests({}, { templateDir: dir })).toThrow(/values no template uses: annotations\.separateServer/);
  });
});
