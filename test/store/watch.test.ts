// Store contract for instances sharing PostgreSQL: a fold committed by one store reaches the
// others' watchCalls listeners (LISTEN/NOTIFY), one notification per commit however many calls
// it folded, an instance's own folds skipped; the LISTEN connection comes back after the server
// drops it, and goes when nobody watches. SQLite, written by one process only, has no watchCalls.

import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { CallEvent } from '../../src/domain/model.js';
import { PostgresStore } from '../../src/store/postgres/index.js';
import { CALLS_CHANNEL } from '../../src/store/postgres/watch.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import type { NewInbox, Store } from '../../src/store/types.js';
import { freshPostgresDatabase, tempDir } from '../support.js';

let t = Date.parse('2026-03-01T10:00:00Z');
const ring = (callId: string): NewInbox => ({
  req: {
    source: '3cx',
    kind: 'webhook',
    receivedAt: new Date((t += 1000)).toISOString(),
    method: 'POST',
    query: '',
    contentType: 'application/json',
    headers: {},
    body: Buffer.from('{}'),
  },
  result: {
    status: 'mapped',
    rule: 'r',
    events: [
      {
        type: 'ringing',
        callId,
        legId: `${callId}-0`,
        agent: '101',
        direction: 'inbound',
      } satisfies CallEvent,
    ],
  },
  provider: '3cx',
});

/** Wait for a condition (never a fixed sleep): polls until it holds, or fails saying what. */
async function until(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const opened: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const s of opened.splice(0).reverse()) await s.close();
});

async function client(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  opened.push({ close: () => c.end() });
  return c;
}

async function stores(url: string, n: number): Promise<Store[]> {
  const out: Store[] = [];
  for (let i = 0; i < n; i++) {
    const s = await PostgresStore.open(url);
    opened.push(s);
    out.push(s);
  }
  return out;
}

/** The stores' LISTEN connections on the database, as the server sees them. */
const listening = async (admin: pg.Client): Promise<number> =>
  (
    await admin.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database()
         AND application_name = 'callrelay listen' AND query = $1`,
      [`LISTEN ${CALLS_CHANNEL}`],
    )
  ).rows[0]!.n;

const fold = async (s: Store, ...calls: string[]): Promise<void> => {
  await s.insertInbox(calls.map(ring));
  while ((await s.applyPending(100)) > 0);
};

describe('store contract: watching other instances (postgres)', () => {
  it("hears the other instances' folds, not its own, one notification per commit", async () => {
    const url = await freshPostgresDatabase(inject('pgUrl'));
    const [a, b] = (await stores(url, 2)) as [Store, Store];
    const admin = await client(url);
    const heard = { a: 0, b: 0 };
    opened.push({ close: async () => unwatchA() });
    const unwatchA = a.watchCalls!(() => heard.a++);
    const unwatchB = b.watchCalls!(() => heard.b++);
    await until('both stores listen', async () => (await listening(admin)) === 2);

    // A raw listener counts what the fold sends, up to a marker sent (on a channel of its own, so
    // that the stores do not hear it) after the fold commits: notifications arrive in commit order.
    const raw = await client(url);
    const heardRaw: string[] = [];
    raw.on('notification', (m) => heardRaw.push(m.channel));
    await raw.query(`LISTEN ${CALLS_CHANNEL}; LISTEN test_marker`);

    // One commit folding three calls on A: B hears it once, A (its own) not at all.
    await fold(a, 'w1', 'w2', 'w3');
    await until('B hears A', () => heard.b === 1);
    await admin.query("SELECT pg_notify('test_marker', '')");
    await until('the marker arrives', () => heardRaw.includes('test_marker'));
    expect(heardRaw).toEqual([CALLS_CHANNEL, 'test_marker']);
    // The server sent the fold's notification to A too when it committed, before the marker: A
    // skipped its own.
    expect(heard.a).toBe(0);

    // B's fold reaches A.
    await fold(b, 'w4');
    await until('A hears B', () => heard.a === 1);
    expect(heard).toEqual({ a: 1, b: 1 });
    // A fold that finds nothing pending sends nothing.
    expect(await a.applyPending(100)).toBe(0);
    await admin.query("SELECT pg_notify('test_marker', '')");
    await until('the second marker arrives', () => heardRaw.length === 4);
    expect(heardRaw).toEqual([CALLS_CHANNEL, 'test_marker', CALLS_CHANNEL, 'test_marker']);

    // Nobody watching: the connection goes.
    unwatchB();
    unwatchA();
    await until('no store listens', async () => (await listening(admin)) === 0);
  });

  it('listens again after the server drops the connection, and says it is back', async () => {
    const url = await freshPostgresDatabase(inject('pgUrl'));
    const [a, b] = (await stores(url, 2)) as [Store, Store];
    const admin = await client(url);
    let heard = 0;
    opened.push({ close: async () => unwatch() });
    const unwatch = b.watchCalls!(() => heard++);
    await until('B listens', async () => (await listening(admin)) === 1);
    await fold(a, 'd1');
    await until('B hears A', () => heard === 1);

    // The server ends B's LISTEN connection (a restart, a failover, an administrator).
    const killed = await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND application_name = 'callrelay listen'`,
    );
    expect(killed.rowCount).toBe(1);
    // Back, B hears once that something may have changed meanwhile.
    await until('B hears it is back', () => heard === 2);
    await until('B listens again', async () => (await listening(admin)) === 1);
    await fold(a, 'd2');
    await until('B hears A again', () => heard === 3);
  });

  it('SQLite has no watchCalls: only its own process writes it', async () => {
    const s: Store = new SqliteStore(join(tempDir(), 'relay.db'));
    opened.push(s);
    expect(s.watchCalls).toBeUndefined();
  });
});
