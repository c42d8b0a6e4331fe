/**
 * `npm run fuzz`: a million mutated inputs (default; `tsx bench/fuzz.ts N SEED`) at
 * every decoder of hostile input (tools/tunnel/secure/fuzz.ts). Exits 1 with the
 * reproducing seed and index on the first input that ends neither accepted nor in a
 * typed error; prints the outcome counts and the heap before and after.
 */
import { allTargets, fuzz, FuzzFinding } from '../tools/tunnel/secure/fuzz.js';

const count = Number(process.argv[2] ?? 1_000_000);
const seed = Number(process.argv[3] ?? Date.now() % 0x7fffffff);
const heap0 = process.memoryUsage().heapUsed;
let total = 0;
try {
  for (const target of allTargets()) {
    const t0 = performance.now();
    const r = fuzz(target, count, seed);
    total += r.inputs;
    const ms = performance.now() - t0;
    console.log(`${r.target.padEnd(11)} ${r.inputs} inputs in ${(ms / 1000).toFixed(1)} s: accepted ${r.accepted}, rejected ${JSON.stringify(r.rejected)}`);
  }
} catch (e) {
  if (e instanceof FuzzFinding) {
    console.error(`FINDING (reproduce with: tsx bench/fuzz.ts ${count} ${seed}): ${e.message}`);
    process.exit(1);
  }
  throw e;
}
const heap1 = process.memoryUsage().heapUsed;
console.log(`${total} inputs, seed ${seed}, no finding; heap ${(heap0 / 2 ** 20).toFixed(1)} MiB -> ${(heap1 / 2 ** 20).toFixed(1)} MiB, rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(1)} MiB`);
