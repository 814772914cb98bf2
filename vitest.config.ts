import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // A target's tests live with it (src/targets/<name>/); shared and end-to-end tests in test/.
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two test files at once, whatever vitest would pick (it leaves a core free, which on a
    // two-core machine runs the files one by one): most of the suite waits on sockets, timers and
    // child relays rather than the CPU, so two at a time take about half as long. The suite is
    // held to pass so (and was run so under extra load) without a timing-sensitive check.
    maxWorkers: 2,
    globalSetup: ['test/global-postgres.ts'],
  },
});
