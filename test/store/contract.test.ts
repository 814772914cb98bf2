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
import type { NewInbox, Store } from '../../src/store/types.js';
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
  open(place: string): Promise<Store>;
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

const backends: [string, Backend][] = [
  [
    'sqlite',
    {
      place: async () => join(tempDir(), 'relay.db'),
      open: async (p) => new SqliteStore(p, { routing }),
      versions: sqliteVersions,
    },
  ],
  [
    'sqlite on its own thread',
    {
      place: async () => join(tempDir(), 'relay.db'),
      open: (p) => ThreadedSqliteStore.open({ path: p, routing }),
      versions: sqliteVersions,
    },
  ],
  [
    'postgres',
    {
      place: () => freshPostgresDatabase(inject('pgUrl')),
      open: (url) => PostgresStore.open(url, { routing }),
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
  const open = (place: string): Promise<Store> => backend.open(place);
  const fresh = async (): Promise<{ store: Store; path: string }> => {
    const path = await backend.place();
    const store = await open(path);
    opened.push(store);
    return { store, path };
  };
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
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
