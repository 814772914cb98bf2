// PostgreSQL migrations: numbered and append-only. Never edit one that has shipped; add the next.
// migrate() applies them under an advisory lock, so instances starting together do not race.

import type { Migration } from '../sqlite/migrations.js';
import type { Db } from './db.js';

const MIGRATION_LOCK = 0x63616c6c72656c; // "callrel"

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'inbox, events, calls, deliveries',
    sql: `
      CREATE TABLE inbox (
        id            bigserial PRIMARY KEY,
        source        text        NOT NULL,
        provider      text        NOT NULL,
        kind          text        NOT NULL,
        received_at   timestamptz NOT NULL,
        method        text        NOT NULL,
        query         text        NOT NULL,
        content_type  text,
        headers       jsonb       NOT NULL,
        body          bytea       NOT NULL,
        state         text        NOT NULL CHECK (state IN ('pending', 'applied', 'unmapped', 'ignored')),
        rule          text,
        reason_code   text,
        reason        text,
        replays       integer     NOT NULL DEFAULT 0,
        applied_at    timestamptz
      );
      CREATE INDEX inbox_pending ON inbox (id) WHERE state = 'pending';
      CREATE INDEX inbox_state ON inbox (state, id);

      CREATE TABLE events (
        inbox_id     bigint      NOT NULL REFERENCES inbox (id),
        idx          integer     NOT NULL,
        source       text        NOT NULL,
        provider     text        NOT NULL,
        call_id      text,
        channel_id   text,
        type         text        NOT NULL,
        key          text        NOT NULL,
        received_at  timestamptz NOT NULL,
        body         jsonb       NOT NULL,
        PRIMARY KEY (inbox_id, idx)
      );
      CREATE INDEX events_call ON events (source, call_id);
      CREATE INDEX events_origin ON events (source, channel_id) WHERE type = 'originated';

      CREATE TABLE calls (
        source      text        NOT NULL,
        call_id     text        NOT NULL,
        channel_id  text,
        status      text        NOT NULL,
        started_at  timestamptz NOT NULL,
        updated_at  timestamptz NOT NULL,
        revision    integer     NOT NULL,
        record      jsonb       NOT NULL,
        PRIMARY KEY (source, call_id)
      );
      CREATE INDEX calls_updated ON calls (updated_at);
      CREATE INDEX calls_channel ON calls (source, channel_id) WHERE channel_id IS NOT NULL;

      CREATE TABLE deliveries (
        id               bigserial PRIMARY KEY,
        target           text        NOT NULL,
        source           text        NOT NULL,
        call_id          text        NOT NULL,
        state            text        NOT NULL CHECK (state IN ('due', 'done', 'dead')),
        due_at           timestamptz NOT NULL,
        want_rev         integer     NOT NULL,
        done_rev         integer     NOT NULL DEFAULT 0,
        attempts         integer     NOT NULL DEFAULT 0,
        first_failed_at  timestamptz,
        last_error       text,
        lease_owner      text,
        lease_until      timestamptz,
        remote           jsonb       NOT NULL DEFAULT '{}',
        updated_at       timestamptz NOT NULL,
        UNIQUE (target, source, call_id)
      );
      CREATE INDEX deliveries_due ON deliveries (due_at) WHERE state = 'due';
      CREATE INDEX deliveries_state ON deliveries (state, id);

      CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
    `,
  },
  {
    version: 2,
    name: 'repeats as links, per-call event limit, record fingerprints',
    sql: `
      -- The same as SQLite's migration 3 (see there).
      CREATE INDEX events_key_migrating ON events (source, key);
      CREATE TABLE event_links (
        inbox_id  bigint  NOT NULL REFERENCES inbox (id),
        idx       integer NOT NULL,
        source    text    NOT NULL,
        call_id   text,
        key       text    NOT NULL,
        kind      text    NOT NULL CHECK (kind IN ('copy', 'dropped')),
        PRIMARY KEY (inbox_id, idx)
      );
      INSERT INTO event_links (inbox_id, idx, source, call_id, key, kind)
        SELECT e.inbox_id, e.idx, e.source, e.call_id, e.key, 'copy' FROM events e
        WHERE EXISTS (SELECT 1 FROM events f WHERE f.source = e.source AND f.key = e.key
                      AND (f.inbox_id, f.idx) < (e.inbox_id, e.idx));
      DELETE FROM events e USING event_links l WHERE l.inbox_id = e.inbox_id AND l.idx = e.idx;
      DROP INDEX events_key_migrating;
      CREATE UNIQUE INDEX events_key ON events (source, key);
      CREATE INDEX event_links_key ON event_links (source, key);
      CREATE INDEX events_channel ON events (source, channel_id) WHERE channel_id IS NOT NULL;

      CREATE TABLE call_stats (
        source   text    NOT NULL,
        call_id  text    NOT NULL,
        events   integer NOT NULL DEFAULT 0,
        dropped  integer NOT NULL DEFAULT 0,
        PRIMARY KEY (source, call_id)
      );
      INSERT INTO call_stats (source, call_id, events)
        SELECT source, call_id, count(*) FROM events WHERE call_id IS NOT NULL GROUP BY source, call_id;

      ALTER TABLE calls ADD COLUMN fingerprint text;
    `,
  },
  {
    version: 3,
    name: 'delivery attempts, call pages, per-source and per-call lookups',
    sql: `
      -- The same as SQLite's migration 4 (see there).
      CREATE TABLE delivery_attempts (
        id           bigserial PRIMARY KEY,
        delivery_id  bigint      NOT NULL REFERENCES deliveries (id),
        target       text        NOT NULL,
        source       text        NOT NULL,
        call_id      text        NOT NULL,
        rev          integer     NOT NULL,
        operation    text        NOT NULL,
        method       text,
        path         text,
        started_at   timestamptz NOT NULL,
        duration_ms  integer     NOT NULL,
        status       integer,
        request_id   text,
        result       text        NOT NULL CHECK (result IN ('ok', 'error', 'delivered', 'retry', 'dead')),
        error        text,
        retry_at     timestamptz
      );
      CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);
      CREATE INDEX delivery_attempts_call ON delivery_attempts (source, call_id, id);
      CREATE INDEX delivery_attempts_started ON delivery_attempts (started_at);

      CREATE INDEX calls_page ON calls (updated_at, source, call_id);
      DROP INDEX calls_updated;

      CREATE INDEX inbox_source ON inbox (source, id);

      CREATE INDEX deliveries_call ON deliveries (source, call_id);
      CREATE INDEX deliveries_target ON deliveries (target, state, attempts);
    `,
  },
  {
    version: 4,
    name: 'open calls by last change',
    sql: `
      -- The same as SQLite's migration 5 (see there).
      CREATE INDEX calls_open ON calls (updated_at, source, call_id) WHERE status <> 'ended';
    `,
  },
  {
    version: 5,
    name: 'retention of raw requests',
    sql: `
      -- The same as SQLite's migration 6 (see there).
      ALTER TABLE calls ADD COLUMN pruned_at timestamptz;
      CREATE INDEX calls_prunable ON calls (updated_at) WHERE status = 'ended' AND pruned_at IS NULL;
      CREATE INDEX event_links_call ON event_links (source, call_id);
    `,
  },
  {
    version: 6,
    name: 'bodies of dry-run requests',
    sql: `
      -- The same as SQLite's migration 7 (see there).
      ALTER TABLE delivery_attempts ADD COLUMN sent text;
    `,
  },
  {
    version: 7,
    name: 'console sessions',
    sql: `
      -- The same as SQLite's migration 9 (see there).
      CREATE TABLE sessions (
        id            text        PRIMARY KEY,
        created_at    timestamptz NOT NULL,
        last_seen_at  timestamptz NOT NULL,
        expires_at    timestamptz NOT NULL
      );
      CREATE INDEX sessions_expires ON sessions (expires_at);
    `,
  },
  {
    version: 8,
    name: 'dry runs kept with the delivery',
    sql: `
      -- The same as SQLite's migration 10 (see there).
      ALTER TABLE deliveries ADD COLUMN dry_run boolean NOT NULL DEFAULT false;
      UPDATE deliveries d SET dry_run = true
        WHERE (SELECT a.sent IS NOT NULL FROM delivery_attempts a
               WHERE a.delivery_id = d.id AND a.method IN ('POST', 'PUT', 'PATCH')
               ORDER BY a.id DESC LIMIT 1);
      UPDATE deliveries SET remote = jsonb_build_object('sandbox', remote)
        WHERE dry_run AND remote <> '{}'::jsonb;
      CREATE INDEX delivery_attempts_no_user ON delivery_attempts (started_at)
        WHERE operation = 'finding the agent''s CRM user';
    `,
  },
  {
    version: 9,
    name: 'refused webhooks',
    sql: `
      -- The same as SQLite's migration 11 (see there).
      CREATE TABLE refusals (
        source   text        PRIMARY KEY,
        at       timestamptz NOT NULL,
        status   integer     NOT NULL,
        code     text        NOT NULL,
        reason   text        NOT NULL,
        path     text        NOT NULL,
        address  text        NOT NULL,
        count    bigint      NOT NULL
      );
    `,
  },
  {
    version: 10,
    name: 'target credentials',
    sql: `
      -- The same as SQLite's migration 12 (see there).
      CREATE TABLE target_credentials (
        target       text        PRIMARY KEY,
        value        text,
        version      bigint      NOT NULL,
        updated_at   timestamptz NOT NULL,
        lease_owner  text,
        lease_until  timestamptz
      );
    `,
  },
  {
    version: 11,
    name: 'agent sessions and sign-in links',
    sql: `
      -- The same as SQLite's migration 13 (see there).
      ALTER TABLE sessions ADD COLUMN agent text;
      ALTER TABLE sessions ADD COLUMN agent_email text;
      CREATE TABLE sign_in_links (
        id          text        PRIMARY KEY,
        agent       text        NOT NULL,
        email       text,
        created_at  timestamptz NOT NULL,
        expires_at  timestamptz NOT NULL
      );
    `,
  },
  {
    version: 12,
    name: 'events by leg',
    sql: `
      -- The same as SQLite's migration 14 (see there).
      ALTER TABLE events ADD COLUMN leg_id text;
      UPDATE events SET leg_id = body->>'legId' WHERE body ? 'legId';
      CREATE INDEX events_leg ON events (source, leg_id) WHERE leg_id IS NOT NULL;
    `,
  },
  {
    version: 13,
    name: 'leg-only events by age',
    sql: `
      -- The same as SQLite's migration 15 (see there).
      CREATE INDEX events_leg_only ON events (received_at) WHERE call_id IS NULL AND leg_id IS NOT NULL;
    `,
  },
];

export async function migrate(db: Db): Promise<void> {
  const { c, done } = await db.client();
  let failed: unknown;
  try {
    await c.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await c.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)',
    );
    const done = new Set(
      (await c.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map(
        (r) => r.version,
      ),
    );
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      await c.query('BEGIN');
      try {
        await c.query(m.sql);
        await c.query(
          'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())',
          [m.version, m.name],
        );
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK');
        throw err;
      }
    }
  } catch (err) {
    failed = err;
    throw err;
  } finally {
    await c.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {});
    done(failed);
  }
}
