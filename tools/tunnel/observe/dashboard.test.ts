/**
 * The Grafana dashboard in the repository (templates/grafana/ctun-dashboard.json)
 * queries only metrics the tunnel exports, and shows every one of them: a renamed
 * metric breaks this test, not a dashboard in someone's Grafana.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createTunnelRegistry, METRIC_NAMES } from './registry.js';

const DASHBOARD = new URL('../../../templates/grafana/ctun-dashboard.json', import.meta.url);

interface Panel {
  title: string;
  targets?: Array<{ expr: string }>;
}

/** The metric names a PromQL expression reads (histogram series map to their histogram). */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\b(ctun_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_(bucket|count|sum)$/, ''));
}

describe('Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[]; templating: { list: Array<{ query: string }> } };
  const exprs = [...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr }))), ...dashboard.templating.list.map((v) => ({ panel: 'variables', expr: v.query }))];

  it('every query names a metric that the server or the client exports', async () => {
    // The names a real registry exposes, for both roles (not just the constant).
    const exported = new Set<string>();
    for (const role of ['server', 'client'] as const) {
      const { registry } = createTunnelRegistry({ version: 'v', role, transport: 'udp', mode: 'local', security: 'plain' }, () => ({ role, frames: { rx: 0, tx: 0 }, bytes: { rx: 0, tx: 0 }, drops: {} }));
      for (const m of await registry.getMetricsAsJSON()) exported.add(m.name);
    }
    expect(exprs.length).toBeGreaterThan(5);
    for (const { panel, expr } of exprs) {
      const names = metricsIn(expr);
      expect(names.length, `${panel}: ${expr} names no ctun metric`).toBeGreaterThan(0);
      for (const n of names) expect(exported.has(n), `${panel}: ${expr} reads ${n}, which no tunnel end exports`).toBe(true);
    }
  });

  it('shows every metric of the tunnel', () => {
    const used = new Set(exprs.flatMap((e) => metricsIn(e.expr)));
    for (const name of Object.values(METRIC_NAMES)) expect(used.has(name), `no panel shows ${name}`).toBe(true);
  });
});
