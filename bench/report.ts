/**
 * Turns tunnel measurements into what people read: a text table with the ratios
 * that matter (against OpenVPN on the same transport and cipher, against kernel
 * VXLAN, RTT added over the bare veth), and a hand-written SVG bar chart.
 */
import type { Measurement } from './tunnel.js';

export interface Row extends Measurement {
  vsOpenvpn: number;
  vsVxlan: number;
  addedRttMs: number;
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
    };
  });
}

const fmt = (x: number, digits = 0): string => (Number.isFinite(x) ? x.toFixed(digits) : '–');
const pair = (r: Record<string, number>, digits: number): string => {
  const keys = ['server', 'client'].filter((k) => k in r);
  return keys.length === 0 ? 'kernel' : keys.map((k) => fmt(r[k]!, digits)).join(' / ');
};

export function table(rows: Row[]): string {
  const head = ['tunnel', 'up Mbit/s', 'down Mbit/s', '×OpenVPN', '×VXLAN', 'RTT ms', '+RTT ms', 'RTT busy ms', 'retr', 'CPU s/GB srv/cli', 'peak RSS MiB srv/cli', 'private MiB srv/cli'];
  const body = rows.map((r) => [
    r.name,
    fmt(r.upMbps),
    fmt(r.downMbps),
    fmt(r.vsOpenvpn, 2),
    fmt(r.vsVxlan, 3),
    fmt(r.rttMs, 3),
    fmt(r.addedRttMs, 3),
    fmt(r.rttBusyMs, 3),
    fmt(r.retransmits),
    pair(r.cpuSecPerGB, 2),
    pair(r.peakRssMiB, 1),
    pair(r.privateMiB ?? {}, 1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const errors = rows.filter((r) => r.error).map((r) => `  ${r.name}: ${r.error}`);
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line), ...(errors.length ? ['errors:', ...errors] : [])].join('\n');
}

const COLOURS: Record<string, string> = { direct: '#9e9e9e', vxlan: '#607d8b', openvpn: '#ef6c00', ctun: '#1565c0' };

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * A horizontal bar chart of throughput (log scale, since the veth is an order of
 * magnitude above every tunnel), one bar per tunnel, upload and download.
 */
export function svgChart(rows: Row[], subtitle: string): string {
  const shown = rows.filter((r) => Number.isFinite(r.upMbps));
  const left = 190;
  const width = 760;
  const barH = 11;
  const rowH = 30;
  const top = 58;
  const plotW = width - left - 90;
  const height = top + shown.length * rowH + 40;
  const max = Math.max(...shown.flatMap((r) => [r.upMbps, r.downMbps].filter(Number.isFinite)), 100);
  const lo = 10;
  const hiExp = Math.ceil(Math.log10(max));
  const x = (v: number): number => (Math.log10(Math.max(v, lo)) - 1) / (hiExp - 1) * plotW;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  parts.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  parts.push(`<text x="${left}" y="20" font-size="15" font-weight="bold">TCP throughput through each tunnel (iperf3, Mbit/s, log scale)</text>`);
  parts.push(`<text x="${left}" y="38" fill="#555">${esc(subtitle)}</text>`);
  for (let e = 1; e <= hiExp; e++) {
    const gx = left + x(10 ** e);
    parts.push(`<line x1="${gx.toFixed(1)}" y1="${top - 8}" x2="${gx.toFixed(1)}" y2="${top + shown.length * rowH}" stroke="#e0e0e0"/>`);
    parts.push(`<text x="${gx.toFixed(1)}" y="${top + shown.length * rowH + 16}" text-anchor="middle" fill="#555">${10 ** e >= 1000 ? `${10 ** (e - 3)} G` : `${10 ** e} M`}</text>`);
  }
  shown.forEach((r, i) => {
    const y = top + i * rowH;
    const colour = COLOURS[r.family] ?? '#333';
    parts.push(`<text x="${left - 8}" y="${y + barH + 3}" text-anchor="end">${esc(r.name)}</text>`);
    parts.push(`<rect x="${left}" y="${y}" width="${x(r.upMbps).toFixed(1)}" height="${barH}" fill="${colour}"/>`);
    parts.push(`<text x="${(left + x(r.upMbps) + 4).toFixed(1)}" y="${y + barH - 1}" fill="#222">${fmt(r.upMbps)} ↑</text>`);
    if (Number.isFinite(r.downMbps)) {
      parts.push(`<rect x="${left}" y="${y + barH + 1}" width="${x(r.downMbps).toFixed(1)}" height="${barH - 3}" fill="${colour}" opacity="0.55"/>`);
      parts.push(`<text x="${(left + x(r.downMbps) + 4).toFixed(1)}" y="${y + 2 * barH - 2}" fill="#555" font-size="10">${fmt(r.downMbps)} ↓</text>`);
    }
  });
  const ly = height - 10;
  let lx = left;
  for (const [fam, label] of [['direct', 'veth (limit)'], ['vxlan', 'kernel VXLAN'], ['openvpn', 'OpenVPN 2.6 TAP'], ['ctun', 'ctun']] as const) {
    parts.push(`<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${COLOURS[fam]}"/><text x="${lx + 14}" y="${ly}">${label}</text>`);
    lx += 130;
  }
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
