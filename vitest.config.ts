import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // A target's tests live with it (src/targets/<name>/); shared and end-to-end tests in test/.
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    globalSetup: ['test/global-postgres.ts'],
  },
});
