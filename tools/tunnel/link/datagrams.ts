/** What plain and sealed UDP share: a datagram into messages, and the client's connected socket. */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { unbracket } from '../../common/index.js';
import { decodeDatagram, ProtocolError, type Message } from '../protocol.js';
import type { AddressFamily, DatagramSocket } from './datagram-socket.js';
import { openDatagramSocket } from './open-socket.js';
import type { ConnectOptions, PeerLink, ReplyBudget, ServerTransportHandlers } from './types.js';

/**
 * The family a server's socket binds for its listen address: IPv6 for an IPv6 address
 * (`::` also takes IPv4 peers, as v4-mapped addresses, wherever the host allows dual
 * stack: Linux's default bindv6only=0), IPv4 for anything else.
 */
export function listenFamily(host: string | undefined): AddressFamily {
  return host !== undefined && isIP(host) === 6 ? 6 : 4;
}

/**
 * The server's address for a client: an IP address as given (`[fd00::1]` too), a name
 * resolved in either family (the system's order; /etc/hosts first, as getaddrinfo does).
 */
export async function resolveServer(host: string): Promise<{ address: string; family: AddressFamily }> {
  const bare = unbracket(host); // also for callers that bypass connectClientLink
  const literal = isIP(bare);
  if (literal !== 0) return { address: bare, family: literal as AddressFamily };
  const found = await lookup(bare);
  return { address: found.address, family: found.family === 6 ? 6 : 4 };
}

/**
 * Decodes one datagram and hands on its messages, all or none: a datagram that is
 * not whole messages goes to `invalid` and nothing of it is acted on.
 */
export function dispatchDatagram(datagram: Buffer, message: (m: Message) => void, invalid: (e: ProtocolError) => void): void {
  let messages: Message[];
  try {
    messages = decodeDatagram(datagram);
  } catch (e) {
    if (e instanceof ProtocolError) invalid(e);
    return;
  }
  for (const m of messages) message(m);
}

/** The server side of dispatchDatagram: plain datagrams carry a reply budget, sealed ones (authenticated) none. */
export function dispatchToServer(handlers: ServerTransportHandlers, link: PeerLink, datagram: Buffer, sealed: boolean): void {
  const budget: ReplyBudget | undefined = sealed ? undefined : { bytes: datagram.length, replies: 1 };
  dispatchDatagram(datagram, (m) => handlers.message(link, m, budget), (e) => handlers.invalid(link, e, budget));
}

/** The client's socket, connected to the server (its name resolved first, in either family). */
export async function openClientSocket(options: ConnectOptions): Promise<DatagramSocket> {
  const { address, family } = await resolveServer(options.host);
  const open = options.datagrams ?? openDatagramSocket;
  return open({ family, connect: { address, port: options.port }, maxQueueDatagrams: options.maxQueueDatagrams });
}
