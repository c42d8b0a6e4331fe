import { metadata } from './metadata.js';

/**
 * The tunnel's defaults, in one place: the CLI's flags, the server and client, the
 * Docker and Kubernetes deployments and the benchmarks take them from here. The port
 * lives in metadata.json beside the versions (the seed's metadata.ini has it), so it is
 * read from there, not repeated. The addresses are the seed's: 192.168.100.100 on the
 * PC's `dstap0`, 192.168.100.1 on the server's TAP, one /24 between them.
 */
export const TUNNEL_DEFAULTS = {
  /** UDP (and TCP) port of the server: 1723. */
  port: metadata.defaultPort,
  /** UDP; TCP for networks that pass only TCP. */
  transport: 'udp',
  /** The PC's TAP, made once by `ctun configure`. */
  clientTap: 'dstap0',
  /** The PC's address on the tunnel. */
  clientAddress: '192.168.100.100',
  /** The TAP the server creates beside the simulator. */
  serverTap: 'ctun0',
  /** The server's address on the tunnel: what a client reaches and routes `--dest` through. */
  serverAddress: '192.168.100.1',
  /** Prefix length of the tunnel network. */
  prefix: 24,
  /** MTU of both TAPs: an inner 1400-byte frame plus the tunnel's headers fits a 1500-byte path. */
  mtu: 1400,
} as const;

/** `192.168.100.1/24`: the server's `--address` default. */
export const SERVER_CIDR = `${TUNNEL_DEFAULTS.serverAddress}/${TUNNEL_DEFAULTS.prefix}`;
