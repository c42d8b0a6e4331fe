/** What plain and sealed UDP share: a datagram into messages, and the client's connected socket. */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { decodeDatagram, ProtocolError, type Message } from '../protocol.js';
import type { AddressFamily, DatagramSocket } from './datagram-socket.js';
import { openDatagramSocket } from './open-socket.js';
import type { ConnectOptions, PeerLink, ReplyBudget, ServerTransportHandlers } from './types.js';

/** The family the UDP transports speak: IPv4 today (the socket takes a family, the transports' options not yet). */
export const TRANSPORT_FAMILY: AddressFamily = 4;

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

/** The client's socket, connected to the server (its name resolved first, in the family). */
export async function openClientSocket(options: ConnectOptions): Promise<DatagramSocket> {
  const address = isIP(options.host) === TRANSPORT_FAMILY ? options.host : (await lookup(options.host, { family: TRANSPORT_FAMILY })).address;
  const open = options.datagrams ?? openDatagramSocket;
  return open({ family: TRANSPORT_FAMILY, connect: { address, port: options.port }, maxQueueDatagrams: options.maxQueueDatagrams });
}
