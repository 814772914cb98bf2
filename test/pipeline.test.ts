// The pipeline's background folding: stopping while a fold runs and new commits wait must settle
// (no hang), and everything committed is folded by the final drain.

import { describe, expect, it } from 'vitest';
import { loadAdapterDir } from '../src/ingest/adapter.js';
import { Pipeline } from '../src/pipeline/pipeline.js';
import { SqliteStore } from '../src/store/sqlite/index.js';
import type { Store } from '../src/store/types.js';
import { ADAPTERS, webhook } from './support.js';
import type { RawRequest } from '../src/domain/request.js';

const threecx = loadAdapterDir(ADAPTERS).get('3cx')!;
const ringing = (i: number): RawRequest =>
  webhook(`{"event":"ringing","user":"800","id":"260101000000_${i}-0"}`);

describe('pipeline', () => {
  it('stops cleanly when a commit arrives while a fold is under way', async () => {
    const real = new SqliteStore(':memory:');
    // The real store, with the first fold held at a gate so that the interleaving is certain.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let entered!: () => void;
    const inFold = new Promise<void>((r) => (entered = r));
    let first = true;
    const store: Store = Object.create(real, {
      applyPending: {
        value: async (limit: number) => {
          if (first) {
            first = false;
            entered();
            await gate;
          }
          return real.applyPending(limit);
        },
      },
    });
    const p = new Pipeline(store, [
      {
        name: '3cx',
        token: 'x'.repeat(8),
        adapter: threecx,
        timezone: 'UTC',
        defaultCountry: undefined,
      },
    ]);
    await p.ingest(ringing(1));
    p.start();
    await inFold; // a fold is running
    await p.ingest(ringing(2)); // its commit asks for another fold while the first runs
    // ...and that request has come and found the loop busy
    await new Promise((r) => setTimeout(r, 20));
    const stopped = p.stop().then(() => 'stopped');
    open();
    expect(
      await Promise.race([stopped, new Promise((r) => setTimeout(() => r('hung'), 2000))]),
    ).toBe('stopped');
    await p.drain();
    expect(await real.countInbox()).toMatchObject({ pending: 0, applied: 2 });
    await real.close();
  });
});
