// SQLite migrations: numbered and append-only. Never edit one that has shipped; add the next.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'inbox, events, calls',
    sql: `
      -- Every accepted request, byte for byte, before the sender gets its 2xx.
      CREATE TABLE inbox (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        source        TEXT    NOT NULL,
        provider      TEXT    NOT NULL,
        kind          TEXT    NOT NULL,
        received_at   TEXT    NOT NULL,
        method        TEXT    NOT NULL,
        query         TEXT    NOT NULL,
        content_type  TEXT,
        headers       TEXT    NOT NULL,
        body          BLOB    NOT NULL,
        state         TEXT    NOT NULL CHECK (state IN ('pending', 'applied', 'unmapped', 'ignored')),
        rule          TEXT,
        reason_code   TEXT,
        reason        TEXT,
        replays       INTEGER NOT NULL DEFAULT 0,
        applied_at    TEXT
      );
      CREATE INDEX inbox_pending ON inbox (id) WHERE state = 'pending';
      CREATE INDEX inbox_state ON inbox (state, id);

      -- Canonical events mapped from an inbox row (0..n per row).
      CREATE TABLE events (
        inbox_id     INTEGER NOT NULL REFERENCES inbox (id),
        idx          INTEGER NOT NULL,
        source       TEXT    NOT NULL,
        provider     TEXT    NOT NULL,
        call_id      TEXT,
        channel_id   TEXT,
        type         TEXT    NOT NULL,
        key          TEXT    NOT NULL,
        received_at  TEXT    NOT NULL,
        body         TEXT    NOT NULL,
        PRIMARY KEY (inbox_id, idx)
      );
      CREATE INDEX events_call ON events (source, call_id);
      CREATE INDEX events_origin ON events (source, channel_id) WHERE type = 'originated';

      -- One folded record per call; revision counts real changes.
      CREATE TABLE calls (
        source      TEXT    NOT NULL,
        call_id     TEXT    NOT NULL,
        channel_id  TEXT,
        status      TEXT    NOT NULL,
        started_at  TEXT    NOT NULL,
        updated_at  TEXT    NOT NULL,
        revision    INTEGER NOT NULL,
        record      TEXT    NOT NULL,
        PRIMARY KEY (source, call_id)
      );
      CREATE INDEX calls_updated ON calls (updated_at);
      CREATE INDEX calls_channel ON calls (source, channel_id) WHERE channel_id IS NOT NULL;

      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    `,
  },
  {
    version: 2,
    name: 'deliveries',
    sql: `
      -- One row per (target, call): what is due, what was delivered, what the CRM calls it.
      CREATE TABLE deliveries (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        target           TEXT    NOT NULL,
        source           TEXT    NOT NULL,
        call_id          TEXT    NOT NULL,
        state            TEXT    NOT NULL CHECK (state IN ('due', 'done', 'dead')),
        due_at           TEXT    NOT NULL,
        want_rev         INTEGER NOT NULL,
        done_rev         INTEGER NOT NULL DEFAULT 0,
        attempts         INTEGER NOT NULL DEFAULT 0,
        first_failed_at  TEXT,
        last_error       TEXT,
        lease_owner      TEXT,
        lease_until      TEXT,
        remote           TEXT    NOT NULL DEFAULT '{}',
        updated_at       TEXT    NOT NULL,
        UNIQUE (target, source, call_id)
      );
      CREATE INDEX deliveries_due ON deliveries (due_at) WHERE state = 'due';
      CREATE INDEX deliveries_state ON deliveries (state, id);
    `,
  },
  {
    version: 3,
    name: 'repeats as links, per-call event limit, record fingerprints',
    sql: `
      -- An event whose content is already stored for the source is stored once: a request that
      -- repeats it links to it ('copy'), so that a replay can hand the event over. Events past a
      -- call's limit are linked as 'dropped' (kept in their raw request only).
      CREATE INDEX events_key_migrating ON events (source, key);
      CREATE TABLE event_links (
        inbox_id  INTEGER NOT NULL REFERENCES inbox (id),
        idx       INTEGER NOT NULL,
        source    TEXT    NOT NULL,
        call_id   TEXT,
        key       TEXT    NOT NULL,
        kind      TEXT    NOT NULL CHECK (kind IN ('copy', 'dropped')),
        PRIMARY KEY (inbox_id, idx)
      );
      INSERT INTO event_links (inbox_id, idx, source, call_id, key, kind)
        SELECT e.inbox_id, e.idx, e.source, e.call_id, e.key, 'copy' FROM events e
        WHERE EXISTS (SELECT 1 FROM events f WHERE f.source = e.source AND f.key = e.key
                      AND (f.inbox_id < e.inbox_id OR (f.inbox_id = e.inbox_id AND f.idx < e.idx)));
      DELETE FROM events
        WHERE EXISTS (SELECT 1 FROM event_links l WHERE l.inbox_id = events.inbox_id AND l.idx = events.idx);
      DROP INDEX events_key_migrating;
      CREATE UNIQUE INDEX events_key ON events (source, key);
      CREATE INDEX event_links_key ON event_links (source, key);
      -- Calls by any channel their events name (a click-to-call origin finds them all).
      CREATE INDEX events_channel ON events (source, channel_id) WHERE channel_id IS NOT NULL;

      -- Per call: distinct events stored, and events dropped over the limit.
      CREATE TABLE call_stats (
        source   TEXT    NOT NULL,
        call_id  TEXT    NOT NULL,
        events   INTEGER NOT NULL DEFAULT 0,
        dropped  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (source, call_id)
      );
      INSERT INTO call_stats (source, call_id, events)
        SELECT source, call_id, count(*) FROM events WHERE call_id IS NOT NULL GROUP BY source, call_id;

      -- The stored record in one value (domain/refold.ts): an unchanged fold writes nothing.
      ALTER TABLE calls ADD COLUMN fingerprint TEXT;
    `,
  },
  {
    version: 4,
    name: 'delivery attempts, call pages, per-source and per-call lookups',
    sql: `
      -- Each request a delivery run made to a CRM (or its failure before any), written with the
      -- run's outcome. The call's key is copied so that a call's attempts are one index range.
      CREATE TABLE delivery_attempts (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id  INTEGER NOT NULL REFERENCES deliveries (id),
        target       TEXT    NOT NULL,
        source       TEXT    NOT NULL,
        call_id      TEXT    NOT NULL,
        rev          INTEGER NOT NULL,
        operation    TEXT    NOT NULL,
        method       TEXT,
        path         TEXT,
        started_at   TEXT    NOT NULL,
        duration_ms  INTEGER NOT NULL,
        status       INTEGER,
        request_id   TEXT,
        result       TEXT    NOT NULL CHECK (result IN ('ok', 'error', 'delivered', 'retry', 'dead')),
        error        TEXT,
        retry_at     TEXT
      );
      CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);
      CREATE INDEX delivery_attempts_call ON delivery_attempts (source, call_id, id);
      CREATE INDEX delivery_attempts_started ON delivery_attempts (started_at);

      -- The call list pages by (updated_at, source, call_id): one index range per page. It
      -- covers what calls_updated did.
      CREATE INDEX calls_page ON calls (updated_at, source, call_id);
      DROP INDEX calls_updated;

      -- A source's newest request is one seek (sourceActivity).
      CREATE INDEX inbox_source ON inbox (source, id);

      -- The deliveries of a call (the call list's badges), and per-target counts read from the
      -- index alone (stats).
      CREATE INDEX deliveries_call ON deliveries (source, call_id);
      CREATE INDEX deliveries_target ON deliveries (target, state, attempts);
    `,
  },
  {
    version: 5,
    name: 'open calls by last change',
    sql: `
      -- The sweep for calls whose end never came (closeStaleCalls) reads open calls only, oldest
      -- change first: a small index, as calls leave it when they end.
      CREATE INDEX calls_open ON calls (updated_at, source, call_id) WHERE status <> 'ended';
    `,
  },
  {
    version: 6,
    name: 'retention of raw requests',
    sql: `
      -- When a call's raw requests and events were deleted (retention), its record stays and a
      -- refold leaves it as it is.
      ALTER TABLE calls ADD COLUMN pruned_at TEXT;
      -- Retention reads ended calls not pruned yet, oldest change first.
      CREATE INDEX calls_prunable ON calls (updated_at) WHERE status = 'ended' AND pruned_at IS NULL;
      -- The requests of a call are found through its events and links.
      CREATE INDEX event_links_call ON event_links (source, call_id);
    `,
  },
  {
    version: 7,
    name: 'bodies of dry-run requests',
    sql: `
      -- A dry run (targets[].dryRun) keeps the body each request would have sent, for the admin
      -- to read; real deliveries leave it NULL.
      ALTER TABLE delivery_attempts ADD COLUMN sent TEXT;
    `,
  },
  {
    version: 8,
    name: 'event keys indexed by call',
    sql: `
      -- An event's content key is a hash: indexed first, every new event landed on a random page
      -- of the index, and an insert cost more as the file grew (55 -> 75 us per request over
      -- 360,000 requests). The key names the call it belongs to (the call id is part of the
      -- content), so uniqueness by call and key is the same rule, and new calls' entries land
      -- together at the end. coalesce: an event of no call is still unique among those.
      DROP INDEX events_key;
      CREATE UNIQUE INDEX events_key ON events (source, coalesce(call_id, ''), key);
    `,
  },
  {
    version: 9,
    name: 'console sessions',
    sql: `
      -- Console sign-ins, so that a sign-out ends one on the server (not only in the browser).
      -- id is a keyed hash of the cookie's secret; a new admin token makes every old one unfindable.
      CREATE TABLE sessions (
        id            TEXT PRIMARY KEY,
        created_at    TEXT NOT NULL,
        last_seen_at  TEXT NOT NULL,
        expires_at    TEXT NOT NULL
      );
      CREATE INDEX sessions_expires ON sessions (expires_at);
    `,
  },
  {
    version: 10,
    name: 'dry runs kept with the delivery',
    sql: `
      -- Whether a delivery's last run was a dry run (targets[].dryRun), written with its outcome:
      -- the "dry run" mark shows from the row, whatever the target has become since, and a
      -- backfill sends such a call for real. Rows from before: a run is a dry run when its last
      -- write kept its body (only dry runs keep them).
      ALTER TABLE deliveries ADD COLUMN dry_run INTEGER NOT NULL DEFAULT 0 CHECK (dry_run IN (0, 1));
      UPDATE deliveries SET dry_run = 1
        WHERE (SELECT a.sent IS NOT NULL FROM delivery_attempts a
               WHERE a.delivery_id = deliveries.id AND a.method IN ('POST', 'PUT', 'PATCH')
               ORDER BY a.id DESC LIMIT 1);
      -- A sandbox's ids live under "sandbox" in remote, apart from the CRM's: a target that
      -- sends for real never updates (or refers to) an object only the sandbox made.
      UPDATE deliveries SET remote = json_object('sandbox', json(remote))
        WHERE dry_run = 1 AND remote <> '{}';
      -- Agents the CRM has no user for, as deliveries noted them (the setup page lists them).
      CREATE INDEX delivery_attempts_no_user ON delivery_attempts (started_at)
        WHERE operation = 'finding the agent''s CRM user';
    `,
  },
  {
    version: 11,
    name: 'refused webhooks',
    sql: `
      -- The newest refused webhook per source (Setup, callrelay status): one row each, rewritten
      -- at most every few seconds however many requests are refused (http/refusals.ts).
      CREATE TABLE refusals (
        source   TEXT    PRIMARY KEY,
        at       TEXT    NOT NULL,
        status   INTEGER NOT NULL,
        code     TEXT    NOT NULL,
        reason   TEXT    NOT NULL,
        path     TEXT    NOT NULL,
        address  TEXT    NOT NULL,
        count    INTEGER NOT NULL
      );
    `,
  },
  {
    version: 12,
    name: 'target credentials',
    sql: `
      -- Credentials targets obtain at run time (OAuth access tokens, a rotated refresh token),
      -- sealed by the target with a key from its configured secret: the store keeps bytes it
      -- cannot open. version moves on every write (a write from an older version loses); the
      -- lease lets one instance refresh at a time, and expires if its holder died. A row may hold
      -- only a lease (value NULL, version 0) while the first token is fetched.
      CREATE TABLE target_credentials (
        target       TEXT    PRIMARY KEY,
        value        TEXT,
        version      INTEGER NOT NULL,
        updated_at   TEXT    NOT NULL,
        lease_owner  TEXT,
        lease_until  TEXT
      );
    `,
  },
  {
    version: 13,
    name: 'agent sessions and sign-in links',
    sql: `
      -- An agent's session names their extension (NULL: the admin's); the console and the API
      -- take only the admin's, the agent page only an agent's.
      ALTER TABLE sessions ADD COLUMN agent TEXT;
      -- And the person: their directory email at sign-in, lowercased (NULL: none), so that an
      -- extension given to someone else does not hand them the old person's session.
      ALTER TABLE sessions ADD COLUMN agent_email TEXT;
      -- One-time sign-in links the admin sends an agent: deleted when used (or once expired), so
      -- that one works once on every instance. id is a keyed hash of the link's secret; email as
      -- sessions.agent_email.
      CREATE TABLE sign_in_links (
        id          TEXT PRIMARY KEY,
        agent       TEXT NOT NULL,
        email       TEXT,
        created_at  TEXT NOT NULL,
        expires_at  TEXT NOT NULL
      );
    `,
  },
  {
    version: 14,
    name: 'events by leg',
    sql: `
      -- A recording or analysis may name only its leg (no call id, so call_id is NULL, as on an
      -- origin): it joins every call of its source with an event on that leg, whichever arrives
      -- first (domain/refold.ts joinsByLeg). Every event keeps its leg; older rows from their JSON.
      ALTER TABLE events ADD COLUMN leg_id TEXT;
      UPDATE events SET leg_id = json_extract(body, '$.legId')
        WHERE json_extract(body, '$.legId') IS NOT NULL;
      -- Both ways: the calls with an event on a leg (for a new leg-only event), and the leg-only
      -- events of a call's legs (its refold).
      CREATE INDEX events_leg ON events (source, leg_id) WHERE leg_id IS NOT NULL;
    `,
  },
  {
    version: 15,
    name: 'leg-only events by age',
    sql: `
      -- Retention ages out leg-only events that no call has (store/queries.ts RETENTION_SQL
      -- strayLegs), oldest first: a small index, as only they have a leg and no call.
      CREATE INDEX events_leg_only ON events (received_at) WHERE call_id IS NULL AND leg_id IS NOT NULL;
    `,
  },
];
