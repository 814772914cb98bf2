// One real PostgreSQL for the whole test run (test/harness/postgres.mjs: the binaries npm install
// brings, a temp folder, a free port), removed at the end. Tests get its URL through inject().

import type { TestProject } from 'vitest/node';
import { LocalPostgres } from './harness/postgres.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const pg = await LocalPostgres.create();
  try {
    await pg.start();
  } catch (err) {
    await pg.destroy();
    throw err;
  }
  // The base URL without a database: tests create their own (freshPostgresDatabase).
  project.provide('pgUrl', pg.url());
  return () => pg.destroy();
}
