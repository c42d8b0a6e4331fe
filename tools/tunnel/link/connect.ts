/** The client's one entry to a transport: UDP (plain or sealed) or TCP, by kind. */
import { unbracket } from '../../common/index.js';
import { connectTcp } from './tcp.js';
import type { ClientLink, ConnectOptions } from './types.js';
import { connectUdp } from './udp.js';

export async function connectClientLink(options: ConnectOptions): Promise<ClientLink> {
  // `[fd00::1]` (as ctun-run prints an IPv6 server) is the address fd00::1 for every transport.
  const o = { ...options, host: unbracket(options.host) };
  return o.transport === 'udp' ? connectUdp(o) : connectTcp(o);
}
