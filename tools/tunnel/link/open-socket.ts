/** The one place that chooses between the two real datagram sockets. */
import { isIPv4 } from 'node:net';
import { BatchUdpSocket } from './batch-udp.js';
import { AddonDatagramSocket } from './addon-socket.js';
import { anyAddress, type DatagramSocketFactory } from './datagram-socket.js';
import { NodeDatagramSocket } from './dgram-socket.js';

/** The addon's batch socket where it can serve (IPv4 addresses, an addon built with it), else node:dgram. */
export const openDatagramSocket: DatagramSocketFactory = async (options) => {
  const host = options.host ?? anyAddress(options.family);
  if (options.family === 4 && isIPv4(host) && BatchUdpSocket.available()) return AddonDatagramSocket.open({ ...options, host });
  return NodeDatagramSocket.open({ ...options, host });
};
