import { defineConfig } from 'vitest/config';

// Unit tests sit beside the code and need neither root nor a daemon. Integration and
// end-to-end tests under test/ use real namespaces, TAP devices and Docker; they run
// one file at a time because they share the kernel's network state.
export default defineConfig({
  test: {
    // Integration files share the kernel's network state and the Docker daemon. (The
    // unit project runs its files in parallel all the same: `npm run test:unit` asks
    // for it, as only the root can: vitest has no per-project file parallelism.)
    fileParallelism: false,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['tools/**/*.test.ts'],
          testTimeout: 10_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 600_000,
          pool: 'forks',
          // A folder per run, through which files share what only one should make (the base
          // image); the ctun CLI bundled once per run, so that each start is plain Node.
          globalSetup: ['test/fixtures/build/run-folder.ts', 'test/fixtures/ctun-cli.ts'],
        },
      },
    ],
  },
});
