/**
 * Turns tunnel measurements into what people read: a text table with the ratios
 * that matter (against OpenVPN on the same transport and cipher, against kernel
 * VXLAN, RTT and request/response round trip added over the bare veth), and a
 * hand-written SVG with two panels: throughput, and the request/response round trip.
 */
import type { Measurement } from './tunnel.js';

export interface Row extends Measurement {
  vsOpenvpn: number;
  vsVxlan: number;
  addedRttMs: number;
  /** Mean request/response round trip minus the direct veth's in the same run, µs: what the tunnel adds. */
  addedRrUs: number;
  /**
   * ctun's added round trip over OpenVPN's (same transport and cipher), one ratio per
   * round: both were measured minutes apart in the same round, so a shared machine's
   * drift between rounds cancels out of each ratio. Empty with one round.
   */
  addedRrVsOpenvpnByRound: number[];
}

/** The OpenVPN row a ctun row is compared with: same transport, plain with plain, TLS with AES-256-GCM. */
function openvpnPeer(m: Measurement, all: Measurement[]): Measurement | undefined {
  if (m.family !== 'ctun') return undefined;
  const cipher = m.cipher === 'none' ? 'none' : 'aes-256-gcm';
  return all.find((x) => x.family === 'openvpn' && x.transport === m.transport && x.cipher === cipher);
}

export function withRatios(all: Measurement[]): Row[] {
  const vx = all.find((m) => m.family === 'vxlan');
  const direct = all.find((m) => m.family === 'direct');
  return all.map((m) => {
    const ov = m.family === 'openvpn' ? m : openvpnPeer(m, all);
    return {
      ...m,
      vsOpenvpn: ov === undefined ? NaN : m.upMbps / ov.upMbps,
      vsVxlan: vx === undefined ? NaN : m.upMbps / vx.upMbps,
      addedRttMs: direct === undefined ? NaN : m.rttMs - direct.rttMs,
      addedRrUs: direct === undefined ? NaN : m.rrMeanUs - direct.rrMeanUs,
      addedRrVsOpenvpnByRound: m.family === 'ctun' && ov !== undefined && direct !== undefined ? pairedRatios(m, ov, direct) : [],
    };
  });
}

/** Per round: (m − direct) / (openvpn − direct), each from that round's means. */
function pairedRatios(m: Measurement, openvpn: Measurement, direct: Measurement): number[] {
  const [a, o, d] = [m, openvpn, direct].map((x) => x.rrMeanUsByRound ?? []);
  if (a!.length < 2 || a!.length !== o!.length || a!.length !== d!.length) return [];
  return a!.map((x, i) => (x - d![i]!) / (o![i]! - d![i]!)).filter(Number.isFinite);
}

/** One line per ctun row with paired per-round round-trip ratios: median and range. */
export function pairedRoundTripLines(rows: Row[]): string[] {
  return rows
    .filter((r) => r.addedRrVsOpenvpnByRound.length > 1)
    .map((r) => {
      const xs = [...r.addedRrVsOpenvpnByRound].sort((p, q) => p - q);
      const median = xs[Math.floor(xs.length / 2)]!;
      return `${r.name}: added round trip ×OpenVPN per round, median ${median.toFixed(2)} (${xs[0]!.toFixed(2)}–${xs[xs.length - 1]!.toFixed(2)}), ${xs.filter((x) => x <= 1).length} of ${xs.length} rounds at or below`;
    });
}

const fmt = (x: number, digits = 0): string => (Number.isFinite(x) ? x.toFixed(digits) : '–');
/** The server's and client's figures; the kernel's tunnels have no ends to measure, a run that skipped a figure shows a dash. */
const pair = (row: Row, r: Record<string, number>, digits: number): string => {
  const keys = ['server', 'client'].filter((k) => k in r);
  if (keys.length > 0) return keys.map((k) => fmt(r[k]!, digits)).join(' / ');
  return row.family === 'direct' || row.family === 'vxlan' ? 'kernel' : '–';
};

export function table(rows: Row[]): string {
  const head = ['tunnel', 'up Mbit/s', 'down Mbit/s', '×OpenVPN', '×VXLAN', 'RTT ms', '+RTT ms', 'RTT busy ms', 'RR µs', 'RR p99 µs', '+RR µs', 'RR CPU µs srv/cli', 'retr', 'CPU s/GB srv/cli', 'peak RSS MiB srv/cli', 'private MiB srv/cli'];
  const body = rows.map((r) => [
    r.name,
    fmt(r.upMbps),
    fmt(r.downMbps),
    fmt(r.vsOpenvpn, 2),
    fmt(r.vsVxlan, 3),
    fmt(r.rttMs, 3),
    fmt(r.addedRttMs, 3),
    fmt(r.rttBusyMs, 3),
    fmt(r.rrMeanUs, 1),
    fmt(r.rrP99Us, 1),
    fmt(r.addedRrUs, 1),
    pair(r, r.rrCpuUs ?? {}, 1),
    fmt(r.retransmits),
    pair(r, r.cpuSecPerGB, 2),
    pair(r, r.peakRssMiB, 1),
    pair(r, r.privateMiB ?? {}, 1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const errors = rows.filter((r) => r.error).map((r) => `  ${r.name}: ${r.error}`);
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line), ...(errors.length ? ['errors:', ...errors] : [])].join('\n');
}

const COLOURS: Record<string, string> = { direct: '#9e9e9e', vxlan: '#607d8b', openvpn: '#ef6c00', ctun: '#1565c0' };

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const LEFT = 190;
const WIDTH = 760;
const BAR_H = 11;
const ROW_H = 30;
const PLOT_W = WIDTH - LEFT - 90;

/** One panel of the picture: its SVG elements, drawn from `top`, and the height it took. */
interface Panel {
  parts: string[];
  height: number;
}

/**
 * The picture of one run: throughput (log scale, since the veth is an order of
 * magnitude above every tunnel) and, below it, the request/response round trip
 * (linear, mean with the p99 as a whisker), one bar per tunnel.
 */
export function svgChart(rows: Row[], subtitle: string): string {
  const throughput = throughputPanel(rows, subtitle, 0);
  const rr = rrPanel(rows, throughput.height);
  const legendY = throughput.height + rr.height + 20;
  const height = legendY + 10;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  parts.push(`<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`);
  parts.push(...throughput.parts, ...rr.parts);
  let lx = LEFT;
  for (const [fam, label] of [['direct', 'veth (limit)'], ['vxlan', 'kernel VXLAN'], ['openvpn', 'OpenVPN 2.6 TAP'], ['ctun', 'ctun']] as const) {
    parts.push(`<rect x="${lx}" y="${legendY - 9}" width="10" height="10" fill="${COLOURS[fam]}"/><text x="${lx + 14}" y="${legendY}">${label}</text>`);
    lx += 130;
  }
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

function throughputPanel(rows: Row[], subtitle: string, y0: number): Panel {
  const shown = rows.filter((r) => Number.isFinite(r.upMbps));
  const top = y0 + 58;
  const max = Math.max(...shown.flatMap((r) => [r.upMbps, r.downMbps].filter(Number.isFinite)), 100);
  const lo = 10;
  const hiExp = Math.ceil(Math.log10(max));
  const x = (v: number): number => ((Math.log10(Math.max(v, lo)) - 1) / (hiExp - 1)) * PLOT_W;
  const parts: string[] = [];
  parts.push(`<text x="${LEFT}" y="${y0 + 20}" font-size="15" font-weight="bold">TCP throughput through each tunnel (iperf3, Mbit/s, log scale)</text>`);
  parts.push(`<text x="${LEFT}" y="${y0 + 38}" fill="#555">${esc(subtitle)}</text>`);
  for (let e = 1; e <= hiExp; e++) {
    const gx = LEFT + x(10 ** e);
    parts.push(`<line x1="${gx.toFixed(1)}" y1="${top - 8}" x2="${gx.toFixed(1)}" y2="${top + shown.length * ROW_H}" stroke="#e0e0e0"/>`);
    parts.push(`<text x="${gx.toFixed(1)}" y="${top + shown.length * ROW_H + 16}" text-anchor="middle" fill="#555">${10 ** e >= 1000 ? `${10 ** (e - 3)} G` : `${10 ** e} M`}</text>`);
  }
  shown.forEach((r, i) => {
    const y = top + i * ROW_H;
    const colour = COLOURS[r.family] ?? '#333';
    parts.push(`<text x="${LEFT - 8}" y="${y + BAR_H + 3}" text-anchor="end">${esc(r.name)}</text>`);
    parts.push(`<rect x="${LEFT}" y="${y}" width="${x(r.upMbps).toFixed(1)}" height="${BAR_H}" fill="${colour}"/>`);
    parts.push(`<text x="${(LEFT + x(r.upMbps) + 4).toFixed(1)}" y="${y + BAR_H - 1}" fill="#222">${fmt(r.upMbps)} ↑</text>`);
    if (Number.isFinite(r.downMbps)) {
      parts.push(`<rect x="${LEFT}" y="${y + BAR_H + 1}" width="${x(r.downMbps).toFixed(1)}" height="${BAR_H - 3}" fill="${colour}" opacity="0.55"/>`);
      parts.push(`<text x="${(LEFT + x(r.downMbps) + 4).toFixed(1)}" y="${y + 2 * BAR_H - 2}" fill="#555" font-size="10">${fmt(r.downMbps)} ↓</text>`);
    }
  });
  return { parts, height: top - y0 + shown.length * ROW_H + 30 };
}

/** The request/response round trip: a bar for the mean, a thin line out to the p99. */
function rrPanel(rows: Row[], y0: number): Panel {
  const shown = rows.filter((r) => Number.isFinite(r.rrMeanUs));
  if (shown.length === 0) return { parts: [], height: 0 };
  const top = y0 + 58;
  const rowH = 22;
  // The axis follows the means (a p99 on a shared machine can be ten times the mean):
  // a p99 beyond it is drawn to the edge, its figure in the label.
  const max = 2 * Math.max(...shown.map((r) => r.rrMeanUs));
  const step = [10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000].find((st) => max / st <= 8) ?? 10_000;
  const hi = Math.ceil(max / step) * step;
  const x = (v: number): number => (Math.min(v, hi) / hi) * PLOT_W;
  const parts: string[] = [];
  parts.push(`<text x="${LEFT}" y="${y0 + 20}" font-size="15" font-weight="bold">TCP request/response round trip (sockperf ping-pong, µs)</text>`);
  parts.push(`<text x="${LEFT}" y="${y0 + 38}" fill="#555">64-byte messages, one in flight; bar: mean, line: to the p99; (+ added over the veth)</text>`);
  for (let v = 0; v <= hi; v += step) {
    const gx = LEFT + x(v);
    parts.push(`<line x1="${gx.toFixed(1)}" y1="${top - 8}" x2="${gx.toFixed(1)}" y2="${top + shown.length * rowH}" stroke="#e0e0e0"/>`);
    parts.push(`<text x="${gx.toFixed(1)}" y="${top + shown.length * rowH + 16}" text-anchor="middle" fill="#555">${v}</text>`);
  }
  shown.forEach((r, i) => {
    const y = top + i * rowH;
    const colour = COLOURS[r.family] ?? '#333';
    parts.push(`<text x="${LEFT - 8}" y="${y + BAR_H}" text-anchor="end">${esc(r.name)}</text>`);
    parts.push(`<rect x="${LEFT}" y="${y}" width="${x(r.rrMeanUs).toFixed(1)}" height="${BAR_H + 2}" fill="${colour}"/>`);
    if (Number.isFinite(r.rrP99Us)) {
      const cy = y + (BAR_H + 2) / 2;
      parts.push(`<line x1="${(LEFT + x(r.rrMeanUs)).toFixed(1)}" y1="${cy}" x2="${(LEFT + x(r.rrP99Us)).toFixed(1)}" y2="${cy}" stroke="${colour}" stroke-width="1.5"/>`);
      parts.push(`<line x1="${(LEFT + x(r.rrP99Us)).toFixed(1)}" y1="${y + 2}" x2="${(LEFT + x(r.rrP99Us)).toFixed(1)}" y2="${y + BAR_H}" stroke="${colour}" stroke-width="1.5"/>`);
    }
    const added = Number.isFinite(r.addedRrUs) && r.family !== 'direct' ? ` (+${fmt(r.addedRrUs)})` : '';
    // The label sits past the bar, or inside the plot's right end when the p99 line reaches it.
    const end = LEFT + x(Number.isFinite(r.rrP99Us) ? r.rrP99Us : r.rrMeanUs) + 4;
    const label = `${fmt(r.rrMeanUs)}${added} · p99 ${fmt(r.rrP99Us)}`;
    parts.push(end > LEFT + PLOT_W - 120 ? `<text x="${LEFT + PLOT_W + 86}" y="${y + BAR_H}" text-anchor="end" fill="#222" stroke="#fff" stroke-width="4" paint-order="stroke">${label}</text>` : `<text x="${end.toFixed(1)}" y="${y + BAR_H}" fill="#222">${label}</text>`);
  });
  return { parts, height: top - y0 + shown.length * rowH + 30 };
}
