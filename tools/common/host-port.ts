import { isIPv6 } from 'node:net';

/**
 * `host:port` as a user reads it and types it back. An IPv6 address goes in brackets
 * (`[fd00::5]:31723`, RFC 3986's form), since its own colons would swallow the port
 * (`fd00::5:31723` is another address); an IPv4 address or a name stays as it is, and
 * a host already in brackets is not bracketed twice. The one place that joins a host
 * and a port for a log line, an error or a printed command.
 */
export function formatHostPort(host: string, port: number | string): string {
  return `${isIPv6(host) ? `[${host}]` : host}:${port}`;
}

/** A host as a user may write an IPv6 address next to a port (`[fd00::1]`), without its brackets. */
export function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}
