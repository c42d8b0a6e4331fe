/**
 * Renders the Grafana dashboard's panels (templates/grafana/ctun-dashboard.json) to
 * a PNG from a real Prometheus: every panel's own queries, run through the HTTP API
 * over a time range, drawn with ECharts (server-side SVG) and rasterised with resvg.
 * Grafana itself cannot be installed here; this draws the same queries, not a
 * Grafana screenshot.
 *
 *   tsx scripts/dashboard-png.ts --prometheus http://127.0.0.1:9090 --minutes 10 --out docs/dashboard.png
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as echarts from 'echarts';
import { Resvg } from '@resvg/resvg-js';

interface Target {
  expr: string;
  legendFormat?: string;
  instant?: boolean;
}
interface Panel {
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: Target[];
}
type Series = { metric: Record<string, string>; values?: Array<[number, string]>; value?: [number, string] };

const { values: args } = parseArgs({
  options: {
    prometheus: { type: 'string', default: 'http://127.0.0.1:9090' },
    minutes: { type: 'string', default: '10' },
    out: { type: 'string', default: 'dashboard.png' },
    dashboard: { type: 'string', default: new URL('../templates/grafana/ctun-dashboard.json', import.meta.url).pathname },
  },
});
const minutes = Number(args.minutes);
const end = Math.floor(Date.now() / 1000);
const start = end - minutes * 60;
const STEP = 5;

/** Grafana's variables, as the dashboard's default "All" selection and its range. */
function resolve(expr: string): string {
  return expr.replaceAll('$job', '.*').replaceAll('$instance', '.*').replaceAll('$__rate_interval', '20s').replaceAll('$__range', `${minutes}m`);
}

async function promql(expr: string, instant = false): Promise<Series[]> {
  const q = new URLSearchParams({ query: resolve(expr), ...(instant ? { time: String(end) } : { start: String(start), end: String(end), step: String(STEP) }) });
  const r = await fetch(`${args.prometheus}/api/v1/${instant ? 'query' : 'query_range'}?${q}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await r.json()) as { status: string; error?: string; data: { result: Series[] } };
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
  return body.data.result;
}

function legend(format: string | undefined, metric: Record<string, string>): string {
  return (format ?? '').replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k: string) => metric[k] ?? '').trim() || JSON.stringify(metric);
}

const UNITS: Record<string, (v: number) => string> = {
  bps: (v) => (v >= 1e6 ? `${(v / 1e6).toFixed(1)} Mb/s` : v >= 1e3 ? `${(v / 1e3).toFixed(0)} kb/s` : `${v.toFixed(0)} b/s`),
  pps: (v) => `${v.toFixed(v < 10 ? 1 : 0)}/s`,
  s: (v) => (v < 1 ? `${(v * 1000).toFixed(v < 0.01 ? 2 : 1)} ms` : `${v.toFixed(1)} s`),
  short: (v) => `${+v.toFixed(2)}`,
  percentunit: (v) => `${+(v * 100).toFixed(v < 0.01 ? 2 : 1)} %`,
};

const COL = 52; // pixels per grid column (Grafana has 24)
const ROW = 34; // pixels per grid row

async function timeseries(p: Panel): Promise<string> {
  const width = p.gridPos.w * COL - 12;
  const height = p.gridPos.h * ROW - 12;
  const series = [];
  for (const t of p.targets ?? []) {
    for (const s of await promql(t.expr)) {
      series.push({ name: legend(t.legendFormat, s.metric), type: 'line', showSymbol: false, lineStyle: { width: 1.5 }, data: (s.values ?? []).map(([ts, v]) => [ts * 1000, Number(v)]) });
    }
  }
  const format = UNITS[p.fieldConfig?.defaults?.unit ?? 'short'] ?? UNITS.short!;
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width, height });
  chart.setOption({
    animation: false,
    backgroundColor: '#181b1f',
    textStyle: { fontFamily: 'DejaVu Sans', color: '#ccccdc' },
    title: { text: p.title, left: 8, top: 6, textStyle: { fontSize: 13, color: '#ccccdc', fontWeight: 'normal' } },
    legend: { bottom: 4, left: 8, textStyle: { color: '#ccccdc', fontSize: 10 }, itemHeight: 6, type: 'plain' },
    grid: { left: 70, right: 16, top: 34, bottom: 30 + 16 * Math.ceil(series.length / 3) },
    xAxis: { type: 'time', min: start * 1000, max: end * 1000, axisLabel: { color: '#8e8e8e', fontSize: 10, formatter: '{HH}:{mm}' }, splitLine: { show: false } },
    yAxis: { type: 'value', axisLabel: { color: '#8e8e8e', fontSize: 10, formatter: (v: number) => format(v) }, splitLine: { lineStyle: { color: '#2c3235' } } },
    series: series.length > 0 ? series : [{ type: 'line', data: [] }],
    ...(series.length === 0 ? { graphic: { type: 'text', left: 'center', top: 'middle', style: { text: 'No data', fill: '#8e8e8e', fontSize: 14 } } } : {}),
  });
  const svg = chart.renderToSVGString();
  chart.dispose();
  return svg;
}

async function table(p: Panel): Promise<string> {
  const width = p.gridPos.w * COL - 12;
  const height = p.gridPos.h * ROW - 12;
  const rows: Array<Record<string, string>> = [];
  for (const t of p.targets ?? []) for (const s of await promql(t.expr, true)) rows.push(s.metric);
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((c) => c !== '__name__');
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const cell = (text: string, i: number, y: number, bold = false): string => `<text x="${12 + i * ((width - 24) / cols.length)}" y="${y}" font-family="DejaVu Sans" font-size="11" fill="${bold ? '#ccccdc' : '#a0a0b0'}"${bold ? ' font-weight="bold"' : ''}>${esc(text)}</text>`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="#181b1f"/>`,
    `<text x="8" y="20" font-family="DejaVu Sans" font-size="13" fill="#ccccdc">${esc(p.title)}</text>`,
    ...cols.map((c, i) => cell(c, i, 44, true)),
    ...rows.flatMap((r, j) => cols.map((c, i) => cell(r[c] ?? '', i, 64 + j * 18))),
    '</svg>',
  ].join('');
}

const dashboard = JSON.parse(readFileSync(args.dashboard!, 'utf8')) as { title: string; panels: Panel[] };
const rowsUsed = Math.max(...dashboard.panels.map((p) => p.gridPos.y + p.gridPos.h));
const W = 24 * COL;
const H = rowsUsed * ROW + 44;
const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><rect width="100%" height="100%" fill="#111217"/>`];
parts.push(
  `<text x="12" y="26" font-family="DejaVu Sans" font-size="16" fill="#e0e0e8">${dashboard.title} — panels drawn from their Prometheus queries (last ${minutes} min), not a Grafana screenshot</text>`,
);
for (const p of dashboard.panels) {
  const svg = p.type === 'table' ? await table(p) : await timeseries(p);
  // Nested <svg> at the panel's grid position.
  parts.push(svg.replace('<svg ', `<svg x="${p.gridPos.x * COL + 6}" y="${p.gridPos.y * ROW + 44}" `));
}
parts.push('</svg>');
const png = new Resvg(parts.join(''), { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' }, background: '#111217' }).render().asPng();
writeFileSync(args.out!, png);
console.log(`wrote ${args.out} (${W}x${H}, ${png.length} bytes) from ${args.prometheus}`);
