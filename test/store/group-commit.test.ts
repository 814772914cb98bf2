// Group commit with the store on its own thread: what the pipeline relies on to fold promptly.

import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/store/group-commit.js';
import { ThreadedSqliteStore } from '../../src/store/sqlite/threaded.js';
import type { NewInbox } from '../../src/store/types.js';
import { tempDir, webhook } from '../support.js';

const item = (n: number): NewInbox => ({
  req: webhook(`{"n":${n}}`),
  result: { status: 'ignored', rule: 'r', message: 'ignored' },
  provider: '3cx',
});

let store: ThreadedSqliteStore | undefined;
afterEach(async () => {
  await store?.close();
  store = undefined;
});

it('says so after every commit, also while more requests keep it committing', async () => {
  store = await ThreadedSqliteStore.open({ path: join(tempDir(), 'relay.db') });
  const kicks: number[] = [];
  let committed = 0;
  const committer = new GroupCommitter(store, () => kicks.push(committed));
  const first = committer.submit(item(1)).then((id) => (committed++, id));
  // The first batch is on its way to the store thread: this one waits for the next commit, and
  // under steady load there always is one waiting. Folding must not wait for a lull.
  await new Promise((r) => setImmediate(r));
  const second = committer.submit(item(2)).then((id) => (committed++, id));
  const ids = await Promise.all([first, second]);
  expect(ids[1]).toBeGreaterThan(ids[0]!);
  expect(kicks).toHaveLength(2);
  expect(kicks[0]).toBeLessThanOrEqual(1);
});
