// The SQLite store's one connection, shared by its parts (inbox.ts, calls.ts, deliveries.ts,
// retention.ts, admin.ts): opening the file in WAL mode with synchronous=FULL, migrations, the
// settings every part reads, and the guard that refuses writes once the file was lost.

import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { DEFAULT_MAX_EVENTS_PER_CALL } from '../../domain/inbox.js';
import { NO_ROUTING, type Routing } from '../../domain/routing.js';
import { LostDatabaseError } from './marker.js';
import { MIGRATIONS } from './migrations.js';

export interface SqliteOptions {
  busyTimeoutMs?: number;
  /**
   * Cap on the file size: past it, writes fail ("database or disk is full") and requests get 503.
   */
  maxSizeMB?: number;
  /** Routes and target timing: a changed call becomes due work in the same transaction. */
  routing?: Routing;
  /** Distinct events a call keeps (domain/inbox.ts). */
  maxEventsPerCall?: number;
}

export class SqliteConnection {
  readonly path: string;
  readonly db: Database.Database;
  /** Read at each use, so that a reload (setRouting) reaches every part at once. */
  routing: Routing;
  readonly maxEvents: number;
  /** The file this connection opened: another (or none) at `path` later means it was lost. */
  private readonly identity: { dev: number; ino: number } | undefined;
  private lost: LostDatabaseError | undefined;

  constructor(path: string, opts: SqliteOptions = {}) {
    this.path = path;
    this.routing = opts.routing ?? NO_ROUTING;
    this.maxEvents = opts.maxEventsPerCall ?? DEFAULT_MAX_EVENTS_PER_CALL;
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    // A writer waits this long for another process's lock before the request gets 503.
    this.db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? 5000}`);
    this.db.pragma('foreign_keys = ON');
    this.migrate();
    if (path !== ':memory:') {
      const { dev, ino } = statSync(path);
      this.identity = { dev, ino };
    }
    if (opts.maxSizeMB) {
      const pageSize = this.db.pragma('page_size', { simple: true }) as number;
      this.db.pragma(
        `max_page_count = ${Math.max(1, Math.floor((opts.maxSizeMB * 1024 * 1024) / pageSize))}`,
      );
    }
  }

  migrate(): void {
    this.db.exec(
      `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`,
    );
    // BEGIN IMMEDIATE takes the write lock first, so two processes opening one file do not race.
    const run = this.db.transaction(() => {
      const done = new Set(
        this.db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[],
      );
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        this.db.exec(m.sql);
        this.db
          .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
          .run(m.version, m.name, new Date().toISOString());
      }
    });
    run.immediate();
  }

  /**
   * Before each write: the file at `path` must still be the one this connection opened. SQLite in
   * WAL mode goes on committing into a deleted (or replaced) file, and everything acknowledged
   * from then on would vanish with the process. Once lost, every write fails; reads still work.
   */
  assertFile(): void {
    if (this.lost) throw this.lost;
    if (!this.identity) return;
    let seen: { dev: number; ino: number } | undefined;
    try {
      seen = statSync(this.path);
    } catch {
      seen = undefined;
    }
    if (seen && seen.dev === this.identity.dev && seen.ino === this.identity.ino) return;
    this.lost = new LostDatabaseError(
      `the SQLite file ${this.path} was ${seen ? 'replaced' : 'deleted'} while the relay was ` +
        `running; webhooks get 503 from now on. ${this.rescue()} Then restart the relay.`,
    );
    throw this.lost;
  }

  /** A copy of everything this connection can still read (the deleted file's pages and WAL). */
  private rescue(): string {
    const copy = `${this.path}.rescued-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    try {
      this.db.prepare('VACUUM INTO ?').run(copy);
      return `Everything stored so far was copied to ${copy}: move it to ${this.path}.`;
    } catch (err) {
      return (
        `Saving a copy to ${copy} failed (${(err as Error).message}): the data is only in ` +
        `this process now; restore ${this.path} from a backup.`
      );
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
