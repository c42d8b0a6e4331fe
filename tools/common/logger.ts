/**
 * Library code takes a Logger and never writes to the console itself. One event per
 * line: `text` for people, `json` for log collectors (Kubernetes, Docker).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

export type LogFormat = 'text' | 'json';

export interface StreamLoggerOptions {
  /** `text` (default) or `json`. */
  format?: LogFormat;
  /** Lowest level written; default `info`. */
  level?: LogLevel;
  /** Where info and debug lines go; default process.stdout. */
  out?: { write(s: string): unknown };
  /** Where warn and error lines go; default process.stderr. */
  err?: { write(s: string): unknown };
  /** Clock, for tests. */
  now?: () => Date;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function formatValue(v: string | number | boolean): string {
  const s = String(v);
  return /[\s"=]/.test(s) || s === '' ? JSON.stringify(s) : s;
}

export function createLogger(options: StreamLoggerOptions = {}, base: LogFields = {}): Logger {
  const format = options.format ?? 'text';
  const min = ORDER[options.level ?? 'info'];
  const out = options.out ?? process.stdout;
  const err = options.err ?? process.stderr;
  const now = options.now ?? (() => new Date());

  const write = (level: LogLevel, event: string, fields: LogFields = {}): void => {
    if (ORDER[level] < min) return;
    const all: LogFields = { ...base, ...fields };
    const time = now().toISOString();
    let line: string;
    if (format === 'json') {
      const record: Record<string, unknown> = { time, level, event };
      for (const [k, v] of Object.entries(all)) if (v !== undefined) record[k] = v;
      line = JSON.stringify(record);
    } else {
      const parts = [time, level.toUpperCase().padEnd(5), event];
      for (const [k, v] of Object.entries(all)) {
        if (v !== undefined && v !== null) parts.push(`${k}=${formatValue(v)}`);
      }
      line = parts.join(' ');
    }
    (ORDER[level] >= ORDER.warn ? err : out).write(line + '\n');
  };

  return {
    debug: (e, f) => write('debug', e, f),
    info: (e, f) => write('info', e, f),
    warn: (e, f) => write('warn', e, f),
    error: (e, f) => write('error', e, f),
    child: (fields) => createLogger(options, { ...base, ...fields }),
  };
}

/** A logger that keeps lines in memory: the twin used by unit tests. */
export function createMemoryLogger(): Logger & { lines: Array<{ level: LogLevel; event: string; fields: LogFields }> } {
  const lines: Array<{ level: LogLevel; event: string; fields: LogFields }> = [];
  const make = (base: LogFields): Logger => ({
    debug: (event, fields = {}) => lines.push({ level: 'debug', event, fields: { ...base, ...fields } }),
    info: (event, fields = {}) => lines.push({ level: 'info', event, fields: { ...base, ...fields } }),
    warn: (event, fields = {}) => lines.push({ level: 'warn', event, fields: { ...base, ...fields } }),
    error: (event, fields = {}) => lines.push({ level: 'error', event, fields: { ...base, ...fields } }),
    child: (fields) => make({ ...base, ...fields }),
  });
  return Object.assign(make({}), { lines });
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
