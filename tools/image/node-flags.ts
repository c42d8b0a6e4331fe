/**
 * Node flags the shipped ctun runs with. A tunnel end allocates a little per batch at
 * a high rate; V8's default young generation (up to 16 MiB per semi-space) then grows
 * to its maximum and stays resident. 1 MiB semi-spaces keep the peak resident set
 * 10-15 MiB lower at the same throughput (npm run bench shows both).
 */
export const TUNNEL_NODE_FLAGS = ['--max-semi-space-size=1'] as const;
