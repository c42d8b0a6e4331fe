/** The client's one entry to a transport: UDP (plain or sealed) or TCP, by kind. */
import { connectTcp } from './tcp.js';
import type { ClientLink, ConnectOptions } from './types.js';
import { connectUdp } from './udp.js';

export async function connectClientLink(options: ConnectOptions): Promise<ClientLink> {
  return options.transport === 'udp' ? connectUdp(options) : connectTcp(options);
}
