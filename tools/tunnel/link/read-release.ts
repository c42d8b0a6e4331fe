/**
 * Frees what a TCP or TLS socket read (and what it wrote) as soon as the tunnel is
 * done with it. Node
 * allocates a fresh buffer for every socket read and frees it only at V8's next
 * scavenge; at full rate that kept 10 MB and more of read buffers resident per tunnel
 * end, and the C heap kept their pages afterwards. The frames decoded from a chunk
 * are views of it and, like the TAP's read buffer, valid until the handler and the
 * microtasks it queued have run (TickBatch writes them then; whoever keeps a frame
 * longer copies it). So each chunk's ArrayBuffer is detached — which frees its memory
 * at once — in the check phase of the same turn of the event loop, before any later
 * read: the next read reuses the same, still warm, memory.
 */

// ES2024's ArrayBuffer.prototype.transfer (Node 21 and later); a detached buffer has byteLength 0.
type Transferable = ArrayBuffer & { transfer?: (length: number) => ArrayBuffer };

/** Whether `chunk` is the whole of its ArrayBuffer and that can be freed early. */
function releasable(chunk: Buffer): Transferable | undefined {
  const buffer = chunk.buffer as Transferable;
  if (!(buffer instanceof ArrayBuffer) || buffer.transfer === undefined || chunk.byteOffset !== 0 || buffer.byteLength !== chunk.length) return undefined;
  return buffer;
}

let pending: Transferable[] = [];
let scheduled = false;

const releaseAll = (): void => {
  scheduled = false;
  const list = pending;
  pending = [];
  for (const buffer of list) if (buffer.byteLength > 0) buffer.transfer?.(0);
};

/**
 * Releases `chunk`'s memory after this turn of the event loop. Only a chunk that is
 * the whole of its ArrayBuffer (what a socket read gives) is released; a view into a
 * buffer that holds anything else is left to the garbage collector.
 */
export function releaseAfterTurn(chunk: Buffer): void {
  const buffer = releasable(chunk);
  if (buffer === undefined) return;
  pending.push(buffer);
  if (!scheduled) {
    scheduled = true;
    setImmediate(releaseAll);
  }
}

/**
 * Frees a batch that a socket write has handed to the kernel in full: nothing is left
 * queued (`writableLength` 0 right after the write), so neither Node nor libuv keeps a
 * reference to it. The send side of a TCP link allocates one such batch per turn; a
 * batch still queued waits for the garbage collector.
 */
export function releaseWritten(socket: { writableLength: number }, written: Buffer): void {
  if (socket.writableLength === 0) releasable(written)?.transfer?.(0);
}
