// The SQLite store's target credentials (target_credentials): sealed values the targets write with
// a version check, and the lease that lets one process refresh a target's token at a time. Times
// are ISO strings from this machine's clock: every process sharing the file shares the clock.

import type Database from 'better-sqlite3';
import type { CredentialRow, CredentialStore } from '../types.js';
import type { SqliteConnection } from './connection.js';

export class SqliteCredentials implements CredentialStore {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(private readonly conn: SqliteConnection) {
    const db = (this.db = conn.db);
    this.stmts = {
      get: db.prepare(
        `SELECT value, version, updated_at AS updatedAt FROM target_credentials
         WHERE target = ? AND value IS NOT NULL`,
      ),
      // The first write: no row yet, or only a lease's (version 0).
      first: db.prepare(
        `INSERT INTO target_credentials (target, value, version, updated_at) VALUES (?, ?, 1, ?)
         ON CONFLICT (target) DO UPDATE SET value = excluded.value, version = 1,
           updated_at = excluded.updated_at
         WHERE target_credentials.version = 0`,
      ),
      next: db.prepare(
        `UPDATE target_credentials SET value = ?, version = version + 1, updated_at = ?
         WHERE target = ? AND version = ?`,
      ),
      lease: db.prepare(
        `INSERT INTO target_credentials (target, value, version, updated_at, lease_owner, lease_until)
         VALUES (@target, NULL, 0, @now, @owner, @until)
         ON CONFLICT (target) DO UPDATE SET lease_owner = excluded.lease_owner,
           lease_until = excluded.lease_until
         WHERE target_credentials.lease_owner IS NULL
            OR target_credentials.lease_owner = excluded.lease_owner
            OR target_credentials.lease_until <= @now`,
      ),
      release: db.prepare(
        `UPDATE target_credentials SET lease_owner = NULL, lease_until = NULL
         WHERE target = ? AND lease_owner = ?`,
      ),
    };
  }

  async get(target: string): Promise<CredentialRow | undefined> {
    return this.stmts.get.get(target) as CredentialRow | undefined;
  }

  async put(target: string, value: string, expected: number): Promise<boolean> {
    this.conn.assertFile();
    const now = new Date().toISOString();
    const r =
      expected === 0
        ? this.stmts.first.run(target, value, now)
        : this.stmts.next.run(value, now, target, expected);
    return r.changes === 1;
  }

  async lease(target: string, owner: string, ms: number): Promise<boolean> {
    this.conn.assertFile();
    const now = Date.now();
    const r = this.stmts.lease.run({
      target,
      owner,
      now: new Date(now).toISOString(),
      until: new Date(now + ms).toISOString(),
    });
    return r.changes === 1;
  }

  async release(target: string, owner: string): Promise<void> {
    this.conn.assertFile();
    this.stmts.release.run(target, owner);
  }
}
