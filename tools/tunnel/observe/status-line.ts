/**
 * The client's one live status line in a terminal: who it is connected to, the
 * round-trip time, the rates each way and the drops, redrawn in place every second
 * under the log lines (each log line clears it, is written, and the line comes back).
 * Off when stdout is not a terminal or logs are JSON: then nothing but log lines.
 */
import type { Figures } from './figures.js';
import { totalDrops } from './figures.js';

export interface TtyStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Erases the current terminal line and returns to its start. */
const ERASE_LINE = '\r\x1b[2K';

/** Whether a status line belongs on `out`: a terminal, and text logs. */
export function wantStatusLine(out: TtyStream, logFormat: string): boolean {
  return out.isTTY === true && logFormat === 'text';
}

/** `12.3 Mbit/s`: a byte count over a time as a bit rate, in the units a NIC shows. */
export function formatRate(bytes: number, ms: number): string {
  const bits = ms > 0 ? (bytes * 8 * 1000) / ms : 0;
  const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s'];
  let v = bits;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v >= 100 || u === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

/** The line's text from two snapshots `ms` apart (rates are their difference). */
export function formatStatusLine(now: Figures, before: Figures | undefined, ms: number): string {
  if (!now.connected) return `○ connecting to ${now.server ?? '?'}… (reconnects ${now.reconnects ?? 0}, drops ${totalDrops(now)})`;
  const rx = before === undefined ? 0 : now.bytes.rx - before.bytes.rx;
  const tx = before === undefined ? 0 : now.bytes.tx - before.bytes.tx;
  const rtt = now.lastRttMs === undefined ? '–' : `${now.lastRttMs < 10 ? now.lastRttMs.toFixed(2) : now.lastRttMs.toFixed(0)} ms`;
  return `● connected to ${now.server ?? '?'}  rtt ${rtt}  ↓ ${formatRate(rx, ms)}  ↑ ${formatRate(tx, ms)}  drops ${totalDrops(now)}`;
}

export class StatusLine {
  private text = '';

  constructor(private readonly out: TtyStream) {}

  /** Replaces the line (cut to the terminal's width, so it never wraps). */
  show(text: string): void {
    // A pseudo-terminal may report 0 columns (no size set): then assume 80.
    const width = Math.max(10, (this.out.columns || 80) - 1);
    this.text = [...text].slice(0, width).join('');
    this.out.write(ERASE_LINE + this.text);
  }

  /** Writes log output above the line: erase it, write, draw it again. */
  above(write: () => void): void {
    if (this.text !== '') this.out.write(ERASE_LINE);
    write();
    if (this.text !== '') this.out.write(this.text);
  }

  /** Removes the line for good (at exit), leaving the cursor at a clean line start. */
  clear(): void {
    if (this.text !== '') this.out.write(ERASE_LINE);
    this.text = '';
  }
}

/**
 * Redraws `line` from `figures()` every `intervalMs` until the returned stop is
 * called. The timer does not keep the process alive.
 */
export function runStatusLine(line: StatusLine, figures: () => Figures, intervalMs = 1000, now: () => number = Date.now): () => void {
  let before: Figures | undefined;
  let at = now();
  const tick = (): void => {
    const f = figures();
    const t = now();
    line.show(formatStatusLine(f, before, t - at));
    before = f;
    at = t;
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    line.clear();
  };
}
