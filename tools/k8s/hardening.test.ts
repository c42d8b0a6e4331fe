/**
 * The hardening of every rendered manifest, asserted on the objects a cluster would
 * get: each container drops every capability and adds back only NET_ADMIN, and only
 * where a TAP is made; the runtime's default seccomp profile everywhere; a
 * NetworkPolicy that lets only the tunnel port reach the tunnel server pods; the CRL
 * of a TLS secret mounted and handed to the server.
 */
import { describe, expect, it } from 'vitest';
import { manifest, renderManifests, type K8sObject, type K8sParams } from './index.js';
import { manifestsFor, objectsFor } from './deploy.js';

type Json = any;

/** Every kind of rendering a user can reach: transport × TLS × CRL, plus other parameters. */
const VARIANTS: Array<[string, K8sParams]> = [
  ['defaults (udp, plain)', {}],
  ['tcp, plain, namespace and registry', { transport: 'tcp', namespace: 'sim', registry: 'registry.local:5000' }],
  ['udp with TLS', { tlsSecret: 'ctun-tls', nodePort: 31723 }],
  ['udp with TLS and CRL', { tlsSecret: 'ctun-tls', crl: true, nodePort: 31723 }],
  ['tcp with TLS and CRL, port 4000', { tlsSecret: 'ctun-tls', crl: true, transport: 'tcp', port: 4000 }],
];

const deployments = (objects: K8sObject[]): Json[] => objects.filter((o) => o.kind === 'Deployment');

describe('hardened manifests, in every rendered variant', () => {
  for (const [name, params] of VARIANTS) {
    const rendered = renderManifests(params);
    const objects = rendered.flatMap((m) => m.objects);
    const port = params.port ?? 1723;
    const tlsOverUdp = params.tlsSecret !== undefined && (params.transport ?? 'udp') === 'udp';

    it(`${name}: every container drops ALL capabilities; NET_ADMIN is added back to the tunnel servers alone; RuntimeDefault seccomp`, () => {
      let containers = 0;
      for (const d of deployments(objects)) {
        for (const c of d.spec.template.spec.containers) {
          containers++;
          const sc = c.securityContext;
          expect(sc.capabilities.drop, `${d.metadata.name}/${c.name}`).toEqual(['ALL']);
          expect(sc.capabilities.add ?? [], `${d.metadata.name}/${c.name}`).toEqual(c.name === 'ctun' ? ['NET_ADMIN'] : []);
          expect(sc.seccompProfile, `${d.metadata.name}/${c.name}`).toEqual({ type: 'RuntimeDefault' });
          expect(sc.privileged).toBe(false);
          expect(sc.allowPrivilegeEscalation).toBe(false);
        }
        // No pod-level setting that would undo the containers' (an Unconfined profile).
        expect(d.spec.template.spec.securityContext?.seccompProfile).toBeUndefined();
      }
      // veos-ctun (2 containers), veos (1), ctun-separate-server (1).
      expect(containers).toBe(4);
    });

    it(`${name}: a NetworkPolicy admits only the tunnel port (${tlsOverUdp ? 'UDP and TCP' : (params.transport ?? 'udp').toUpperCase()} ${port}) from anywhere and the metrics port from the cluster to the tunnel server pods, and selects no simulator-only pod`, () => {
      const policy = manifest(rendered, 'networkPolicy').objects[0] as Json;
      expect(policy).toMatchObject({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy' });
      expect(policy.spec.policyTypes).toEqual(['Ingress']);
      const expected = tlsOverUdp
        ? [{ protocol: 'UDP', port }, { protocol: 'TCP', port }]
        : [{ protocol: (params.transport ?? 'udp').toUpperCase(), port }];
      // From anywhere (clients' addresses are unknown) to these ports only; the metrics
      // port (Prometheus, probes) only from pods of the cluster.
      expect(policy.spec.ingress).toEqual([{ ports: expected }, { from: [{ namespaceSelector: {} }], ports: [{ protocol: 'TCP', port: 9723 }] }]);
      // The policy's ports are exactly what the Service publishes.
      const svc = manifest(rendered, 'service').objects[0] as Json;
      expect(svc.spec.ports.map((p: Json) => ({ protocol: p.protocol, port: p.port }))).toEqual(expected);
      // It selects the pods that run a tunnel server, and no other.
      const selects = (labels: Record<string, string>) => Object.entries(policy.spec.podSelector.matchLabels as Record<string, string>).every(([k, v]) => labels[k] === v);
      const selected = deployments(objects).filter((d) => selects(d.spec.template.metadata.labels)).map((d) => d.metadata.name).sort();
      expect(selected).toEqual(['ctun-separate-server', 'veos-ctun']);
      if (params.namespace) expect(policy.metadata.namespace).toBe(params.namespace);
      expect(policy.metadata.labels['app.kubernetes.io/managed-by']).toBe('ctun');
    });

    it(`${name}: TLS material only from the secret, read-only${params.crl ? ', the CRL with it and --crl on both servers' : ''}`, () => {
      for (const key of ['integrated', 'separateServer'] as const) {
        const pod = (manifest(rendered, key).objects[0] as Json).spec.template.spec;
        const ctun = pod.containers.find((c: Json) => c.name === 'ctun');
        const vol = pod.volumes.find((v: Json) => v.name === 'ctun-tls');
        if (!params.tlsSecret) {
          expect(vol).toBeUndefined();
          expect(ctun.args).not.toContain('--tls');
          continue;
        }
        expect(vol.secret.items.map((i: Json) => i.key)).toEqual(['ca.crt', 'tls.crt', 'tls.key', ...(params.crl ? ['ca.crl'] : [])]);
        expect(ctun.volumeMounts).toContainEqual({ name: 'ctun-tls', mountPath: '/etc/ctun/tls', readOnly: true });
        const crlAt = ctun.args.indexOf('--crl');
        if (params.crl) expect(ctun.args.slice(crlAt, crlAt + 2)).toEqual(['--crl', '/etc/ctun/tls/ca.crl']);
        else expect(crlAt).toBe(-1);
      }
    });
  }

  it('every deployment applies the NetworkPolicy before the pods it guards', () => {
    for (const mode of ['integrated', 'separate'] as const) {
      expect(manifestsFor(mode)[0], mode).toBe('networkPolicy');
      for (const via of ['nodeport', 'port-forward'] as const) {
        const kinds = objectsFor(renderManifests({}), mode, via).map((o) => o.kind);
        expect(kinds[0], `${mode} via ${via}`).toBe('NetworkPolicy');
        expect(kinds.indexOf('NetworkPolicy'), `${mode} via ${via}`).toBeLessThan(kinds.indexOf('Deployment'));
      }
    }
  });

  it('--crl without a TLS secret is a usage error saying what to add', () => {
    expect(() => renderManifests({ crl: true })).toThrowError(expect.objectContaining({ code: 'K8S_PARAMS', exitCode: 1, hint: expect.stringContaining('--tls-secret') }));
  });
});
