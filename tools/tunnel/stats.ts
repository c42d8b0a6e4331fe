/** Counters a NIC would show, plus the tunnel's own. */
export interface TunnelStats {
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Frames dropped because a send queue was full (slow peer or slow TAP). */
  dropsQueue: number;
  /** Messages dropped because they were malformed, oversized or from an unknown peer. */
  dropsInvalid: number;
  /** Frames dropped by policy: separate mode's destination, spoofed MACs, isolated clients. */
  dropsPolicy: number;
  reconnects: number;
}

export function createStats(): TunnelStats {
  return { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, dropsQueue: 0, dropsInvalid: 0, dropsPolicy: 0, reconnects: 0 };
}

export function addStats(into: TunnelStats, from: TunnelStats): void {
  for (const k of Object.keys(into) as Array<keyof TunnelStats>) into[k] += from[k];
}
