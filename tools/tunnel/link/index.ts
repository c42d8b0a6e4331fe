export type {
  ClientLink,
  ClientLinkHandlers,
  ConnectOptions,
  PeerLink,
  ReplyBudget,
  ServerTransport,
  ServerTransportHandlers,
  ServerTransportOptions,
  TransportKind,
} from './types.js';
export type { AddressFamily, DatagramSocket, DatagramSocketFactory, OpenDatagramOptions, PeerKey } from './datagram-socket.js';
export { openDatagramSocket } from './open-socket.js';
export { MemoryDatagramNetwork, type Interceptor } from './memory-socket.js';
export { UdpServerTransport } from './udp.js';
export { TcpServerTransport } from './tcp.js';
export { connectClientLink } from './connect.js';
