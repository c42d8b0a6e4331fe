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

/** Frees a buffer nothing refers to any more (a copy was made of it), if it is the whole of its memory; once only. */
export function releaseNow(chunk: Buffer): void {
  const buffer = releasable(chunk);
  if (buffer !== undefined && buffer.byteLength > 0) buffer.transfer?.(0);
}

/**
 * Writes `batch` and frees it the moment the socket is done with it: at once when the
 * kernel took it all, else when its write completes. The send side of a TCP link
 * copies one such batch per turn (the frames are views of the TAP's read buffer);
 * left to the garbage collector, the batches that waited in the socket's queue at
 * full rate stayed resident long after they were sent.
 */
export function releaseWhenWritten(socket: { writableLength: number; write(data: Buffer, done: (e?: Error | null) => void): boolean }, batch: Buffer): void {
  // Called after the write, a failed one too (the socket holds it no longer); freeing
  // it twice is a no-op.
  const free = (): void => releaseNow(batch);
  socket.write(batch, free);
  if (socket.writableLength === 0) free();
}
