/**
 * Node flags the shipped ctun runs with. A tunnel end allocates a little per batch at
 * a high rate; V8's default young generation (up to 16 MiB per semi-space) then grows
 * to its maximum and stays resident. 1 MiB semi-spaces keep the peak resident set
 * 10-15 MiB lower at the same throughput (npm run bench shows both).
 */
export const TUNNEL_NODE_FLAGS = ['--max-semi-space-size=1'] as const;

/**
 * The environment the shipped ctun runs with (a user's own value wins). glibc gives
 * each thread that allocates (V8's garbage-collector helpers, libuv's pool) a heap
 * arena of its own, up to 8 per core, and each keeps freed pages of its own: two
 * arenas took 3-4 MiB off a tunnel end's private memory at full rate, at the same
 * throughput (README, Speed).
 */
export const TUNNEL_ENV = { MALLOC_ARENA_MAX: '2' } as const;

/** TUNNEL_ENV as `export` lines of a shell wrapper, each keeping a value already set. */
export function tunnelEnvExports(): string[] {
  return Object.entries(TUNNEL_ENV).map(([k, v]) => `export ${k}="\${${k}:-${v}}"`);
}
