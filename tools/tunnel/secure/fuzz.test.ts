import { describe, expect, it } from 'vitest';
import { allTargets, fuzz } from './fuzz.js';

// A bounded slice of `npm run fuzz` (bench/fuzz.ts, a million inputs per target):
// every input ends accepted or in a typed error, nothing else.
describe('fuzz slice', () => {
  for (const target of allTargets()) {
    it(`${target.name}: 20 000 mutated inputs end accepted or in a typed error`, () => {
      const r = fuzz(target, 20_000, 0xc7a1, 8000);
      expect(r.inputs).toBeGreaterThan(1000);
      const rejected = Object.values(r.rejected).reduce((a, b) => a + b, 0);
      expect(r.accepted + rejected).toBe(r.inputs);
      expect(rejected).toBeGreaterThan(0);
    });
  }
});
