// The store contract: one suite, every backend. (PostgreSQL joins in the scale-out issue.)

import { writeFileSync } from 'node:fs';
import type { MapResult, RawRequest } from '../../src/domain/request.js';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { CallEvent } from '../../src/domain/model.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { PostgresStore } from '../../src/store/postgres/index.js';
import { MIGRATIONS as PG_MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { ThreadedSqliteStore } from '../../src/store/sqlite/threaded.js';
import type {
  AttemptResult,
  AttemptRow,
  CallKey,
  CallQuery,
  CallRow,
  NewAttempt,
  NewInbox,
  Refusal,
  Store,
  StoreStats,
} from '../../src/store/types.js';
import type { Routing } from '../../src/domain/routing.js';
import { freshPostgresDatabase, tempDir } from '../support.js';

const routing: Routing = {
  targets: {
    crm: { deliverOn: 'ended', settleSec: 0 },
    slow: { deliverOn: 'ended', settleSec: 3600 },
  },
  routes: [{ targets: ['crm'] }, { sources: ['late'], targets: ['slow'] }],
};

interface Backend {
  /** A new empty place for a store: a file path or a database URL. */
  place(): Promise<string>;
  open(place: string, r?: Routing): Promise<Store>;
  /** The migration versions recorded in the place. */
  versions(place: string): Promise<number[]>;
}

const sqliteVersions = async (path: string): Promise<number[]> => {
  const db = new Database(path, { readonly: true });
  try {
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    return db
      .prepare('SELECT version FROM schema_migrations ORDER BY version')
      .pluck()
      .all() as number[];
  } finally {
    db.close();
  }
};

/** Distinct events a call keeps in these tests. */
const LIMIT = 4;

const backends: [string, Backend][] = [
  [
    'sqlite',
    {
      place: async () => join(tempDir(), 'relay.db'),
      open: async (p, r = routing) => new SqliteStore(p, { routing: r, maxEventsPerCall: LIMIT }),
      versions: sqliteVersions,
    },
  ],
  [
    'sqlite on its own thread',
    {
      place: async () => join(tempDir(), 'relay.db'),
      open: (p, r = routing) =>
        ThreadedSqliteStore.open({ path: p, routing: r, maxEventsPerCall: LIMIT }),
      versions: sqliteVersions,
    },
  ],
  [
    'postgres',
    {
      place: () => freshPostgresDatabase(inject('pgUrl')),
      open: (url, r = routing) => PostgresStore.open(url, { routing: r, maxEventsPerCall: LIMIT }),
      versions: async (url) => {
        const c = new pg.Client({ connectionString: url });
        await c.connect();
        try {
          return (
            await c.query<{ version: number }>(
              'SELECT version FROM schema_migrations ORDER BY version',
            )
          ).rows.map((r) => r.version);
        } finally {
          await c.end();
        }
      },
    },
  ],
];

let t = Date.parse('2026-03-01T10:00:00Z');
function req(body: string, source = '3cx'): RawRequest {
  return {
    source,
    kind: 'webhook',
    receivedAt: new Date((t += 1000)).toISOString(),
    method: 'POST',
    query: 'a=1',
    contentType: 'application/json',
    headers: { 'user-agent': 'pbx' },
    body: Buffer.from(body),
  };
}
const mapped = (...events: CallEvent[]): MapResult => ({ status: 'mapped', rule: 'r', events });
const item = (result: MapResult, body = '{}', source = '3cx'): NewInbox => ({
  req: req(body, source),
  result,
  provider: '3cx',
});
const ring = (callId: string, agent: string): CallEvent => ({
  type: 'ringing',
  callId,
  legId: `${callId}-0`,
  agent,
  direction: 'inbound',
});
const end = (callId: string, extra: Partial<CallEvent> = {}): CallEvent => ({
  type: 'ended',
  callId,
  legId: `${callId}-1`,
  agent: '117',
  outcome: 'answered',
  durationSec: 5,
  ...extra,
});

/** A recording that names only a leg (issue 25): no call id, it joins the call with that leg. */
const legRecording = (legId: string, url = `https://rec.example/${legId}.wav`): CallEvent => ({
  type: 'recording',
  legId,
  recordings: [url],
});

/** A SQLite database as a release with only the first `version` migrations left it. */
function sqliteAt(version: number): { path: string; db: Database.Database } {
  const path = join(tempDir(), 'relay.db');
  const db = new Database(path);
  db.exec(
    'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
  );
  for (const m of MIGRATIONS.slice(0, version)) {
    db.exec(m.sql);
    db.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.name, 'x');
  }
  return { path, db };
}

/** A fresh PostgreSQL database as an older release left it: its first `count` migrations only. */
async function postgresAtMigration(count: number): Promise<{ url: string; c: pg.Client }> {
  const url = await freshPostgresDatabase(inject('pgUrl'));
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query(
    'CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)',
  );
  for (const m of PG_MIGRATIONS.slice(0, count)) {
    await c.query(m.sql);
    await c.query('INSERT INTO schema_migrations VALUES ($1, $2, now())', [m.version, m.name]);
  }
  return { url, c };
}

describe('store thread', () => {
  it('fails every call at once after its thread died, instead of waiting forever', async () => {
    const store = await ThreadedSqliteStore.open({ path: join(tempDir(), 'relay.db') });
    // End the thread as a crash would.
    await (store as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await expect(store.checkWritable()).rejects.toThrow(/the store thread exited/);
    await expect(store.insertInbox([item(mapped(ring('c', '1')))])).rejects.toThrow(
      /the store thread exited/,
    );
  });

  it('says why it cannot open a file', async () => {
    const notADir = join(tempDir(), 'file');
    writeFileSync(notADir, 'x');
    await expect(ThreadedSqliteStore.open({ path: join(notADir, 'relay.db') })).rejects.toThrow(
      /^opening .*file\/relay\.db: EEXIST: file already exists, mkdir/,
    );
  });
});

describe.each(backends)('store contract: %s', (_name, backend) => {
  const opened: Store[] = [];
  const open = (place: string, r?: Routing): Promise<Store> => backend.open(place, r);
  const fresh = async (): Promise<{ store: Store; path: string }> => {
    const path = await backend.place();
    const store = await open(path);
    opened.push(store);
    return { store, path };
  };
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
  });

  it('retention deletes the raw requests of calls ended long ago, keeping records and deliveries', async () => {
    const { store } = await fresh();
    // Requests received days ago (calls change at the wall clock's time when folded).
    t = Date.now() - 10 * 86400_000;
    const unmapped = (): MapResult => ({
      status: 'unmapped',
      code: 'RELAY_ERR_UNKNOWN_EVENT',
      message: 'no rule',
    });
    const [a1, a2] = await store.insertInbox([
      item(mapped(ring('old', '1'))),
      item(mapped(end('old'))),
    ]);
    const [b1] = await store.insertInbox([item(mapped(ring('busy', '1'), end('busy')))]);
    const [d1] = await store.insertInbox([item(mapped(ring('open', '1')))]);
    const [u1] = await store.insertInbox([item(unmapped())]);
    while ((await store.applyPending(100)) > 0);
    await new Promise((r) => setTimeout(r, 20));
    const before = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 20));
    // Changed since the cutoff: a late event for "busy", and a request that is new.
    const late = { ...end('busy'), legId: 'busy-2', durationSec: 9 };
    await store.insertInbox([item(mapped(late))]);
    const recent = item(unmapped());
    const [v1] = await store.insertInbox([
      { ...recent, req: { ...recent.req, receivedAt: '2099-01-01T00:00:00.000Z' } },
    ]);
    while ((await store.applyPending(100)) > 0);
    const [oldCall] = await store.getCalls('old');
    const oldDeliveries = await store.deliveriesOf([{ source: '3cx', callId: 'old' }]);
    expect(oldDeliveries).toHaveLength(1);

    let [calls, requests] = [0, 0];
    for (;;) {
      const n = await store.pruneRequests({ before, limit: 1 });
      if (!n.calls && !n.requests) break;
      [calls, requests] = [calls + n.calls, requests + n.requests];
    }
    // Only the call ended and unchanged since the cutoff, and the old unmapped request.
    expect([calls, requests]).toEqual([1, 3]);
    for (const id of [a1, a2, u1])
      expect(await store.getInbox(id!), `request ${id}`).toBeUndefined();
    for (const id of [b1, d1, v1]) expect(await store.getInbox(id!), `request ${id}`).toBeDefined();
    // The record and its delivery (the CRM ids) outlive the requests.
    expect(await store.getCalls('old')).toEqual([oldCall]);
    expect(await store.deliveriesOf([{ source: '3cx', callId: 'old' }])).toEqual(oldDeliveries);
    // A late request for the pruned call is kept, and leaves the record as it was rather than
    // rebuild it from the little that is left.
    const [l1] = await store.insertInbox([item(mapped({ ...end('old'), legId: 'old-9' }))]);
    while ((await store.applyPending(100)) > 0);
    expect(await store.getCalls('old')).toEqual([oldCall]);
    expect((await store.getInbox(l1!))?.state).toBe('applied');
    // Nothing more to do.
    expect(await store.pruneRequests({ before, limit: 10 })).toEqual({ calls: 0, requests: 0 });
  });

  it('retention deletes the events that name only a leg with their call, or once no call has them', async () => {
    const { store } = await fresh();
    t = Date.now() - 10 * 86400_000;
    // "lj" ends long ago; its leg lj-1 has a recording (and a repeat of it). Its leg lj-0 has one
    // too, but an open call names that leg as well.
    const [a1, a2] = await store.insertInbox([
      item(mapped(ring('lj', '1'))),
      item(mapped(end('lj'))),
    ]);
    const [r1] = await store.insertInbox([item(mapped(legRecording('lj-1')))]);
    const [r2] = await store.insertInbox([item(mapped(legRecording('lj-1')), '{"again":1}')]);
    const [o1, k1] = await store.insertInbox([
      item(mapped({ ...ring('open', '2'), legId: 'lj-0' })),
      item(mapped(legRecording('lj-0'))),
    ]);
    // Recordings no call ever had; one of them repeated after the cutoff.
    const [s1] = await store.insertInbox([item(mapped(legRecording('lone-1')))]);
    const [s2] = await store.insertInbox([item(mapped(legRecording('late-1')))]);
    while ((await store.applyPending(100)) > 0);
    expect((await store.getCalls('lj'))[0]!.record.recordings).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 20));
    const before = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 20));
    const again = item(mapped(legRecording('late-1')), '{"again":1}');
    const [s3] = await store.insertInbox([
      { ...again, req: { ...again.req, receivedAt: new Date().toISOString() } },
    ]);
    while ((await store.applyPending(100)) > 0);

    let [calls, requests] = [0, 0];
    for (;;) {
      const n = await store.pruneRequests({ before, limit: 1 });
      if (!n.calls && !n.requests) break;
      [calls, requests] = [calls + n.calls, requests + n.requests];
    }
    expect([calls, requests]).toEqual([1, 5]);
    for (const id of [a1, a2, r1, r2, s1])
      expect(await store.getInbox(id!), `request ${id}`).toBeUndefined();
    for (const id of [o1, k1, s2, s3])
      expect(await store.getInbox(id!), `request ${id}`).toBeDefined();
    // The open call keeps the recording of the leg it shares with the pruned call.
    await store.insertInbox([item(mapped(end('open')))]);
    while ((await store.applyPending(100)) > 0);
    expect((await store.getCalls('open'))[0]!.record).toMatchObject({
      status: 'ended',
      recordings: ['https://rec.example/lj-0.wav'],
    });
    expect(await store.pruneRequests({ before, limit: 10 })).toEqual({ calls: 0, requests: 0 });
  });

  it('backfill queues the calls of a new target once, by its routes, counting first', async () => {
    const { store, path } = await fresh();
    const at = (): string => new Date(t + 1000).toISOString();
    const outbound = (id: string): CallEvent => ({ ...end(id), direction: 'outbound' });
    await store.insertInbox([item(mapped(ring('bf0', '1'), end('bf0')))]);
    const since = at();
    for (const events of [
      [ring('bf1', '1'), end('bf1')],
      [ring('bf2', '1')],
      [outbound('bf3')],
      [ring('bf4', '1'), end('bf4')],
      [ring('bf5', '1'), end('bf5')],
    ])
      await store.insertInbox([item(mapped(...events))]);
    const until = at();
    await store.insertInbox([item(mapped(ring('bf6', '1'), end('bf6')))]);
    while ((await store.applyPending(100)) > 0);
    await store.close();
    opened.splice(opened.indexOf(store), 1);

    // The target is added later, for ended inbound calls only.
    const added = await open(path, {
      targets: { ...routing.targets, added: { deliverOn: 'ended', settleSec: 0 } },
      routes: [...routing.routes, { targets: ['added'], filter: { direction: ['inbound'] } }],
    });
    opened.push(added);
    const all = async (dryRun: boolean, target = 'added'): Promise<[number, number, number]> => {
      let after: CallKey | undefined;
      let [batches, scanned, matched] = [0, 0, 0];
      do {
        const b = await added.backfill({ target, since, until, after, limit: 2, dryRun });
        [batches, scanned, matched] = [batches + 1, scanned + b.scanned, matched + b.matched];
        after = b.next;
      } while (after);
      return [batches, scanned, matched];
    };
    // Counted first: bf1, bf4 and bf5 (bf2 has not ended, bf3 is outbound; bf0 and bf6 are out
    // of range), in batches; nothing queued.
    expect(await all(true)).toEqual([3, 5, 3]);
    expect(await added.listDeliveries({ target: 'added', limit: 10 })).toEqual([]);
    expect(await all(false)).toEqual([3, 5, 3]);
    const queued = await added.listDeliveries({ target: 'added', limit: 10 });
    expect(queued.map((d) => [d.callId, d.state]).sort()).toEqual([
      ['bf1', 'due'],
      ['bf4', 'due'],
      ['bf5', 'due'],
    ]);
    // Again: nothing new, and work that exists is left alone.
    expect(await all(false)).toEqual([2, 2, 0]);
    expect(await all(false, 'crm')).toEqual([1, 1, 0]);
    const jobs = await added.claimDeliveries({
      limit: 10,
      owner: 'w',
      leaseMs: 60_000,
      targets: ['added'],
    });
    expect(jobs.map((j) => j.callId).sort()).toEqual(['bf1', 'bf4', 'bf5']);
    expect(jobs.find((j) => j.callId === 'bf4')?.record.outcome).toBe('answered');
  });

  it('keeps requests byte for byte with their state and reason', async () => {
    const { store } = await fresh();
    const ids = await store.insertInbox([
      item(mapped(ring('c1', '800')), '{"Event":"ringing"}'),
      item(
        { status: 'unmapped', code: 'RELAY_ERR_UNKNOWN_EVENT', message: 'no rule' },
        '{"Event":"hold"}',
      ),
      item({ status: 'ignored', rule: 'ping', message: 'ignored by rule ping' }, 'ping'),
    ]);
    expect(ids).toHaveLength(3);
    expect(ids[1]! > ids[0]! && ids[2]! > ids[1]!).toBe(true);
    const row = (await store.getInbox(ids[1]!))!;
    expect(row).toMatchObject({
      source: '3cx',
      provider: '3cx',
      kind: 'webhook',
      method: 'POST',
      query: 'a=1',
      contentType: 'application/json',
      headers: { 'user-agent': 'pbx' },
      state: 'unmapped',
      reasonCode: 'RELAY_ERR_UNKNOWN_EVENT',
      reason: 'no rule',
      replays: 0,
    });
    expect(row.body.equals(Buffer.from('{"Event":"hold"}'))).toBe(true);
    expect(await store.countInbox()).toEqual({ pending: 1, applied: 0, unmapped: 1, ignored: 1 });
    expect((await store.listInbox({ state: 'unmapped', limit: 10 })).map((r) => r.id)).toEqual([
      ids[1],
    ]);
    expect(await store.getInbox(999_999)).toBeUndefined();
  });

  it('files a batch as it files the same requests one at a time', async () => {
    // Each batch once as a whole and once request by request: PostgreSQL files a batch in a few
    // statements when it can, and must end exactly where the one-at-a-time path ends.
    const [whole, single] = [(await fresh()).store, (await fresh()).store];
    const batches: NewInbox[][] = [
      // All new, one request with two events, calls of several requests: the common case.
      [
        item(mapped(ring('b1', '800')), '{"n":1}'),
        item(mapped(ring('b1', '117'), ring('b2', '800')), '{"n":2}'),
        item({ status: 'ignored', rule: 'ping', message: 'ignored by rule ping' }, 'ping'),
        item(mapped(end('b1')), '{"n":3}'),
      ],
      // A repeat of a stored event, an unmapped request.
      [
        item(mapped(ring('b3', '800')), '{"n":4}'),
        item(mapped(ring('b2', '800')), '{"again":1}'),
        item({ status: 'unmapped', code: 'RELAY_ERR_UNKNOWN_EVENT', message: 'no rule' }),
      ],
      // A repeat within the batch.
      [item(mapped(ring('b3', '117')), '{"n":5}'), item(mapped(ring('b3', '117')), '{"again":2}')],
      // A stored call that goes over its limit (b1 holds three events).
      [item(mapped(ring('b1', '300')), '{"n":6}'), item(mapped(ring('b1', '301')), '{"n":7}')],
      // A new call that goes over its limit within the batch.
      Array.from({ length: LIMIT + 2 }, (_, i) => item(mapped(ring('b4', String(200 + i))))),
    ];
    const summary = async (store: Store): Promise<unknown> => ({
      counts: await store.countInbox(),
      requests: (await store.listInbox({ limit: 100 })).map((r) => [
        r.state,
        r.rule,
        r.reasonCode,
        r.body.toString(),
      ]),
      calls: (await store.listCalls({ limit: 100 }))
        .map((c) => [c.record.callId, c.revision, c.droppedEvents, c.record])
        .sort(),
    });
    for (const batch of batches) {
      const ids = await whole.insertInbox(batch);
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
      expect(new Set(ids).size).toBe(batch.length);
      for (const one of batch) await single.insertInbox([one]);
      // Filed alike before folding too: a repeat is applied at once, a dropped event says so.
      expect(await summary(whole)).toEqual(await summary(single));
      while ((await whole.applyPending(100)) > 0);
      while ((await single.applyPending(100)) > 0);
      expect(await summary(whole)).toEqual(await summary(single));
    }
    expect(((await summary(whole)) as { calls: unknown[] }).calls).toHaveLength(4);
  });

  it('folds pending requests into calls once, and counts real changes only', async () => {
    const { store } = await fresh();
    await store.insertInbox([
      item(mapped(ring('c1', '800'))),
      item(mapped(ring('c1', '117'))),
      item(mapped(ring('c2', '800'))),
    ]);
    expect(await store.applyPending(100)).toBe(3);
    expect(await store.applyPending(100)).toBe(0);
    const [c1] = await store.getCalls('c1');
    expect(c1!.record).toMatchObject({
      callId: 'c1',
      status: 'ringing',
      rang: ['800', '117'],
      provider: '3cx',
    });
    expect(c1!.revision).toBe(1);

    // The same webhook again changes nothing: no new revision.
    await store.insertInbox([item(mapped(ring('c1', '117')))]);
    await store.applyPending(100);
    expect((await store.getCalls('c1'))[0]!.revision).toBe(1);

    await store.insertInbox([item(mapped(end('c1')))]);
    await store.applyPending(100);
    const [after] = await store.getCalls('c1');
    expect(after!.revision).toBe(2);
    expect(after!.record).toMatchObject({
      status: 'ended',
      outcome: 'answered',
      agent: '117',
      durationSec: 5,
    });
    expect(await store.countInbox()).toMatchObject({ pending: 0, applied: 5 });
  });

  it('applies in order, a limited number at a time', async () => {
    const { store } = await fresh();
    await store.insertInbox(
      Array.from({ length: 5 }, (_, i) => item(mapped(ring(`k${i}`, '800')))),
    );
    expect(await store.applyPending(2)).toBe(2);
    expect((await store.listCalls({ limit: 10 })).map((c) => c.record.callId).sort()).toEqual([
      'k0',
      'k1',
    ]);
    expect(await store.applyPending(10)).toBe(3);
  });

  it('links a click-to-call origin to its call, whichever arrives first', async () => {
    const { store } = await fresh();
    const origin = (ch: string): CallEvent => ({
      type: 'originated',
      channelId: ch,
      originatedBy: 'makecall',
    });
    await store.insertInbox([
      item(mapped(origin('ch-1'))),
      item(mapped(end('a', { channelId: 'ch-1' }))),
    ]);
    await store.insertInbox([item(mapped(end('b', { channelId: 'ch-2' })))]);
    await store.applyPending(100);
    expect((await store.getCalls('a'))[0]!.record.originatedBy).toBe('makecall');
    expect((await store.getCalls('b'))[0]!.record.originatedBy).toBeNull();
    await store.insertInbox([item(mapped(origin('ch-2')))]);
    await store.applyPending(100);
    expect((await store.getCalls('b'))[0]!.record.originatedBy).toBe('makecall');
  });

  it('names the earliest origin among all the channels of a call', async () => {
    const { store } = await fresh();
    const origin = (ch: string, by: string): CallEvent => ({
      type: 'originated',
      channelId: ch,
      originatedBy: by,
    });
    // Two click-to-call requests, then one call whose legs ran on both channels.
    await store.insertInbox([
      item(mapped(origin('ch-a', 'api:first'))),
      item(mapped(origin('ch-b', 'api:second'))),
    ]);
    await store.insertInbox([
      item(mapped({ ...ring('m', '800'), channelId: 'ch-a' })),
      item(mapped(end('m', { channelId: 'ch-b' }))),
    ]);
    await store.applyPending(100);
    expect((await store.getCalls('m'))[0]!.record.originatedBy).toBe('api:first');
  });

  it('links an origin that arrives after the call, on any of its channels', async () => {
    const { store } = await fresh();
    await store.insertInbox([
      item(mapped({ ...ring('n', '800'), channelId: 'ch-x' })),
      item(mapped(end('n', { channelId: 'ch-y' }))),
    ]);
    await store.applyPending(100);
    expect((await store.getCalls('n'))[0]!.record.originatedBy).toBeNull();
    // The record names one channel (the end's); the origin is on the other.
    await store.insertInbox([
      item(mapped({ type: 'originated', channelId: 'ch-x', originatedBy: 'api:late' })),
    ]);
    await store.applyPending(100);
    expect((await store.getCalls('n'))[0]!.record.originatedBy).toBe('api:late');
  });

  it('joins a recording that names only a leg to its call, whichever arrives first', async () => {
    const { store } = await fresh();
    // First: it waits, no call of its own, nothing to deliver.
    const [early] = await store.insertInbox([item(mapped(legRecording('a-1')))]);
    await store.applyPending(100);
    expect(await store.listCalls({ limit: 10 })).toEqual([]);
    expect(await store.listDeliveries({ limit: 10 })).toEqual([]);
    expect(await store.getInbox(early!)).toMatchObject({ state: 'applied' });
    // The leg's events come: the call has the recording from its first fold on.
    await store.insertInbox([item(mapped(ring('a', '800'))), item(mapped(end('a')))]);
    await store.applyPending(100);
    const [a] = await store.getCalls('a');
    expect(a!.record).toMatchObject({
      status: 'ended',
      recordings: ['https://rec.example/a-1.wav'],
    });
    expect(a!.record.events).toContainEqual(
      expect.objectContaining({ type: 'recording', legId: 'a-1', inboxId: early }),
    );

    // After the call: it is refolded with the recording, and due again.
    await store.insertInbox([item(mapped(ring('b', '800'))), item(mapped(end('b')))]);
    await store.applyPending(100);
    const [before] = await store.getCalls('b');
    expect(before!.record.recordings).toEqual([]);
    await store.insertInbox([item(mapped(legRecording('b-0')))]);
    await store.applyPending(100);
    const [b] = await store.getCalls('b');
    expect(b!.revision).toBe(before!.revision + 1);
    expect(b!.record.recordings).toEqual(['https://rec.example/b-0.wav']);
    expect(await store.listCalls({ limit: 10 })).toHaveLength(2);

    // The same recording again is one event: applied at once, nothing refolded.
    const [again] = await store.insertInbox([item(mapped(legRecording('b-0')), '{"again":1}')]);
    expect(await store.getInbox(again!)).toMatchObject({ state: 'applied' });
    expect(await store.applyPending(100)).toBe(0);
    expect((await store.getCalls('b'))[0]).toEqual(b);
    expect(b!.record.events.filter((e) => e.type === 'recording')).toHaveLength(1);
  });

  it('folds at most the per-call limit of events joined by leg, the earliest by arrival', async () => {
    const { store } = await fresh();
    await store.insertInbox([item(mapped(ring('cap', '800'))), item(mapped(end('cap')))]);
    // Their names sort against their arrival: the limit keeps the first to come, not the first
    // in any order of their own.
    const ids = await store.insertInbox(
      Array.from({ length: LIMIT + 2 }, (_, i) =>
        item(mapped(legRecording('cap-1', `https://r/${9 - i}`))),
      ),
    );
    while ((await store.applyPending(100)) > 0);
    const [cap] = await store.getCalls('cap');
    expect(cap!.record.recordings).toEqual([
      'https://r/6',
      'https://r/7',
      'https://r/8',
      'https://r/9',
    ]);
    expect(cap!.record.truncated).toBe(true);
    // Kept as they came: only the fold leaves them out.
    for (const id of ids) expect(await store.getInbox(id!)).toMatchObject({ state: 'applied' });
  });

  it('makes no call of a recording by leg that no call of its source has', async () => {
    const { store } = await fresh();
    await store.insertInbox([
      item(mapped(ring('m', '800'))),
      // The leg exists, in another source; and a leg nobody has.
      item(mapped(legRecording('m-0')), '{}', 'other'),
      item(mapped(legRecording('nobody-1'))),
      // An origin names no leg to join by, even with a leg id.
      item(mapped({ type: 'originated', channelId: 'ch-m', legId: 'm-0', originatedBy: 'x' })),
    ]);
    await store.applyPending(100);
    const calls = await store.listCalls({ limit: 10 });
    expect(calls.map((c) => c.record.callId)).toEqual(['m']);
    expect(calls[0]!.record).toMatchObject({ recordings: [], originatedBy: null });
    expect(calls[0]!.record.events).toHaveLength(1);
    expect(await store.countInbox()).toMatchObject({ pending: 0, applied: 4 });
  });

  it('replays a recording by leg to another leg, and a leg event to another call', async () => {
    const { store } = await fresh();
    const [rec] = await store.insertInbox([item(mapped(legRecording('p-0', 'https://r/1')))]);
    const [, pEnd] = await store.insertInbox([
      item(mapped(ring('p', '800'))),
      item(mapped({ ...end('p'), legId: 'p-0' })),
      item(mapped(ring('q', '800'))),
    ]);
    await store.applyPending(100);
    expect((await store.getCalls('p'))[0]!.record.recordings).toEqual(['https://r/1']);
    // The recording, replayed, names q's leg: it leaves p and joins q.
    await store.remap(rec!, mapped(legRecording('q-0', 'https://r/1')), '3cx');
    expect((await store.getCalls('p'))[0]!.record.recordings).toEqual([]);
    expect((await store.getCalls('q'))[0]!.record.recordings).toEqual(['https://r/1']);
    // Back to p's leg, which p's ring and end both name.
    await store.remap(rec!, mapped(legRecording('p-0', 'https://r/1')), '3cx');
    expect((await store.getCalls('q'))[0]!.record.recordings).toEqual([]);
    // p's end, replayed as q's: p still has the leg (its ring), and now q has it too.
    await store.remap(pEnd!, mapped({ ...end('q'), legId: 'p-0' }), '3cx');
    expect((await store.getCalls('p'))[0]!.record.recordings).toEqual(['https://r/1']);
    expect((await store.getCalls('q'))[0]!.record.recordings).toEqual(['https://r/1']);
    // Replayed as unmapped, the recording leaves every call.
    await store.remap(
      rec!,
      { status: 'unmapped', code: 'RELAY_ERR_UNKNOWN_EVENT', message: 'x' },
      '3cx',
    );
    expect((await store.getCalls('p'))[0]!.record.recordings).toEqual([]);
    expect((await store.getCalls('q'))[0]!.record.recordings).toEqual([]);
  });

  it('stores a repeat once: its request is kept and applied at once, and nothing is refolded', async () => {
    const { store } = await fresh();
    await store.insertInbox([item(mapped(ring('r', '800')))]);
    await store.applyPending(100);
    const [before] = await store.getCalls('r');
    const ids = await store.insertInbox([
      item(mapped(ring('r', '800')), '{"again":1}'),
      item(mapped(ring('r', '800')), '{"again":2}'),
    ]);
    expect(await store.countInbox()).toMatchObject({ pending: 0, applied: 3 });
    expect(await store.applyPending(100)).toBe(0);
    for (const id of ids) {
      expect(await store.getInbox(id)).toMatchObject({
        state: 'applied',
        rule: 'r',
        reasonCode: null,
      });
    }
    expect((await store.getInbox(ids[1]!))!.body.toString()).toBe('{"again":2}');
    expect((await store.getCalls('r'))[0]).toEqual(before);
  });

  it('keeps at most the limit of distinct events per call, counts the rest, marks the record', async () => {
    const { store } = await fresh();
    const agent = (i: number): CallEvent => ring('big', String(100 + i));
    const ids = await store.insertInbox(
      Array.from({ length: LIMIT + 3 }, (_, i) => item(mapped(agent(i)))),
    );
    await store.insertInbox([item(mapped(ring('small', '1')))]);
    // Over the limit, only the first dropped event needs a fold (to mark the record).
    expect(await store.countInbox()).toMatchObject({ pending: LIMIT + 2, applied: 2 });
    await store.applyPending(100);
    const [big] = await store.getCalls('big');
    expect(big!.record.rang).toEqual(Array.from({ length: LIMIT }, (_, i) => String(100 + i)));
    expect(big!.record.truncated).toBe(true);
    expect(big!.droppedEvents).toBe(3);
    for (const id of ids.slice(LIMIT)) {
      expect(await store.getInbox(id)).toMatchObject({
        state: 'applied',
        reasonCode: 'RELAY_ERR_CALL_EVENT_LIMIT',
      });
    }
    expect((await store.getCalls('small'))[0]).toMatchObject({
      droppedEvents: 0,
      record: { truncated: false },
    });
    // One more distinct event costs no fold and changes nothing but the count; a repeat of a kept
    // event is a repeat, not a dropped event.
    const [more, again] = await store.insertInbox([
      item(mapped(agent(LIMIT + 3))),
      item(mapped(agent(0))),
    ]);
    expect(await store.countInbox()).toMatchObject({ pending: 0 });
    expect(await store.getInbox(more!)).toMatchObject({ reasonCode: 'RELAY_ERR_CALL_EVENT_LIMIT' });
    expect(await store.getInbox(again!)).toMatchObject({ state: 'applied', reasonCode: null });
    const [after] = await store.getCalls('big');
    expect(after).toMatchObject({ revision: big!.revision, droppedEvents: 4 });
  });

  it('replays a request that carries one event twice', async () => {
    const { store } = await fresh();
    const [r] = await store.insertInbox([item(mapped(ring('tw', '1'), ring('tw', '1')))]);
    await store.applyPending(100);
    await store.remap(r!, mapped(ring('tw', '2'), ring('tw', '3')), '3cx');
    expect((await store.getCalls('tw'))[0]!.record.rang).toEqual(['2', '3']);
    await store.remap(r!, mapped(ring('tw', '4')), '3cx');
    expect((await store.getCalls('tw'))[0]!.record.rang).toEqual(['4']);
  });

  it('changes nothing when requests that share an event are replayed as they were', async () => {
    const { store } = await fresh();
    const [a, b] = await store.insertInbox([
      item(mapped(ring('u', '1'))),
      item(mapped(ring('u', '1'))),
    ]);
    await store.applyPending(100);
    const [before] = await store.getCalls('u');
    await store.remap(a!, mapped(ring('u', '1')), '3cx');
    await store.remap(b!, mapped(ring('u', '1')), '3cx');
    await store.remap(a!, mapped(ring('u', '1')), '3cx');
    expect((await store.getCalls('u'))[0]).toEqual(before);
  });

  it('counts a dropped event once, however often it is repeated', async () => {
    const { store } = await fresh();
    await store.insertInbox(
      Array.from({ length: LIMIT }, (_, i) => item(mapped(ring('full', String(i))))),
    );
    await store.insertInbox([item(mapped(ring('full', 'x')))]);
    const repeats = await store.insertInbox([
      item(mapped(ring('full', 'x'))),
      item(mapped(ring('full', 'x'))),
    ]);
    await store.applyPending(100);
    expect((await store.getCalls('full'))[0]!.droppedEvents).toBe(1);
    for (const id of repeats) {
      expect(await store.getInbox(id)).toMatchObject({
        state: 'applied',
        reasonCode: 'RELAY_ERR_CALL_EVENT_LIMIT',
      });
    }
  });

  it('hands an event over to a request that repeats it when the first is replayed', async () => {
    const { store } = await fresh();
    const [a, b] = await store.insertInbox([item(mapped(end('h'))), item(mapped(end('h')))]);
    await store.applyPending(100);
    await store.remap(a!, mapped(end('elsewhere')), '3cx');
    const [h] = await store.getCalls('h');
    expect(h!.record).toMatchObject({ status: 'ended', events: [{ inboxId: b }] });
    expect(await store.getCalls('elsewhere')).toHaveLength(1);
    // Replayed too, the repeat joins the other call, and the first call is left without events.
    await store.remap(b!, mapped(end('elsewhere')), '3cx');
    expect(await store.getCalls('h')).toEqual([]);
    expect((await store.getCalls('elsewhere'))[0]!.record.events).toHaveLength(1);
    expect(await store.getInbox(b!)).toMatchObject({ state: 'applied', replays: 1 });
  });

  it('remaps a request: its events are replaced, and a call left without events goes away', async () => {
    const { store } = await fresh();
    const [id] = await store.insertInbox([item(mapped(end('wrong')))]);
    await store.applyPending(100);
    expect(await store.getCalls('wrong')).toHaveLength(1);
    await store.remap(id!, mapped(end('right')), 'fixed-adapter');
    expect(await store.getCalls('wrong')).toEqual([]);
    const [right] = await store.getCalls('right');
    expect(right!.record.provider).toBe('fixed-adapter');
    expect(await store.getInbox(id!)).toMatchObject({
      state: 'applied',
      replays: 1,
      provider: 'fixed-adapter',
    });
    await store.remap(
      id!,
      { status: 'unmapped', code: 'RELAY_ERR_UNKNOWN_EVENT', message: 'gone' },
      'fixed-adapter',
    );
    expect(await store.getCalls('right')).toEqual([]);
    expect(await store.getInbox(id!)).toMatchObject({
      state: 'unmapped',
      reasonCode: 'RELAY_ERR_UNKNOWN_EVENT',
      replays: 2,
    });
  });

  it('lists calls by last change, with since, source and limit', async () => {
    const { store } = await fresh();
    await store.insertInbox([
      item(mapped(ring('x', '1'))),
      item(mapped(ring('y', '1')), '{}', 'other'),
    ]);
    await store.applyPending(100);
    const all = await store.listCalls({ limit: 10 });
    expect(all).toHaveLength(2);
    expect(all[0]!.updatedAt >= all[1]!.updatedAt).toBe(true);
    expect(
      (await store.listCalls({ limit: 10, source: 'other' })).map((c) => c.record.callId),
    ).toEqual(['y']);
    expect(await store.listCalls({ limit: 10, since: '2999-01-01T00:00:00.000Z' })).toEqual([]);
    expect(await store.listCalls({ limit: 1 })).toHaveLength(1);
    expect((await store.getCalls('y', 'other')).map((c) => c.record.source)).toEqual(['other']);
    expect(await store.getCalls('y', '3cx')).toEqual([]);
  });

  it('makes a changed call due for its routed targets, once per target, coalescing changes', async () => {
    const { store } = await fresh();
    await store.insertInbox([item(mapped(ring('d1', '800')))]);
    await store.applyPending(100);
    expect(await store.listDeliveries({ limit: 10 })).toEqual([]); // not ended: nothing due yet
    await store.insertInbox([item(mapped(end('d1')))]);
    await store.applyPending(100);
    const [d] = await store.listDeliveries({ limit: 10 });
    expect(d).toMatchObject({
      target: 'crm',
      source: '3cx',
      callId: 'd1',
      state: 'due',
      wantRev: 2,
      doneRev: 0,
      attempts: 0,
    });

    // Leased work is invisible to other claimants until finished or released.
    const [job] = await store.claimDeliveries({ limit: 10, owner: 'a', leaseMs: 60_000 });
    expect(job).toMatchObject({ id: d!.id, target: 'crm', callId: 'd1', rev: 2, remote: {} });
    expect(job!.record).toMatchObject({ callId: 'd1', status: 'ended' });
    expect(await store.claimDeliveries({ limit: 10, owner: 'b', leaseMs: 60_000 })).toEqual([]);
    await store.saveRemote(job!.id, 'a', { objectId: '42' });
    await expect(store.saveRemote(job!.id, 'b', {})).rejects.toThrow(/not leased to b/);

    // The call changes while it is being delivered: done with rev 2, but due again for rev 3.
    await store.insertInbox([
      item(
        mapped({ type: 'recording', callId: 'd1', legId: 'd1-1', recordings: ['https://x/1.mp3'] }),
      ),
    ]);
    await store.applyPending(100);
    await store.finishDelivery(job!.id, 'a', { ok: true, rev: 2, remote: { objectId: '42' } });
    expect(await store.getDelivery(job!.id)).toMatchObject({
      state: 'due',
      doneRev: 2,
      wantRev: 3,
      remote: { objectId: '42' },
    });
    const [again] = await store.claimDeliveries({ limit: 10, owner: 'a', leaseMs: 60_000 });
    expect(again).toMatchObject({ rev: 3, remote: { objectId: '42' } });
    await store.finishDelivery(again!.id, 'a', { ok: true, rev: 3, remote: { objectId: '42' } });
    expect(await store.getDelivery(job!.id)).toMatchObject({ state: 'done', doneRev: 3 });
  });

  it('retries later, dead-letters, and re-arms on request', async () => {
    const { store } = await fresh();
    await store.insertInbox([item(mapped(end('r1')))]);
    await store.applyPending(100);
    const [job] = await store.claimDeliveries({ limit: 10, owner: 'a', leaseMs: 60_000 });
    const later = new Date(Date.now() + 3_600_000).toISOString();
    await store.finishDelivery(job!.id, 'a', {
      ok: false,
      dead: false,
      retryAt: later,
      error: '429 slow down',
    });
    expect(await store.getDelivery(job!.id)).toMatchObject({
      state: 'due',
      attempts: 1,
      dueAt: later,
      lastError: '429 slow down',
    });
    expect(await store.claimDeliveries({ limit: 10, owner: 'a', leaseMs: 60_000 })).toEqual([]); // not due before retryAt
    await store
      .finishDelivery(job!.id, 'a', { ok: false, dead: true, error: 'x' })
      .catch((e: Error) => expect(e.message).toMatch(/not leased/));
    expect(await store.retryDeliveries('dead')).toBe(0);

    await store.insertInbox([item(mapped(end('r2')))]);
    await store.applyPending(100);
    const jobs = await store.claimDeliveries({ limit: 10, owner: 'a', leaseMs: 60_000 });
    const r2 = jobs.find((j) => j.callId === 'r2')!;
    await store.finishDelivery(r2.id, 'a', { ok: false, dead: true, error: '400 bad' });
    expect(await store.listDeliveries({ state: 'dead', limit: 10 })).toMatchObject([
      { callId: 'r2', lastError: '400 bad', attempts: 1 },
    ]);
    expect(await store.retryDeliveries([r2.id])).toBe(1);
    expect(await store.getDelivery(r2.id)).toMatchObject({ state: 'due', attempts: 0 });
  });

  it('holds settle windows and gives leases back', async () => {
    const { store } = await fresh();
    // The window counts from the end of the call, which is now.
    await store.insertInbox([
      item(mapped(end('s1', { endedAt: new Date().toISOString() })), '{}', 'late'),
    ]);
    await store.applyPending(100);
    const rows = await store.listDeliveries({ limit: 10 });
    expect(rows.map((r) => r.target).sort()).toEqual(['crm', 'slow']);
    const slow = rows.find((r) => r.target === 'slow')!;
    expect(Date.parse(slow.dueAt) - Date.now()).toBeGreaterThan(3500_000);
    const jobs = await store.claimDeliveries({ limit: 10, owner: 'a', leaseMs: 60_000 });
    expect(jobs.map((j) => j.target)).toEqual(['crm']);
    expect(await store.releaseDeliveries('a')).toBe(1);
    expect(
      (await store.claimDeliveries({ limit: 10, owner: 'b', leaseMs: 60_000 })).map(
        (j) => j.target,
      ),
    ).toEqual(['crm']);
    expect(await store.releaseDeliveries(null)).toBe(1);
  });

  // Delivery attempts: written with the outcome, in its transaction, or not at all.

  /** An attempt of a run, at a given minute of 2026-03-01. */
  const attempt = (minute: number, result: AttemptResult, extra: Partial<NewAttempt> = {}) =>
    ({
      operation: 'creating the call engagement',
      method: 'POST',
      path: '/crm/v3/objects/calls',
      startedAt: `2026-03-01T10:${String(minute).padStart(2, '0')}:00.000Z`,
      durationMs: 120,
      status: result === 'ok' || result === 'delivered' ? 201 : 503,
      requestId: `req-${minute}`,
      result,
      error: result === 'ok' || result === 'delivered' ? null : '503 unavailable',
      retryAt: null,
      sent: null,
      ...extra,
    }) satisfies NewAttempt;

  /** Ended calls, folded, and their crm deliveries claimed by `owner`. */
  const claimed = async (store: Store, callIds: string[], owner = 'a') => {
    await store.insertInbox(callIds.map((c) => item(mapped(end(c)))));
    await store.applyPending(100);
    const jobs = await store.claimDeliveries({ limit: 100, owner, leaseMs: 60_000 });
    return (callId: string, source = '3cx') =>
      jobs.find((j) => j.callId === callId && j.source === source)!;
  };

  it('writes the attempts of a run with its outcome, naming the delivery, call and revision', async () => {
    const { store } = await fresh();
    const job = await claimed(store, ['at1']);
    const j = job('at1');
    await store.finishDelivery(j.id, 'a', { ok: true, rev: j.rev, remote: { objectId: '7' } }, [
      attempt(1, 'ok', { operation: 'finding the contact', method: 'GET', durationMs: 12.6 }),
      attempt(2, 'delivered', { status: 201, sent: '{"properties":{"hs_call_title":"č"}}' }),
    ]);
    const rows = await store.listAttempts({ deliveryId: j.id, limit: 10 });
    expect(rows).toMatchObject([
      {
        result: 'delivered',
        startedAt: '2026-03-01T10:02:00.000Z',
        status: 201,
        // A dry run's body comes back as it was written.
        sent: '{"properties":{"hs_call_title":"č"}}',
      },
      { result: 'ok', operation: 'finding the contact', method: 'GET', durationMs: 13 },
    ]);
    expect(rows[0]!.id).toBeGreaterThan(rows[1]!.id);
    for (const r of rows) {
      expect(r).toMatchObject({
        deliveryId: j.id,
        target: 'crm',
        source: '3cx',
        callId: 'at1',
        rev: j.rev,
        path: '/crm/v3/objects/calls',
        retryAt: null,
      });
    }
    expect(rows[1]).toEqual({
      id: rows[1]!.id,
      deliveryId: j.id,
      target: 'crm',
      source: '3cx',
      callId: 'at1',
      rev: j.rev,
      operation: 'finding the contact',
      method: 'GET',
      path: '/crm/v3/objects/calls',
      startedAt: '2026-03-01T10:01:00.000Z',
      durationMs: 13,
      status: 201,
      requestId: 'req-1',
      result: 'ok',
      error: null,
      retryAt: null,
      sent: null,
    });
  });

  it('names the wanted revision on the attempts of a failed run', async () => {
    const { store } = await fresh();
    const j = (await claimed(store, ['at2']))('at2');
    // The call changes while the run is under way: the delivery now wants the next revision.
    await store.insertInbox([
      item(mapped({ type: 'recording', callId: 'at2', legId: 'at2-1', recordings: ['u'] })),
    ]);
    await store.applyPending(100);
    const wanted = (await store.getDelivery(j.id))!.wantRev;
    expect(wanted).toBe(j.rev + 1);
    const retryAt = new Date(Date.now() + 60_000).toISOString();
    await store.finishDelivery(j.id, 'a', { ok: false, dead: false, retryAt, error: '503' }, [
      attempt(1, 'error'),
      attempt(2, 'retry', { retryAt }),
    ]);
    expect(await store.listAttempts({ deliveryId: j.id, limit: 10 })).toMatchObject([
      { result: 'retry', retryAt, rev: wanted, error: '503 unavailable' },
      { result: 'error', retryAt: null, rev: wanted },
    ]);
  });

  it('writes no attempt when the lease is lost, and nothing at all when an attempt fails', async () => {
    const { store } = await fresh();
    const job = await claimed(store, ['lost', 'bad']);
    const lost = job('lost');
    const bad = job('bad');
    // Another owner's finish, and the owner's own after its lease was given back.
    await expect(
      store.finishDelivery(lost.id, 'b', { ok: true, rev: lost.rev, remote: {} }, [
        attempt(1, 'delivered'),
      ]),
    ).rejects.toThrow(/not leased to b/);
    expect(await store.releaseDeliveries('a')).toBe(2);
    await expect(
      store.finishDelivery(lost.id, 'a', { ok: false, dead: true, error: 'x' }, [
        attempt(2, 'dead'),
      ]),
    ).rejects.toThrow(/not leased to a/);
    expect(await store.getDelivery(lost.id)).toMatchObject({ state: 'due', attempts: 0 });
    expect(await store.listAttempts({ limit: 10 })).toEqual([]);

    // An attempt the table refuses takes the outcome down with it: one transaction.
    await store.claimDeliveries({ limit: 10, owner: 'a', leaseMs: 60_000 });
    const before = await store.getDelivery(bad.id);
    await expect(
      store.finishDelivery(bad.id, 'a', { ok: true, rev: bad.rev, remote: { objectId: '1' } }, [
        attempt(1, 'ok'),
        attempt(2, 'bogus' as AttemptResult),
      ]),
    ).rejects.toThrow();
    expect(await store.getDelivery(bad.id)).toEqual(before);
    expect(await store.listAttempts({ limit: 10 })).toEqual([]);
    // Still leased to a: the retry of the same finish goes through.
    await store.finishDelivery(bad.id, 'a', { ok: true, rev: bad.rev, remote: {} }, [
      attempt(3, 'delivered'),
    ]);
    expect(await store.getDelivery(bad.id)).toMatchObject({ state: 'done' });
    expect(await store.listAttempts({ limit: 10 })).toHaveLength(1);
    // No attempts at all is fine too.
    await store.finishDelivery(lost.id, 'a', { ok: true, rev: lost.rev, remote: {} });
    expect(await store.getDelivery(lost.id)).toMatchObject({ state: 'done' });
  });

  it('lists attempts newest first, of a delivery, of a call, or all, a page at a time', async () => {
    const { store } = await fresh();
    await store.insertInbox([item(mapped(end('p1'))), item(mapped(end('p1')), '{}', 'late')]);
    const job = await claimed(store, ['p2']);
    const p1 = job('p1');
    const p2 = job('p2');
    const retryAt = new Date(Date.now() - 1000).toISOString();
    // p1: two runs (a failure, then delivered); p2: one run.
    await store.finishDelivery(p1.id, 'a', { ok: false, dead: false, retryAt, error: 'e' }, [
      attempt(1, 'error'),
      attempt(2, 'retry', { retryAt }),
    ]);
    await store.finishDelivery(p2.id, 'a', { ok: true, rev: p2.rev, remote: {} }, [
      attempt(3, 'delivered'),
    ]);
    const [again] = await store.claimDeliveries({ limit: 10, owner: 'a', leaseMs: 60_000 });
    expect(again!.id).toBe(p1.id);
    await store.finishDelivery(p1.id, 'a', { ok: true, rev: p1.rev, remote: {} }, [
      attempt(4, 'ok'),
      attempt(5, 'delivered'),
    ]);

    const minutes = (rows: AttemptRow[]): number[] =>
      rows.map((r) => Number(r.startedAt.slice(14, 16)));
    expect(minutes(await store.listAttempts({ limit: 10 }))).toEqual([5, 4, 3, 2, 1]);
    expect(minutes(await store.listAttempts({ deliveryId: p1.id, limit: 10 }))).toEqual([
      5, 4, 2, 1,
    ]);
    expect(
      minutes(await store.listAttempts({ call: { source: '3cx', callId: 'p2' }, limit: 10 })),
    ).toEqual([3]);
    // The same call id from another source has no attempts.
    expect(await store.listAttempts({ call: { source: 'late', callId: 'p1' }, limit: 10 })).toEqual(
      [],
    );
    expect(
      await store.listAttempts({
        deliveryId: p2.id,
        call: { source: '3cx', callId: 'p1' },
        limit: 9,
      }),
    ).toEqual([]);

    // Paging: each page starts below the last id seen, none repeats or skips one.
    const pages: number[][] = [];
    let beforeId: number | undefined;
    for (;;) {
      const page = await store.listAttempts({ deliveryId: p1.id, limit: 3, beforeId });
      if (!page.length) break;
      pages.push(minutes(page));
      beforeId = page.at(-1)!.id;
    }
    expect(pages).toEqual([[5, 4, 2], [1]]);
    const all = await store.listAttempts({ limit: 10 });
    expect(minutes(await store.listAttempts({ limit: 2, beforeId: all[1]!.id }))).toEqual([3, 2]);
  });

  it('prunes attempts a batch at a time, oldest first', async () => {
    const { store } = await fresh();
    const j = (await claimed(store, ['old']))('old');
    await store.finishDelivery(j.id, 'a', { ok: true, rev: j.rev, remote: {} }, [
      attempt(3, 'ok'),
      attempt(1, 'ok'),
      attempt(2, 'delivered'),
    ]);
    expect(await store.pruneAttempts('2027-01-01T00:00:00.000Z', 2)).toBe(2);
    expect((await store.listAttempts({ limit: 10 })).map((r) => r.result)).toEqual(['ok']);
    expect(await store.pruneAttempts('2027-01-01T00:00:00.000Z', 2)).toBe(1);
  });

  it('prunes attempts that started before a time, and says how many', async () => {
    const { store } = await fresh();
    const j = (await claimed(store, ['old']))('old');
    await store.finishDelivery(j.id, 'a', { ok: true, rev: j.rev, remote: {} }, [
      attempt(1, 'ok'),
      attempt(2, 'ok'),
      attempt(3, 'delivered'),
    ]);
    // Strictly before; a bound with an offset is the same instant (10:02 UTC).
    expect(await store.pruneAttempts('2026-03-01T11:02:00+01:00', 10)).toBe(1);
    expect(await store.pruneAttempts('2026-03-01T10:02:30.000Z', 10)).toBe(1);
    expect((await store.listAttempts({ limit: 10 })).map((r) => r.result)).toEqual(['delivered']);
    expect(await store.pruneAttempts('2026-03-01T10:00:00.000Z', 10)).toBe(0);
    expect(await store.pruneAttempts('2027-01-01T00:00:00.000Z', 10)).toBe(1);
    expect(await store.listAttempts({ limit: 10 })).toEqual([]);
  });

  it('keeps console sessions: found by id, touched, ended, pruned when expired or idle', async () => {
    const { store, path } = await fresh();
    const row = (id: string, lastSeenAt: string, expiresAt: string) => ({
      id,
      createdAt: '2026-03-01T10:00:00.000Z',
      lastSeenAt,
      expiresAt,
    });
    await store.createSession(row('a', '2026-03-01T10:00:00.000Z', '2026-03-01T22:00:00.000Z'));
    await store.createSession(row('b', '2026-03-01T10:00:00.000Z', '2026-03-01T22:00:00.000Z'));
    await store.createSession(row('c', '2026-03-01T10:00:00.000Z', '2026-03-01T10:30:00.000Z'));
    expect(await store.getSession('a')).toEqual(
      row('a', '2026-03-01T10:00:00.000Z', '2026-03-01T22:00:00.000Z'),
    );
    expect(await store.getSession('zz')).toBeUndefined();
    await store.touchSession('a', '2026-03-01T10:50:00.000Z');
    expect((await store.getSession('a'))?.lastSeenAt).toBe('2026-03-01T10:50:00.000Z');
    // Another connection to the same place sees the sign-out (another instance).
    const other = await open(path);
    opened.push(other);
    await other.deleteSession('b');
    expect(await store.getSession('b')).toBeUndefined();
    await store.createSession(row('d', '2026-03-01T10:00:00.000Z', '2026-03-01T22:00:00.000Z'));
    // c has expired; d was idle since 10:00; a was seen at 10:50.
    expect(
      await store.pruneSessions({
        now: '2026-03-01T11:00:00.000Z',
        idleSince: '2026-03-01T10:05:00.000Z',
      }),
    ).toBe(2);
    expect(await store.getSession('a')).toBeDefined();
    expect(await store.getSession('c')).toBeUndefined();
    expect(await store.getSession('d')).toBeUndefined();
    // A new admin token: everyone, on every instance.
    await store.createSession(row('e', '2026-03-01T10:00:00.000Z', '2026-03-01T22:00:00.000Z'));
    expect(await other.deleteAllSessions()).toBe(2);
    expect(await store.getSession('a')).toBeUndefined();
    expect(await store.deleteAllSessions()).toBe(0);
  });

  it("keeps an agent's session apart and uses a sign-in link once, on every instance", async () => {
    const { store, path } = await fresh();
    const at = '2026-03-01T10:00:00.000Z';
    await store.createSession({
      id: 'ag',
      createdAt: at,
      lastSeenAt: at,
      expiresAt: at,
      agent: '101',
      email: 'alice@example.com',
    });
    await store.createSession({ id: 'ad', createdAt: at, lastSeenAt: at, expiresAt: at });
    await store.createSession({
      id: 'an',
      createdAt: at,
      lastSeenAt: at,
      expiresAt: at,
      agent: '103',
    });
    // An agent's session keeps the person (their email) as well as the extension.
    expect(await store.getSession('ag')).toMatchObject({
      agent: '101',
      email: 'alice@example.com',
    });
    expect(await store.getSession('ad')).not.toHaveProperty('agent');
    expect(await store.getSession('ad')).not.toHaveProperty('email');
    expect(await store.getSession('an')).not.toHaveProperty('email');
    const other = await open(path);
    opened.push(other);
    const link = (id: string, expiresAt: string) => ({
      id,
      agent: '102',
      email: 'bob@example.com',
      createdAt: at,
      expiresAt,
    });
    const bob = { agent: '102', email: 'bob@example.com' };
    await store.createSignInLink(link('l1', '2026-03-01T11:00:00.000Z'));
    await store.createSignInLink(link('l2', '2026-03-01T10:30:00.000Z'));
    await store.createSignInLink(link('l3', '2026-03-01T10:30:00.000Z'));
    // Once: another instance finds it used.
    expect(await store.takeSignInLink('l1', '2026-03-01T10:20:00.000Z')).toEqual(bob);
    expect(await other.takeSignInLink('l1', '2026-03-01T10:20:00.000Z')).toBeUndefined();
    // Expired: refused, and gone too.
    expect(await store.takeSignInLink('l2', '2026-03-01T10:30:00.000Z')).toBeUndefined();
    expect(await store.takeSignInLink('zz', '2026-03-01T10:00:00.000Z')).toBeUndefined();
    // Pruning sessions takes expired links with them.
    await store.pruneSessions({ now: '2026-03-01T10:40:00.000Z', idleSince: at });
    await store.createSignInLink(link('l3', '2026-03-01T12:00:00.000Z'));
    expect(await other.takeSignInLink('l3', '2026-03-01T10:40:00.000Z')).toEqual(bob);
    // A link for someone without an email: the extension alone.
    await store.createSignInLink({
      id: 'l4',
      agent: '103',
      createdAt: at,
      expiresAt: at.replace('10:', '12:'),
    });
    expect(await store.takeSignInLink('l4', at)).toEqual({ agent: '103' });
  });

  // The call list: filters in the query, pages by a cursor.

  /** f1, f2 (3cx) and f3 (other), folded together: one updatedAt. */
  const filterCalls = async (store: Store) => {
    await store.insertInbox([
      item(
        mapped(
          end('f1', {
            direction: 'inbound',
            externalNumber: '601 123 456',
            externalE164: '+420601123456',
            did: '+420222000111',
            startedAt: '2026-03-02T08:00:00.000Z',
          }),
        ),
      ),
      item(
        mapped({
          type: 'ended',
          callId: 'f2',
          legId: 'f2-0',
          agent: '200',
          outcome: 'missed',
          direction: 'outbound',
          externalE164: '+420777888999',
          did: '+420222000111',
          startedAt: '2026-03-02T09:00:00.000Z',
        }),
      ),
      // f3: answered by 300, handed over to 117 who ended it (record.agent is 117).
      item(
        mapped(
          { type: 'answered', callId: 'f3', legId: 'f3-0', agent: '300', direction: 'inbound' },
          end('f3', {
            externalNumber: '0601999000',
            startedAt: '2026-03-03T10:00:00.000Z',
          }),
        ),
        '{}',
        'other',
      ),
    ]);
    await store.applyPending(100);
  };
  const ids = (rows: CallRow[]): string[] => rows.map((r) => r.record.callId).sort();

  it('filters calls by direction, outcome, agent (or a leg agent), number and start', async () => {
    const { store } = await fresh();
    await filterCalls(store);
    const list = async (q: Omit<CallQuery, 'limit'>) =>
      ids(await store.listCalls({ limit: 10, ...q }));
    expect((await store.getCalls('f3'))[0]!.record).toMatchObject({
      agent: '117',
      legs: [{ agent: '300' }, { agent: '117' }],
    });

    expect(await list({})).toEqual(['f1', 'f2', 'f3']);
    expect(await list({ direction: 'outbound' })).toEqual(['f2']);
    expect(await list({ direction: 'inbound' })).toEqual(['f1', 'f3']);
    expect(await list({ outcome: 'missed' })).toEqual(['f2']);
    expect(await list({ outcome: 'answered' })).toEqual(['f1', 'f3']);
    expect(await list({ outcome: 'busy' })).toEqual([]);
    expect(await list({ agent: '117' })).toEqual(['f1', 'f3']);
    expect(await list({ agent: '300' })).toEqual(['f3']);
    expect(await list({ agent: '200' })).toEqual(['f2']);
    expect(await list({ agent: '11' })).toEqual([]);
    // Digits only, anywhere in the E.164 form, the number as sent, or the DID.
    expect(await list({ number: '601 123' })).toEqual(['f1']);
    expect(await list({ number: '+420 601-123-456' })).toEqual(['f1']);
    expect(await list({ number: '(601) 999' })).toEqual(['f3']);
    expect(await list({ number: '222000' })).toEqual(['f1', 'f2']);
    expect(await list({ number: '601' })).toEqual(['f1', 'f3']);
    expect(await list({ number: '12345678' })).toEqual([]);
    expect(await list({ number: '+' })).toEqual(['f1', 'f2', 'f3']);
    // Started in [from, to); a bound with an offset is the same instant.
    expect(await list({ from: '2026-03-02T09:00:00.000Z' })).toEqual(['f2', 'f3']);
    expect(await list({ from: '2026-03-02T09:30:00+01:00' })).toEqual(['f2', 'f3']);
    expect(await list({ to: '2026-03-02T09:00:00.000Z' })).toEqual(['f1']);
    expect(
      await list({ from: '2026-03-02T08:00:00.000Z', to: '2026-03-03T10:00:00.000Z' }),
    ).toEqual(['f1', 'f2']);
    expect(await list({ source: 'other' })).toEqual(['f3']);
    expect(await list({ since: '2999-01-01T00:00:00.000Z' })).toEqual([]);

    // Combined: every filter must hold.
    expect(await list({ direction: 'inbound', agent: '117', number: '601' })).toEqual(['f1', 'f3']);
    expect(await list({ direction: 'inbound', agent: '117', number: '601123' })).toEqual(['f1']);
    expect(await list({ source: 'other', agent: '300', outcome: 'answered' })).toEqual(['f3']);
    expect(await list({ source: '3cx', agent: '300' })).toEqual([]);
    expect(await list({ direction: 'outbound', agent: '117' })).toEqual([]);
    expect(
      await list({ number: '222', from: '2026-03-02T08:30:00.000Z', outcome: 'missed' }),
    ).toEqual(['f2']);
    expect(await list({ number: '222', to: '2026-03-02T08:30:00.000Z', agent: '117' })).toEqual([
      'f1',
    ]);
  });

  it('orders calls by last change, then source and call id, and pages without repeats or gaps', async () => {
    const { store } = await fresh();
    // Three folds: many calls share an updatedAt, and later changes move some of the first ones
    // up.
    await store.insertInbox(
      Array.from({ length: 12 }, (_, i) =>
        item(mapped(ring(`k${String(i).padStart(2, '0')}`, '1')), '{}', i % 3 ? '3cx' : 'other'),
      ),
    );
    await store.applyPending(100);
    // Folds a few milliseconds apart: their times differ.
    const tick = () => new Promise((r) => setTimeout(r, 5));
    await tick();
    await store.insertInbox(
      Array.from({ length: 9 }, (_, i) => item(mapped(ring(`m${i}`, '1')), '{}', 'other')),
    );
    await store.applyPending(100);
    await tick();
    await store.insertInbox(['k01', 'k05', 'k07'].map((c) => item(mapped(end(c)), '{}', '3cx')));
    await store.insertInbox([item(mapped(end('k00')), '{}', 'other')]);
    await store.applyPending(100);

    const all = await store.listCalls({ limit: 100 });
    expect(all).toHaveLength(21);
    const key = (r: CallRow) => [r.updatedAt, r.record.source, r.record.callId].join('|');
    const sorted = [...all].sort((a, b) => (key(a) < key(b) ? 1 : key(a) > key(b) ? -1 : 0));
    expect(all.map(key)).toEqual(sorted.map(key));
    const perTime = new Map<string, number>();
    for (const r of all) perTime.set(r.updatedAt, (perTime.get(r.updatedAt) ?? 0) + 1);
    expect(Math.max(...perTime.values())).toBeGreaterThanOrEqual(9);
    // The latest change first: k00 (other) above k07, k05, k01 (3cx).
    expect(all.slice(0, 4).map((r) => r.record.callId)).toEqual(['k00', 'k07', 'k05', 'k01']);

    const page = async (q: Omit<CallQuery, 'limit' | 'before'>, limit: number) => {
      const seen: CallRow[] = [];
      for (;;) {
        const last = seen.at(-1);
        const rows = await store.listCalls({
          ...q,
          limit,
          before: last && {
            updatedAt: last.updatedAt,
            source: last.record.source,
            callId: last.record.callId,
          },
        });
        if (!rows.length) return seen;
        expect(rows.length).toBeLessThanOrEqual(limit);
        seen.push(...rows);
        // A cursor that does not move on would page forever.
        expect(seen.length).toBeLessThanOrEqual(all.length);
      }
    };
    for (const limit of [1, 2, 4, 5, 20]) {
      expect((await page({}, limit)).map(key)).toEqual(all.map(key));
    }
    // With a filter, the pages are the filtered list's.
    const other = await store.listCalls({ limit: 100, source: 'other' });
    expect(other).toHaveLength(13);
    expect((await page({ source: 'other' }, 3)).map(key)).toEqual(other.map(key));
    // A cursor need not name a listed call: the list goes on below where it would be.
    const cut = all[10]!;
    const before = { updatedAt: cut.updatedAt, source: cut.record.source, callId: 'zzz' };
    const below = (r: CallRow) =>
      r.updatedAt < before.updatedAt ||
      (r.updatedAt === before.updatedAt &&
        (r.record.source < before.source ||
          (r.record.source === before.source && r.record.callId < before.callId)));
    const rest = await store.listCalls({ limit: 100, before });
    expect(rest.map(key)).toEqual(all.filter(below).map(key));
    expect(rest.length).toBeGreaterThan(all.length - 11);
  });

  it('lists the calls some parties took part in: as its agent, on a leg, or rang', async () => {
    const { store } = await fresh();
    const tick = () => new Promise((r) => setTimeout(r, 5));
    const fold = async (...events: CallEvent[]) => {
      await store.insertInbox([item(mapped(...events))]);
      await store.applyPending(100);
      // Each call a change of its own, a few milliseconds apart: the pages below cross times.
      await tick();
    };
    const answered = (callId: string, agent: string): CallEvent => ({
      type: 'answered',
      callId,
      legId: `${callId}-0`,
      agent,
      direction: 'inbound',
    });
    // pA: 101 is its agent only (missed: no leg, nothing rang).
    await fold({
      type: 'ended',
      callId: 'pA',
      legId: 'pA-0',
      agent: '101',
      outcome: 'missed',
      direction: 'inbound',
    });
    // pL: 101 on a leg only (handed over to 117, who ended it).
    await fold(answered('pL', '101'), end('pL'));
    // pR: the ring group 800 rang, 117 answered.
    await fold(ring('pR', '800'), end('pR'));
    // pX: look-alikes everywhere (1010 rang, 1011 on a leg, 10 its agent); pN: 117's alone.
    await fold(ring('pX', '1010'), answered('pX', '1011'), end('pX', { agent: '10' }));
    await fold(end('pN'));
    const got = async (callId: string) => (await store.getCalls(callId))[0]!.record;
    expect(await got('pA')).toMatchObject({ agent: '101', legs: [], rang: [] });
    expect(await got('pL')).toMatchObject({
      agent: '117',
      legs: [{ agent: '101' }, { agent: '117' }],
      rang: [],
    });
    expect(await got('pR')).toMatchObject({
      agent: '117',
      legs: [{ agent: '117' }],
      rang: ['800'],
    });
    expect(await got('pX')).toMatchObject({
      agent: '10',
      legs: [{ agent: '1011' }, { agent: '10' }],
      rang: ['1010'],
    });

    const list = async (q: Omit<CallQuery, 'limit'>) =>
      (await store.listCalls({ limit: 10, ...q })).map((r) => r.record.callId);
    // Newest change first, as every list.
    expect(await list({ parties: ['101'] })).toEqual(['pL', 'pA']);
    expect(await list({ parties: ['800'] })).toEqual(['pR']);
    expect(await list({ parties: ['101', '800'] })).toEqual(['pR', 'pL', 'pA']);
    expect(await list({ parties: ['1010'] })).toEqual(['pX']);
    expect(await list({ parties: ['117'] })).toEqual(['pN', 'pR', 'pL']);
    // Exactly: no part of an extension, no pattern, nothing for no one.
    expect(await list({ parties: ['10', '1', '01', '011', '%', '_01', '101 ', ' 101'] })).toEqual([
      'pX',
    ]);
    expect(await list({ parties: ['1', '01', '%', '_01', '101 ', '80', '8000'] })).toEqual([]);
    expect(await list({ parties: [] })).toEqual([]);
    // With other filters: every one must hold.
    expect(await list({ parties: ['101', '800'], outcome: 'missed' })).toEqual(['pA']);
    expect(await list({ parties: ['101', '800'], agent: '117' })).toEqual(['pR', 'pL']);
    expect(await list({ parties: ['800'], source: 'other' })).toEqual([]);

    // Pages by the cursor: no repeats, no gaps, the others never.
    for (const limit of [1, 2]) {
      const seen: CallRow[] = [];
      for (;;) {
        const last = seen.at(-1);
        const rows = await store.listCalls({
          limit,
          parties: ['101', '800'],
          before: last && {
            updatedAt: last.updatedAt,
            source: last.record.source,
            callId: last.record.callId,
          },
        });
        if (!rows.length) break;
        expect(rows.length).toBeLessThanOrEqual(limit);
        seen.push(...rows);
        expect(seen.length).toBeLessThanOrEqual(3);
      }
      expect(seen.map((r) => r.record.callId)).toEqual(['pR', 'pL', 'pA']);
    }
  });

  // Requests, per source.

  it('lists requests by id, of some ids, of a source', async () => {
    const { store } = await fresh();
    const got = await store.insertInbox([
      item(mapped(ring('i1', '1'))),
      item({ status: 'unmapped', code: 'RELAY_ERR_UNKNOWN_EVENT', message: 'x' }, '{}', 'other'),
      item(mapped(ring('i2', '1')), '{}', 'other'),
      item({ status: 'ignored', rule: 'ping', message: 'ping' }),
    ]);
    const list = async (q: Parameters<Store['listInbox']>[0]) =>
      (await store.listInbox(q)).map((r) => r.id);
    expect(await list({ limit: 10, ids: [got[3]!, got[0]!, 999_999] })).toEqual([got[0], got[3]]);
    expect(await list({ limit: 10, ids: [] })).toEqual([]);
    expect(await list({ limit: 10, source: 'other' })).toEqual([got[1], got[2]]);
    expect(await list({ limit: 10, source: 'other', state: 'unmapped' })).toEqual([got[1]]);
    expect(await list({ limit: 10, source: 'other', ids: [got[0]!, got[2]!] })).toEqual([got[2]]);
    expect(await list({ limit: 1, source: 'other', afterId: got[1] })).toEqual([got[2]]);
    expect(await list({ limit: 10, source: 'nobody' })).toEqual([]);
    const [row] = await store.listInbox({ limit: 1, ids: [got[1]!] });
    expect(row!.body.equals(Buffer.from('{}'))).toBe(true);
  });

  it('tells the newest request of each source', async () => {
    const { store } = await fresh();
    expect(await store.sourceActivity()).toEqual([]);
    await store.insertInbox([
      item(mapped(ring('s1', '1'))),
      item(mapped(ring('s2', '1')), '{}', 'other'),
    ]);
    const got = await store.insertInbox([
      item(mapped(ring('s3', '1'))),
      item({ status: 'unmapped', code: 'RELAY_ERR_UNKNOWN_EVENT', message: 'x' }, '{}', 'other'),
      item({ status: 'ignored', rule: 'ping', message: 'ping' }, '{}', 'late'),
    ]);
    const rows = await Promise.all(got.map((id) => store.getInbox(id)));
    expect(await store.sourceActivity()).toEqual([
      {
        source: '3cx',
        lastId: got[0],
        lastReceivedAt: rows[0]!.receivedAt,
        lastState: 'pending',
        lastReasonCode: null,
      },
      {
        source: 'late',
        lastId: got[2],
        lastReceivedAt: rows[2]!.receivedAt,
        lastState: 'ignored',
        lastReasonCode: null,
      },
      {
        source: 'other',
        lastId: got[1],
        lastReceivedAt: rows[1]!.receivedAt,
        lastState: 'unmapped',
        lastReasonCode: 'RELAY_ERR_UNKNOWN_EVENT',
      },
    ]);
  });

  it('keeps the newest refused webhook per source, counted, whichever instance writes last', async () => {
    const { store, path } = await fresh();
    const other = await open(path);
    opened.push(other);
    expect(await store.refusals()).toEqual([]);
    const refusal = (source: string, at: string, code: string, count = 1): Refusal => ({
      source,
      at,
      status: code === 'RELAY_ERR_UNKNOWN_SOURCE' ? 404 : 401,
      code,
      reason: `${code} reason`,
      path: `/hooks/${source}/••••`,
      address: '203.0.113.7',
      count,
    });
    await store.noteRefusals([
      refusal('3cx', '2026-03-01T10:00:00.000Z', 'RELAY_ERR_UNAUTHORIZED', 3),
      refusal('(unknown)', '2026-03-01T10:00:01.000Z', 'RELAY_ERR_UNKNOWN_SOURCE'),
    ]);
    await other.noteRefusals([
      refusal('3cx', '2026-03-01T10:05:00.000Z', 'RELAY_ERR_BAD_SIGNATURE'),
    ]);
    // Written late by an instance that saw an older one: it only counts.
    await store.noteRefusals([
      refusal('3cx', '2026-03-01T10:01:00.000Z', 'RELAY_ERR_UNAUTHORIZED'),
    ]);
    expect(await other.refusals()).toEqual([
      { ...refusal('(unknown)', '2026-03-01T10:00:01.000Z', 'RELAY_ERR_UNKNOWN_SOURCE') },
      { ...refusal('3cx', '2026-03-01T10:05:00.000Z', 'RELAY_ERR_BAD_SIGNATURE'), count: 5 },
    ]);
  });

  // Deliveries: by target and state, of calls, retried and redelivered.

  it('lists deliveries by target and state, retrying ones apart, and those of some calls', async () => {
    const { store } = await fresh();
    await store.insertInbox([
      item(mapped(end('t1'))),
      item(mapped(end('t2', { endedAt: new Date().toISOString() })), '{}', 'late'),
      item(mapped(end('t3'))),
    ]);
    const job = await claimed(store, []);
    const t1 = job('t1');
    const later = new Date(Date.now() + 3_600_000).toISOString();
    await store.finishDelivery(t1.id, 'a', { ok: false, dead: false, retryAt: later, error: 'e' });
    await store.finishDelivery(job('t3').id, 'a', { ok: false, dead: true, error: 'gone' });
    const ofState = async (q: Parameters<Store['listDeliveries']>[0]) =>
      (await store.listDeliveries(q)).map((d) => `${d.target}:${d.callId}`);
    expect(await ofState({ limit: 10, state: 'retrying' })).toEqual(['crm:t1']);
    expect((await ofState({ limit: 10, state: 'due' })).sort()).toEqual([
      'crm:t1',
      'crm:t2',
      'slow:t2',
    ]);
    expect(await ofState({ limit: 10, state: 'dead' })).toEqual(['crm:t3']);
    expect(await ofState({ limit: 10, target: 'slow' })).toEqual(['slow:t2']);
    expect(await ofState({ limit: 10, target: 'crm', state: 'due' })).toEqual(['crm:t1', 'crm:t2']);
    expect(await ofState({ limit: 10, target: 'slow', state: 'retrying' })).toEqual([]);
    expect(await ofState({ limit: 10, target: 'nowhere' })).toEqual([]);

    const of = async (calls: CallKey[]) =>
      (await store.deliveriesOf(calls)).map((d) => `${d.target}:${d.source}:${d.callId}`);
    expect(
      await of([
        { source: 'late', callId: 't2' },
        { source: '3cx', callId: 't1' },
        { source: '3cx', callId: 't2' },
        { source: '3cx', callId: 't1' },
        { source: '3cx', callId: 'nothing' },
      ]),
    ).toEqual(['crm:3cx:t1', 'crm:late:t2', 'slow:late:t2']);
    expect(await of([])).toEqual([]);
    const [d] = await store.deliveriesOf([{ source: '3cx', callId: 't3' }]);
    expect(d).toEqual(await store.getDelivery(d!.id));
  });

  it('retries now: dead ones start over, waiting ones keep their count, leased ones wait', async () => {
    const { store } = await fresh();
    await store.insertInbox([
      item(mapped(end('w4', { endedAt: new Date().toISOString() })), '{}', 'late'),
    ]);
    const job = await claimed(store, ['w1', 'w2', 'w3']);
    const [w1, w2, w3] = [job('w1'), job('w2'), job('w3')];
    const later = new Date(Date.now() + 3_600_000).toISOString();
    await store.finishDelivery(w1.id, 'a', {
      ok: false,
      dead: false,
      retryAt: later,
      error: '429',
    });
    await store.finishDelivery(w3.id, 'a', { ok: false, dead: true, error: '400' });
    const leased = await store.getDelivery(w2.id);
    const waiting = (await store.getDelivery(w1.id))!;
    const slow = (await store.listDeliveries({ limit: 10, target: 'slow' }))[0]!;
    expect(Date.parse(slow.dueAt)).toBeGreaterThan(Date.now() + 3_000_000);

    // All dead ones: the waiting one is left alone.
    expect(await store.retryDeliveries('dead')).toBe(1);
    expect(await store.getDelivery(w1.id)).toEqual(waiting);
    expect(await store.getDelivery(w3.id)).toMatchObject({
      state: 'due',
      attempts: 0,
      firstFailedAt: null,
    });
    await store.claimDeliveries({ limit: 10, owner: 'a', leaseMs: 60_000 });
    await store.finishDelivery(w3.id, 'a', { ok: false, dead: true, error: '400' });

    // These ids: dead and waiting ones are due now; the leased one is not touched.
    const start = Date.now();
    expect(await store.retryDeliveries([w1.id, w2.id, w3.id, slow.id, 999_999])).toBe(3);
    expect(await store.getDelivery(w2.id)).toEqual(leased);
    const w1now = (await store.getDelivery(w1.id))!;
    expect(w1now).toMatchObject({
      state: 'due',
      attempts: 1,
      firstFailedAt: waiting.firstFailedAt,
      lastError: '429',
    });
    expect(Date.parse(w1now.dueAt)).toBeGreaterThanOrEqual(start - 5);
    expect(Date.parse(w1now.dueAt)).toBeLessThanOrEqual(Date.now());
    expect(await store.getDelivery(w3.id)).toMatchObject({ state: 'due', attempts: 0 });
    expect(Date.parse((await store.getDelivery(slow.id))!.dueAt)).toBeLessThanOrEqual(Date.now());
    const next = await store.claimDeliveries({ limit: 10, owner: 'b', leaseMs: 60_000 });
    expect(next.map((j) => j.id).sort((x, y) => x - y)).toEqual(
      [w1.id, w3.id, slow.id].sort((x, y) => x - y),
    );
    // Leased now, they are left alone; done ones are not retried (that is redeliver).
    expect(await store.retryDeliveries([w1.id, w3.id])).toBe(0);
    await store.finishDelivery(w2.id, 'a', { ok: true, rev: w2.rev, remote: {} });
    expect(await store.retryDeliveries([w2.id])).toBe(0);
  });

  it('redelivers done work: the remote ids stay, the next claim delivers the current revision', async () => {
    const { store } = await fresh();
    const job = await claimed(store, ['rd1', 'rd2']);
    const [rd1, rd2] = [job('rd1'), job('rd2')];
    await store.finishDelivery(rd1.id, 'a', { ok: true, rev: rd1.rev, remote: { objectId: '42' } });
    await store.finishDelivery(rd2.id, 'a', { ok: false, dead: true, error: '400 bad' });
    // Later changes were delivered too: the done revision is the call's latest.
    await store.insertInbox([
      item(mapped({ type: 'recording', callId: 'rd1', legId: 'rd1-1', recordings: ['u'] })),
    ]);
    await store.applyPending(100);
    const [again] = await store.claimDeliveries({ limit: 10, owner: 'a', leaseMs: 60_000 });
    expect(again).toMatchObject({ id: rd1.id, rev: rd1.rev + 1 });
    await store.finishDelivery(rd1.id, 'a', {
      ok: true,
      rev: again!.rev,
      remote: { objectId: '42', noteId: '9' },
    });
    const done = (await store.getDelivery(rd1.id))!;
    expect(done).toMatchObject({ state: 'done', doneRev: rd1.rev + 1, attempts: 0 });

    const start = Date.now();
    expect(await store.redeliver([rd1.id, rd2.id, 999_999])).toBe(1);
    const due = (await store.getDelivery(rd1.id))!;
    expect(due).toMatchObject({
      state: 'due',
      attempts: 0,
      firstFailedAt: null,
      lastError: null,
      remote: { objectId: '42', noteId: '9' },
      doneRev: rd1.rev + 1,
    });
    expect(Date.parse(due.dueAt)).toBeGreaterThanOrEqual(start - 5);
    expect(await store.getDelivery(rd2.id)).toMatchObject({ state: 'dead', lastError: '400 bad' });
    // Already due: nothing to redeliver.
    expect(await store.redeliver([rd1.id])).toBe(0);

    const [redo] = await store.claimDeliveries({ limit: 10, owner: 'b', leaseMs: 60_000 });
    const [call] = await store.getCalls('rd1');
    expect(redo).toMatchObject({
      id: rd1.id,
      rev: call!.revision,
      attempts: 0,
      remote: { objectId: '42', noteId: '9' },
    });
    expect(redo!.record).toEqual(call!.record);
  });

  it('counts for metrics: the oldest pending request, requests by state, work per target', async () => {
    const { store } = await fresh();
    // The store's own thread, where it has one, reports its heap too (checked apart).
    const stats = async (): Promise<Omit<StoreStats, 'thread'>> => {
      const { thread, ...rest } = await store.stats();
      if (store instanceof ThreadedSqliteStore) expect(thread!.heapUsedBytes).toBeGreaterThan(0);
      else expect(thread).toBeUndefined();
      return rest;
    };
    expect(await stats()).toEqual({
      oldestPendingAt: null,
      inbox: { pending: 0, applied: 0, unmapped: 0, ignored: 0 },
      targets: [],
    });
    await store.insertInbox([
      item(mapped(end('e4', { endedAt: new Date().toISOString() })), '{}', 'late'),
    ]);
    const job = await claimed(store, ['e1', 'e2', 'e3']);
    const [e1, e2, e3, e4] = [job('e1'), job('e2'), job('e3'), job('e4', 'late')];
    await store.finishDelivery(e1!.id, 'a', { ok: true, rev: e1!.rev, remote: {} });
    await store.finishDelivery(e2!.id, 'a', { ok: false, dead: true, error: 'x' });
    await store.finishDelivery(e3!.id, 'a', {
      ok: false,
      dead: false,
      retryAt: new Date(Date.now() + 3_600_000).toISOString(),
      error: 'x',
    });
    expect(await store.releaseDeliveries('a')).toBe(1); // e4's crm delivery: due now again
    const [pending] = await store.insertInbox([
      item(mapped(ring('e5', '1'))),
      item(mapped(ring('e6', '1'))),
      item({ status: 'unmapped', code: 'RELAY_ERR_UNKNOWN_EVENT', message: 'x' }),
    ]);

    expect(await stats()).toEqual({
      oldestPendingAt: (await store.getInbox(pending!))!.receivedAt,
      inbox: { pending: 2, applied: 4, unmapped: 1, ignored: 0 },
      targets: [
        {
          target: 'crm',
          due: 1,
          retrying: 1,
          dead: 1,
          done: 1,
          // The retrying one is due later: the oldest due now is e4's.
          oldestDueAt: (await store.getDelivery(e4!.id))!.dueAt,
        },
        { target: 'slow', due: 1, retrying: 0, dead: 0, done: 0, oldestDueAt: null },
      ],
    });
    expect((await stats()).inbox).toEqual(await store.countInbox());
  });

  // A time after every request so far and every fold (calls change at the wall clock's time).
  const afterAll = (plusMs = 60_000): string =>
    new Date(Math.max(t, Date.now()) + plusMs).toISOString();

  it('closes open calls with no event since a time, once, and a late end replaces the close', async () => {
    const { store } = await fresh();
    await store.insertInbox([
      item(mapped(ring('quiet', '800'))),
      item(mapped(ring('talked', '800'), { ...end('talked'), type: 'answered' })),
      item(mapped(end('over'))),
    ]);
    await store.applyPending(100);
    const before = afterAll();
    const at = afterAll(120_000);
    // A call with an event at or after the cutoff is not silent.
    t = Date.parse(before);
    await store.insertInbox([item(mapped(ring('busy', '800')))]);
    await store.applyPending(100);

    const closed = await store.closeStaleCalls({ before, at, limit: 10 });
    expect(closed.map((k) => k.callId).sort()).toEqual(['quiet', 'talked']);
    expect(closed[0]!.source).toBe('3cx');
    // A second sweep finds nothing: each call is closed once, also before its close is folded.
    expect(await store.closeStaleCalls({ before, at, limit: 10 })).toEqual([]);
    const requests = (await store.listInbox({ limit: 100 })).filter(
      (r) => r.kind === 'relay-close',
    );
    expect(requests).toHaveLength(2);
    expect(requests[0]).toMatchObject({
      source: '3cx',
      provider: '3cx',
      state: 'pending',
      receivedAt: at,
    });
    expect(JSON.parse(requests[0]!.body.toString())).toMatchObject({
      callId: closed[0]!.callId,
      closeAfterMin: 1,
      reason: expect.stringContaining('closed by the relay'),
    });

    await store.applyPending(100);
    const quiet = (await store.getCalls('quiet'))[0]!.record;
    expect(quiet).toMatchObject({
      status: 'ended',
      outcome: 'missed',
      closedBy: 'relay',
      endReason: 'timeout',
      endedAt: null,
      durationSec: null,
      talkSec: null,
    });
    expect(quiet.events.map((e) => e.type)).toEqual(['ringing', 'closed']);
    expect((await store.getCalls('talked'))[0]!.record).toMatchObject({
      status: 'ended',
      outcome: 'answered',
      closedBy: 'relay',
      talkSec: null,
    });
    expect((await store.getCalls('busy'))[0]!.record.status).toBe('ringing');
    const due = await store.listDeliveries({ target: 'crm', limit: 10 });
    expect(due.map((d) => d.callId).sort()).toEqual(['over', 'quiet', 'talked']);

    // Replays refold from stored events: the close stays, also when the close itself is replayed.
    const ringOf = (await store.listInbox({ limit: 100 })).find((r) => r.kind === 'webhook')!;
    await store.remap(ringOf.id, mapped(ring('quiet', '800')), '3cx');
    await store.remap(requests[0]!.id, mapped({ type: 'closed', callId: 'quiet' }), '3cx');
    expect((await store.getCalls('quiet'))[0]!.record).toMatchObject({
      status: 'ended',
      closedBy: 'relay',
    });

    // The real end, late: it wins, and the call is due again at its target.
    const [d] = due.filter((x) => x.callId === 'quiet');
    await store.insertInbox([item(mapped(end('quiet', { outcome: 'missed', legId: 'quiet-0' })))]);
    await store.applyPending(100);
    const [late] = await store.getCalls('quiet');
    expect(late!.record).toMatchObject({
      status: 'ended',
      outcome: 'missed',
      closedBy: null,
      endReason: null,
      durationSec: 5,
    });
    expect(late!.record.endedAt).not.toBeNull();
    expect((await store.getDelivery(d!.id))!.wantRev).toBe(late!.revision);
  });

  it('never closes a call of nothing but a recording or analysis (incomplete)', async () => {
    const { store } = await fresh();
    const rec: CallEvent = { type: 'recording', callId: 'lone', recordings: ['https://r/1.mp3'] };
    await store.insertInbox([
      item(mapped(rec, { type: 'analysis', callId: 'lone', ai: { summary: 's' } })),
      item(mapped(ring('quiet', '800'))),
    ]);
    await store.applyPending(100);
    expect((await store.getCalls('lone'))[0]!.record.status).toBe('incomplete');
    const q = { before: afterAll(), at: afterAll(), limit: 10 };
    expect(await store.closeStaleCalls(q)).toEqual([{ source: '3cx', callId: 'quiet' }]);
    expect(await store.closeStaleCalls(q)).toEqual([]);
    await store.applyPending(100);
    expect((await store.getCalls('lone'))[0]!.record).toMatchObject({
      status: 'incomplete',
      closedBy: null,
    });
    // Once a real event makes it a call, it is closed like any other.
    await store.insertInbox([item(mapped(ring('lone', '117')))]);
    await store.applyPending(100);
    const later = { before: afterAll(), at: afterAll(), limit: 10 };
    expect(await store.closeStaleCalls(later)).toEqual([{ source: '3cx', callId: 'lone' }]);
  });

  it('closes a batch at a time, and a call at its limit of events too', async () => {
    const { store } = await fresh();
    await store.insertInbox(
      Array.from({ length: LIMIT }, (_, i) => item(mapped(ring('full', String(i))))),
    );
    await store.insertInbox([item(mapped(ring('other', '1')))]);
    await store.applyPending(100);
    const q = { before: afterAll(), at: afterAll(), limit: 1 };
    // Oldest change first.
    expect(await store.closeStaleCalls(q)).toEqual([{ source: '3cx', callId: 'full' }]);
    expect(await store.closeStaleCalls(q)).toEqual([{ source: '3cx', callId: 'other' }]);
    expect(await store.closeStaleCalls(q)).toEqual([]);
    await store.applyPending(100);
    const [full] = await store.getCalls('full');
    expect(full!.record).toMatchObject({ status: 'ended', closedBy: 'relay', truncated: false });
    // Replayed, the close is filed again past the limit, not dropped.
    const close = (await store.listInbox({ limit: 100 })).find((r) => r.kind === 'relay-close')!;
    await store.remap(close.id, mapped({ type: 'closed', callId: 'full' }), '3cx');
    expect((await store.getCalls('full'))[0]!.record).toMatchObject({ closedBy: 'relay' });
    expect(await store.getInbox(close.id)).toMatchObject({ state: 'applied', reasonCode: null });
    // A replay that moves the call's one event elsewhere leaves the close alone: no call remains.
    const requests = await store.listInbox({ limit: 100 });
    const otherRing = requests.filter((r) => r.kind === 'webhook')[LIMIT]!;
    expect(requests.filter((r) => r.kind === 'relay-close')).toHaveLength(2);
    await store.remap(otherRing.id, mapped(ring('elsewhere', '1')), '3cx');
    expect(await store.getCalls('other')).toEqual([]);
    expect((await store.getCalls('elsewhere'))[0]!.record.status).toBe('ringing');
  });

  it('closes each call once when two stores sweep at the same time', async () => {
    const { store, path } = await fresh();
    const other = await open(path);
    opened.push(other);
    const ids = Array.from({ length: 6 }, (_, i) => `twice-${i}`);
    await store.insertInbox(ids.map((id) => item(mapped(ring(id, '800')))));
    await store.applyPending(100);
    const q = { before: afterAll(), at: afterAll(), limit: 10 };
    const [a, b] = await Promise.all([store.closeStaleCalls(q), other.closeStaleCalls(q)]);
    expect([...a, ...b].map((k) => k.callId).sort()).toEqual(ids);
    const closes = (await store.listInbox({ limit: 100 })).filter((r) => r.kind === 'relay-close');
    expect(closes).toHaveLength(ids.length);
    await store.applyPending(100);
    for (const id of ids)
      expect((await store.getCalls(id))[0]!.record).toMatchObject({ closedBy: 'relay' });
  });

  it('keeps whether a run was a dry run with the delivery, and a backfill sends a dry run for real', async () => {
    const { store } = await fresh();
    const job = await claimed(store, ['dr1', 'dr2', 'dr3']);
    const since = '2000-01-01T00:00:00Z';
    const backfill = (dryRun: boolean) =>
      store.backfill({ target: 'crm', since, limit: 100, dryRun });
    // dr1: a sandbox delivered it; dr2: a sandbox gave up (dead); dr3: the CRM has it.
    const sandbox = { sandbox: { objectId: '9000001' } };
    await store.finishDelivery(job('dr1').id, 'a', {
      ok: true,
      rev: job('dr1').rev,
      remote: sandbox,
      dryRun: true,
    });
    await store.finishDelivery(job('dr2').id, 'a', {
      ok: false,
      dead: true,
      error: 'sandbox: no PUT',
      remote: {},
      dryRun: true,
    });
    await store.finishDelivery(job('dr3').id, 'a', {
      ok: true,
      rev: job('dr3').rev,
      remote: { objectId: '7' },
    });
    const rows = async () =>
      Object.fromEntries(
        (
          await store.deliveriesOf(
            ['dr1', 'dr2', 'dr3'].map((callId) => ({ source: '3cx', callId })),
          )
        ).map((d) => [d.callId, [d.state, d.dryRun]]),
      );
    expect(await rows()).toEqual({
      dr1: ['done', true],
      dr2: ['dead', true],
      dr3: ['done', false],
    });
    expect(await store.getDelivery(job('dr1').id)).toMatchObject({ dryRun: true, remote: sandbox });
    expect((await store.listDeliveries({ target: 'crm', limit: 10 })).map((d) => d.dryRun)).toEqual(
      [true, true, false],
    );

    // While the target is still a dry run, they count as delivered: queueing them would only
    // send them to the sandbox again, on every backfill.
    const sandboxOnly = { target: 'crm', since, limit: 100, sandboxTarget: true };
    expect(await store.backfill({ ...sandboxOnly, dryRun: false })).toMatchObject({ scanned: 0 });
    expect(await rows()).toMatchObject({ dr1: ['done', true], dr2: ['dead', true] });
    // Once it is real, a backfill counts the sandbox's calls as not delivered, and makes them
    // due again.
    expect(await backfill(true)).toMatchObject({ scanned: 2, matched: 2 });
    expect(await rows()).toMatchObject({ dr1: ['done', true], dr2: ['dead', true] });
    expect(await backfill(false)).toMatchObject({ scanned: 2, matched: 2 });
    expect(await rows()).toMatchObject({
      dr1: ['due', true],
      dr2: ['due', true],
      dr3: ['done', false],
    });
    expect(await store.getDelivery(job('dr2').id)).toMatchObject({ attempts: 0, lastError: null });
    // Queued already: a second backfill leaves them as they are.
    expect(await backfill(false)).toMatchObject({ scanned: 0, matched: 0 });

    // The real run replaces the mark.
    const again = await store.claimDeliveries({ limit: 10, owner: 'b', leaseMs: 60_000 });
    expect(again.map((j) => [j.callId, j.remote]).sort()).toEqual([
      ['dr1', sandbox],
      ['dr2', {}],
    ]);
    for (const j of again)
      await store.finishDelivery(j.id, 'b', { ok: true, rev: j.rev, remote: { objectId: '8' } });
    expect(await rows()).toEqual({
      dr1: ['done', false],
      dr2: ['done', false],
      dr3: ['done', false],
    });
    expect(await backfill(true)).toMatchObject({ scanned: 0, matched: 0 });
  });

  it('lists the agents a CRM had no user for, per target and sentence, newest first', async () => {
    const { store } = await fresh();
    const job = await claimed(store, ['nu1', 'nu2', 'nu3']);
    const bob = 'agent 102 (bob@acme-ofice.cz) is not a HubSpot user: the call has no owner';
    const eva = 'agent 103 (eva@acme.cz) is not a HubSpot user: the call has no owner';
    const note = (minute: number, text: string) =>
      attempt(minute, 'ok', {
        operation: "finding the agent's CRM user",
        method: null,
        path: null,
        status: null,
        error: text,
      });
    const finish = (callId: string, notes: NewAttempt[]) =>
      store.finishDelivery(job(callId).id, 'a', { ok: true, rev: job(callId).rev, remote: {} }, [
        ...notes,
        attempt(30, 'delivered'),
      ]);
    await finish('nu1', [note(1, bob)]);
    await finish('nu2', [note(2, eva)]);
    await finish('nu3', [note(3, bob)]);
    expect(await store.agentsWithoutUser({ since: '2026-03-01T10:00:00Z', limit: 10 })).toEqual([
      { target: 'crm', text: bob, lastAt: '2026-03-01T10:03:00.000Z', runs: 2 },
      { target: 'crm', text: eva, lastAt: '2026-03-01T10:02:00.000Z', runs: 1 },
    ]);
    // Only since a time, and only so many.
    expect(
      await store.agentsWithoutUser({ since: '2026-03-01T10:02:30Z', limit: 10 }),
    ).toMatchObject([{ text: bob, runs: 1 }]);
    expect(await store.agentsWithoutUser({ since: '2026-03-01T10:00:00Z', limit: 1 })).toHaveLength(
      1,
    );
  });

  // Targets' run-time credentials (OAuth tokens), shared by every instance.

  it('keeps a target credential by version: a write from an older version loses', async () => {
    const { store, path } = await fresh();
    const other = await open(path);
    opened.push(other);
    const c = store.credentials;
    expect(await c.get('zoho')).toBeUndefined();
    // Nothing stored yet: only a write expecting none succeeds, once.
    expect(await c.put('zoho', 'sealed-1', 3)).toBe(false);
    expect(await c.put('zoho', 'sealed-1', 0)).toBe(true);
    expect(await other.credentials.put('zoho', 'sealed-x', 0)).toBe(false);
    expect(await other.credentials.get('zoho')).toMatchObject({ value: 'sealed-1', version: 1 });
    // Two instances read version 1 and both write: the second loses and the first value stays.
    expect(await other.credentials.put('zoho', 'sealed-2', 1)).toBe(true);
    expect(await c.put('zoho', 'sealed-3', 1)).toBe(false);
    const got = await c.get('zoho');
    expect(got).toMatchObject({ value: 'sealed-2', version: 2 });
    expect(Date.parse(got!.updatedAt)).toBeGreaterThan(Date.now() - 60_000);
    // Each target its own row.
    expect(await c.get('salesforce')).toBeUndefined();
    expect(await c.put('salesforce', 'sf', 0)).toBe(true);
    expect(await c.get('zoho')).toMatchObject({ value: 'sealed-2', version: 2 });
  });

  it('leases a target credential to one owner at a time: taken, refused, released, expired', async () => {
    const { store, path } = await fresh();
    const other = await open(path);
    opened.push(other);
    const [a, b] = [store.credentials, other.credentials];
    expect(await a.lease('zoho', 'a', 60_000)).toBe(true);
    // A lease alone is no credential, and the first write still expects none.
    expect(await a.get('zoho')).toBeUndefined();
    expect(await b.lease('zoho', 'b', 60_000)).toBe(false);
    // The holder may renew; another target is free.
    expect(await a.lease('zoho', 'a', 60_000)).toBe(true);
    expect(await b.lease('salesforce', 'b', 60_000)).toBe(true);
    expect(await a.put('zoho', 'sealed-1', 0)).toBe(true);
    // Only the holder gives it back.
    await b.release('zoho', 'b');
    expect(await b.lease('zoho', 'b', 60_000)).toBe(false);
    await a.release('zoho', 'a');
    expect(await b.lease('zoho', 'b', 60_000)).toBe(true);
    expect(await a.get('zoho')).toMatchObject({ value: 'sealed-1', version: 1 });
    // A holder that died: its short lease runs out and another owner takes it.
    expect(await a.lease('salesforce', 'a', 1)).toBe(false);
    await b.release('salesforce', 'b');
    // Long enough that b's first try surely falls within it, even on a busy machine.
    expect(await a.lease('salesforce', 'a', 2000)).toBe(true);
    expect(await b.lease('salesforce', 'b', 60_000)).toBe(false);
    const deadline = Date.now() + 10_000;
    while (!(await b.lease('salesforce', 'b', 60_000))) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await a.lease('salesforce', 'a', 60_000)).toBe(false);
  });

  it('survives a reopen: migrations run once, data stays', async () => {
    const { store, path } = await fresh();
    await store.insertInbox([item(mapped(ring('z', '1')))]);
    await store.close();
    opened.splice(opened.indexOf(store), 1);
    const again = await open(path);
    opened.push(again);
    expect(await again.countInbox()).toMatchObject({ pending: 1 });
    await again.checkWritable();
    const migrations = again.backend === 'postgres' ? PG_MIGRATIONS : MIGRATIONS;
    expect(await backend.versions(path)).toEqual(migrations.map((m) => m.version));
  });
});

describe('upgrading a database written before repeats were links', () => {
  // The rows the previous version wrote for one call: a ringing event stored twice, and its
  // record without a fingerprint.
  const ev = { type: 'ringing', callId: 'old', legId: 'old-0', agent: '800', direction: 'inbound' };
  const key = 'same-content-key-00000';
  const inbox = (id: number): unknown[] => [
    id,
    '3cx',
    '3cx',
    'webhook',
    `2026-03-01T10:00:0${id}.000Z`,
    'POST',
    '',
    null,
    '{}',
    Buffer.from('{}'),
    'applied',
  ];

  it.each([
    [
      'sqlite',
      async () => {
        const { path, db } = sqliteAt(2);
        const ins = db.prepare(
          `INSERT INTO inbox (id, source, provider, kind, received_at, method, query, content_type, headers, body, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        );
        const evt = db.prepare(
          `INSERT INTO events (inbox_id, idx, source, provider, call_id, channel_id, type, key, received_at, body) VALUES (?, 0, '3cx', '3cx', 'old', NULL, 'ringing', ?, ?, ?)`,
        );
        for (const id of [1, 2]) {
          ins.run(...inbox(id));
          evt.run(id, key, `2026-03-01T10:00:0${id}.000Z`, JSON.stringify(ev));
        }
        db.close();
        return {
          open: () => new SqliteStore(path, { routing }),
          count: async () => {
            const d = new Database(path, { readonly: true });
            try {
              return d
                .prepare(
                  'SELECT (SELECT count(*) FROM events) AS e, (SELECT count(*) FROM event_links) AS l',
                )
                .get() as { e: number; l: number };
            } finally {
              d.close();
            }
          },
        };
      },
    ],
    [
      'postgres',
      async () => {
        const url = await freshPostgresDatabase(inject('pgUrl'));
        const c = new pg.Client({ connectionString: url });
        await c.connect();
        await c.query(
          'CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)',
        );
        await c.query(PG_MIGRATIONS[0]!.sql);
        await c.query(`INSERT INTO schema_migrations VALUES (1, 'x', now())`);
        for (const id of [1, 2]) {
          await c.query(
            `INSERT INTO inbox (id, source, provider, kind, received_at, method, query, content_type, headers, body, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
            inbox(id),
          );
          await c.query(
            `INSERT INTO events (inbox_id, idx, source, provider, call_id, channel_id, type, key, received_at, body) VALUES ($1, 0, '3cx', '3cx', 'old', NULL, 'ringing', $2, $3, $4)`,
            [id, key, `2026-03-01T10:00:0${id}.000Z`, JSON.stringify(ev)],
          );
        }
        await c.end();
        return {
          open: () => PostgresStore.open(url, { routing }),
          count: async () => {
            const d = new pg.Client({ connectionString: url });
            await d.connect();
            try {
              return (
                await d.query<{ e: number; l: number }>(
                  'SELECT (SELECT count(*)::int FROM events) AS e, (SELECT count(*)::int FROM event_links) AS l',
                )
              ).rows[0]!;
            } finally {
              await d.end();
            }
          },
        };
      },
    ],
  ] as const)(
    '%s: a stored repeat becomes a link, and replays keep one event',
    async (_n, make) => {
      const { open, count } = await make();
      const store = await open();
      try {
        expect(await count()).toEqual({ e: 1, l: 1 });
        // Replaying either request hands the one event over, never copies it.
        await store.remap(1, mapped(ev as CallEvent), '3cx');
        await store.remap(2, mapped(ev as CallEvent), '3cx');
        expect(await count()).toEqual({ e: 1, l: 1 });
        const [call] = await store.getCalls('old');
        expect(call).toMatchObject({
          droppedEvents: 0,
          record: { rang: ['800'], truncated: false },
        });
        expect(call!.record.events).toHaveLength(1);
      } finally {
        await store.close();
      }
    },
  );
});

describe('upgrading a database whose event keys were indexed by key alone', () => {
  it('keeps its events, and a repeat of one (with a call or without) is still a repeat', async () => {
    const { path, db } = sqliteAt(7);
    db.close();
    const store = new SqliteStore(path, { routing });
    // A click-to-call origin names a channel, not a call.
    const lone: CallEvent = { type: 'originated', channelId: 'ch-up', originatedBy: 'api:x' };
    try {
      await store.insertInbox([item(mapped(ring('up', '800'))), item(mapped(lone))]);
      const again = await store.insertInbox([
        item(mapped(ring('up', '800')), '{"again":1}'),
        item(mapped(lone), '{"again":2}'),
      ]);
      for (const id of again) expect(await store.getInbox(id)).toMatchObject({ state: 'applied' });
      await store.applyPending(100);
      expect((await store.getCalls('up'))[0]!.record.rang).toEqual(['800']);
    } finally {
      await store.close();
    }
    const d = new Database(path, { readonly: true });
    try {
      const sql = d
        .prepare(`SELECT sql FROM sqlite_master WHERE name = 'events_key'`)
        .pluck()
        .get() as string;
      expect(sql).toContain("(source, coalesce(call_id, ''), key)");
      expect(d.prepare('SELECT count(*) FROM events').pluck().get()).toBe(2);
    } finally {
      d.close();
    }
  });
});

describe('upgrading a database written before delivery attempts', () => {
  // What the previous version kept: requests of two sources, one delivered call.
  const record = {
    callId: 'old',
    source: '3cx',
    provider: '3cx',
    direction: 'inbound',
    status: 'ended',
    outcome: 'answered',
    externalNumber: '601 000 111',
    externalE164: '+420601000111',
    did: null,
    agent: '117',
    legs: [{ legId: 'old-0', agent: '800', durationSec: 5 }],
    startedAt: '2026-03-01T09:00:00.000Z',
  };
  const requests: unknown[][] = [
    ['3cx', '2026-03-01T10:00:01.000Z', 'applied', null],
    ['other', '2026-03-01T10:00:02.000Z', 'unmapped', 'RELAY_ERR_UNKNOWN_EVENT'],
    ['3cx', '2026-03-01T10:00:03.000Z', 'ignored', null],
  ];
  const at = '2026-03-01T10:00:05.000Z';

  it.each([
    [
      'sqlite',
      async () => {
        const { path, db } = sqliteAt(3);
        for (const [source, receivedAt, state, code] of requests) {
          db.prepare(
            `INSERT INTO inbox (source, provider, kind, received_at, method, query, headers, body, state, reason_code)
             VALUES (?, '3cx', 'webhook', ?, 'POST', '', '{}', x'7b7d', ?, ?)`,
          ).run(source, receivedAt, state, code);
        }
        db.prepare(
          `INSERT INTO calls (source, call_id, status, started_at, updated_at, revision, record, fingerprint)
           VALUES ('3cx', 'old', 'ended', ?, ?, 1, ?, 'f')`,
        ).run(record.startedAt, at, JSON.stringify(record));
        db.prepare(
          `INSERT INTO deliveries (target, source, call_id, state, due_at, want_rev, done_rev, remote, updated_at)
           VALUES ('crm', '3cx', 'old', 'done', ?, 1, 1, '{"objectId":"9"}', ?)`,
        ).run(at, at);
        db.close();
        return {
          open: (): Promise<Store> => Promise.resolve(new SqliteStore(path, { routing })),
          versions: () => sqliteVersions(path),
          latest: MIGRATIONS.map((m) => m.version),
        };
      },
    ],
    [
      'postgres',
      async () => {
        const { url, c } = await postgresAtMigration(2);
        for (const r of requests) {
          await c.query(
            `INSERT INTO inbox (source, provider, kind, received_at, method, query, headers, body, state, reason_code)
             VALUES ($1, '3cx', 'webhook', $2, 'POST', '', '{}', '\\x7b7d', $3, $4)`,
            r,
          );
        }
        await c.query(
          `INSERT INTO calls (source, call_id, status, started_at, updated_at, revision, record, fingerprint)
           VALUES ('3cx', 'old', 'ended', $1, $2, 1, $3, 'f')`,
          [record.startedAt, at, JSON.stringify(record)],
        );
        await c.query(
          `INSERT INTO deliveries (target, source, call_id, state, due_at, want_rev, done_rev, remote, updated_at)
           VALUES ('crm', '3cx', 'old', 'done', $1, 1, 1, '{"objectId":"9"}', $1)`,
          [at],
        );
        await c.end();
        return {
          open: (): Promise<Store> => PostgresStore.open(url, { routing }),
          versions: async () => {
            const d = new pg.Client({ connectionString: url });
            await d.connect();
            try {
              return (
                await d.query<{ version: number }>(
                  'SELECT version FROM schema_migrations ORDER BY version',
                )
              ).rows.map((r) => r.version);
            } finally {
              await d.end();
            }
          },
          latest: PG_MIGRATIONS.map((m) => m.version),
        };
      },
    ],
  ] as const)(
    '%s: stored calls, requests and deliveries work with the new queries',
    async (_n, make) => {
      const { open, versions, latest } = await make();
      const store = await open();
      try {
        expect(await versions()).toEqual(latest);
        // The call list's filters and cursor read the stored record.
        const calls = await store.listCalls({
          limit: 10,
          agent: '800',
          number: '601000',
          from: '2026-03-01T00:00:00Z',
        });
        expect(calls.map((c) => c.record.callId)).toEqual(['old']);
        expect(calls[0]!.updatedAt).toBe(at);
        expect(
          await store.listCalls({
            limit: 10,
            before: { updatedAt: at, source: '3cx', callId: 'old' },
          }),
        ).toEqual([]);
        expect(await store.sourceActivity()).toMatchObject([
          { source: '3cx', lastReceivedAt: '2026-03-01T10:00:03.000Z', lastState: 'ignored' },
          { source: 'other', lastState: 'unmapped', lastReasonCode: 'RELAY_ERR_UNKNOWN_EVENT' },
        ]);
        expect((await store.listInbox({ limit: 10, source: 'other' })).map((r) => r.state)).toEqual(
          ['unmapped'],
        );

        // The delivered call is delivered again, in place, and its attempts are kept.
        const [d] = await store.deliveriesOf([{ source: '3cx', callId: 'old' }]);
        expect(d).toMatchObject({ target: 'crm', state: 'done', remote: { objectId: '9' } });
        expect(await store.stats()).toMatchObject({
          oldestPendingAt: null,
          targets: [{ target: 'crm', due: 0, retrying: 0, dead: 0, done: 1, oldestDueAt: null }],
        });
        expect(await store.redeliver([d!.id])).toBe(1);
        const [job] = await store.claimDeliveries({ limit: 10, owner: 'a', leaseMs: 60_000 });
        expect(job).toMatchObject({ id: d!.id, rev: 1, remote: { objectId: '9' } });
        expect(job!.record).toEqual(record);
        await store.finishDelivery(d!.id, 'a', { ok: true, rev: 1, remote: { objectId: '9' } }, [
          {
            operation: 'updating the call engagement',
            method: 'PATCH',
            path: '/crm/v3/objects/calls/9',
            startedAt: '2026-03-01T11:00:00.000Z',
            durationMs: 40,
            status: 200,
            requestId: null,
            result: 'delivered',
            error: null,
            retryAt: null,
            sent: null,
          },
        ]);
        expect(
          await store.listAttempts({ call: { source: '3cx', callId: 'old' }, limit: 10 }),
        ).toMatchObject([{ deliveryId: d!.id, target: 'crm', rev: 1, result: 'delivered' }]);
        expect((await store.stats()).targets).toMatchObject([{ target: 'crm', done: 1 }]);
      } finally {
        await store.close();
      }
    },
  );
});

describe('upgrading a database written before dry runs were kept with the delivery', () => {
  // Two delivered calls: "dry" by a sandbox (its write kept its body), "real" by the CRM.
  const at = '2026-03-01T10:00:05.000Z';
  const record = (callId: string) =>
    JSON.stringify({ callId, source: '3cx', status: 'ended', startedAt: at, legs: [] });
  const deliveries: [string, string][] = [
    ['dry', '{"objectId":"9000001"}'],
    ['real', '{"objectId":"7"}'],
  ];
  // Per call: a GET (no body either way), then the write: a body kept only by the dry run.
  const attempts = (callId: string): [string, string | null][] => [
    ['GET', null],
    ['POST', callId === 'dry' ? '{"properties":{}}' : null],
  ];

  it.each([
    [
      'sqlite',
      async () => {
        const { path, db } = sqliteAt(9);
        for (const [callId, remote] of deliveries) {
          db.prepare(
            `INSERT INTO calls (source, call_id, status, started_at, updated_at, revision, record, fingerprint)
             VALUES ('3cx', ?, 'ended', ?, ?, 1, ?, 'f')`,
          ).run(callId, at, at, record(callId));
          const id = db
            .prepare(
              `INSERT INTO deliveries (target, source, call_id, state, due_at, want_rev, done_rev, remote, updated_at)
               VALUES ('crm', '3cx', ?, 'done', ?, 1, 1, ?, ?) RETURNING id`,
            )
            .pluck()
            .get(callId, at, remote, at);
          for (const [method, sent] of attempts(callId))
            db.prepare(
              `INSERT INTO delivery_attempts (delivery_id, target, source, call_id, rev, operation, method, path, started_at, duration_ms, result, sent)
               VALUES (?, 'crm', '3cx', ?, 1, 'x', ?, '/x', ?, 1, 'ok', ?)`,
            ).run(id, callId, method, at, sent);
        }
        db.close();
        return (): Promise<Store> => Promise.resolve(new SqliteStore(path, { routing }));
      },
    ],
    [
      'postgres',
      async () => {
        const { url, c } = await postgresAtMigration(7);
        for (const [callId, remote] of deliveries) {
          await c.query(
            `INSERT INTO calls (source, call_id, status, started_at, updated_at, revision, record, fingerprint)
             VALUES ('3cx', $1, 'ended', $2, $2, 1, $3, 'f')`,
            [callId, at, record(callId)],
          );
          const { rows } = await c.query<{ id: number }>(
            `INSERT INTO deliveries (target, source, call_id, state, due_at, want_rev, done_rev, remote, updated_at)
             VALUES ('crm', '3cx', $1, 'done', $2, 1, 1, $3, $2) RETURNING id`,
            [callId, at, remote],
          );
          for (const [method, sent] of attempts(callId))
            await c.query(
              `INSERT INTO delivery_attempts (delivery_id, target, source, call_id, rev, operation, method, path, started_at, duration_ms, result, sent)
               VALUES ($1, 'crm', '3cx', $2, 1, 'x', $3, '/x', $4, 1, 'ok', $5)`,
              [rows[0]!.id, callId, method, at, sent],
            );
        }
        await c.end();
        return (): Promise<Store> => PostgresStore.open(url, { routing });
      },
    ],
  ] as const)(
    "%s: a delivery whose last write kept its body is a dry run, its ids the sandbox's",
    async (_n, make) => {
      const store = await (await make())();
      try {
        const rows = await store.deliveriesOf([
          { source: '3cx', callId: 'dry' },
          { source: '3cx', callId: 'real' },
        ]);
        expect(rows.map((d) => [d.callId, d.dryRun, d.remote])).toEqual([
          ['dry', true, { sandbox: { objectId: '9000001' } }],
          ['real', false, { objectId: '7' }],
        ]);
      } finally {
        await store.close();
      }
    },
  );
});

describe('upgrading a database written before events kept their leg', () => {
  const legMigration = (ms: readonly { version: number; name: string }[]): number =>
    ms.find((m) => m.name === 'events by leg')!.version;
  // Made as the previous release left it: the same store, less the leg column and its migration.
  const cases: [string, () => Promise<string>, (p: string) => Promise<Store>, string[]][] = [
    [
      'sqlite',
      async () => join(tempDir(), 'relay.db'),
      async (p) => new SqliteStore(p, { routing }),
      [
        // With the leg column, what came after it (leg-only events by age) goes too.
        'DROP INDEX events_leg_only',
        'DROP INDEX events_leg',
        'ALTER TABLE events DROP COLUMN leg_id',
        `DELETE FROM schema_migrations WHERE version >= ${legMigration(MIGRATIONS)}`,
      ],
    ],
    [
      'postgres',
      () => freshPostgresDatabase(inject('pgUrl')),
      (url) => PostgresStore.open(url, { routing }),
      [
        // With the leg column, what came after it (leg-only events by age) goes too.
        'DROP INDEX events_leg_only',
        'DROP INDEX events_leg',
        'ALTER TABLE events DROP COLUMN leg_id',
        `DELETE FROM schema_migrations WHERE version >= ${legMigration(PG_MIGRATIONS)}`,
      ],
    ],
  ];
  it.each(cases)(
    '%s: a recording by leg joins a call stored before',
    async (name, place, open, downgrade) => {
      const p = await place();
      const first = await open(p);
      try {
        await first.insertInbox([item(mapped(ring('old', '800'))), item(mapped(end('old')))]);
        await first.applyPending(100);
      } finally {
        await first.close();
      }
      if (name === 'sqlite') {
        const db = new Database(p);
        for (const sql of downgrade) db.exec(sql);
        db.close();
      } else {
        const c = new pg.Client({ connectionString: p });
        await c.connect();
        for (const sql of downgrade) await c.query(sql);
        await c.end();
      }
      const store = await open(p);
      try {
        await store.insertInbox([item(mapped(legRecording('old-1')))]);
        await store.applyPending(100);
        expect((await store.getCalls('old'))[0]!.record.recordings).toEqual([
          'https://rec.example/old-1.wav',
        ]);
      } finally {
        await store.close();
      }
    },
  );
});
