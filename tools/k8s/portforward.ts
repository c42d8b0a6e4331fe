import { createServer, type Server, type Socket } from 'node:net';
import { CtunError, errnoCode, type Logger } from '../common/index.js';

/**
 * Connects one local TCP connection to a port of a pod (through the API server's
 * port-forward stream in the real cluster; to a local server in tests). Resolves once
 * the stream is open; closing either side closes the other.
 */
export type PodStreamOpener = (namespace: string, pod: string, port: number, socket: Socket) => Promise<void>;

export interface LocalForward {
  /** The loopback port the client connects to. */
  localPort: number;
  /** Connections carried so far. */
  connections(): number;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface LocalForwardOptions {
  namespace: string;
  pod: string;
  /** The pod's port (the server's 1723/TCP). */
  port: number;
  /** Loopback port to listen on; default 0 (the kernel picks one). */
  localPort?: number;
  logger: Logger;
}

/**
 * A TCP listener on 127.0.0.1 whose every connection is carried to the pod's port.
 * The tunnel client reconnects with a new connection after a drop, and each gets its
 * own stream, so nothing here retries.
 */
export async function startLocalForward(open: PodStreamOpener, o: LocalForwardOptions): Promise<LocalForward> {
  const sockets = new Set<Socket>();
  let count = 0;
  const server: Server = createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const id = count;
    o.logger.info('k8s-port-forward-open', { connection: id, pod: o.pod, port: o.port });
    open(o.namespace, o.pod, o.port, socket).catch((e: unknown) => {
      o.logger.warn('k8s-port-forward-failed', { connection: id, pod: o.pod, port: o.port, error: (e as Error).message });
      socket.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) =>
      reject(
        new CtunError('K8S_PORT_FORWARD', `cannot listen on 127.0.0.1:${o.localPort ?? 0}: ${(e as Error).message}`, {
          hint: errnoCode(e) === 'EADDRINUSE' ? 'choose another --local-port, or leave it out to get a free one' : undefined,
          cause: e,
        }),
      ),
    );
    server.listen(o.localPort ?? 0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const localPort = typeof address === 'object' && address ? address.port : 0;
  const close = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { localPort, connections: () => count, close, [Symbol.asyncDispose]: close };
}
