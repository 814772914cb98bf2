// The PostgreSQL store's target credentials (target_credentials): sealed values the targets write
// with a version check, and the lease that lets one instance refresh a target's token at a time.
// Lease times are the database's clock, the one clock every instance shares.

import type { CredentialRow, CredentialStore } from '../types.js';
import { type Db, iso } from './db.js';

export class PostgresCredentials implements CredentialStore {
  constructor(private readonly db: Db) {}

  async get(target: string): Promise<CredentialRow | undefined> {
    const r = await this.db.pool.query<{ value: string; version: number; updated_at: Date }>(
      `SELECT value, version, updated_at FROM target_credentials
       WHERE target = $1 AND value IS NOT NULL`,
      [target],
    );
    const row = r.rows[0];
    return row && { value: row.value, version: row.version, updatedAt: iso(row.updated_at)! };
  }

  async put(target: string, value: string, expected: number): Promise<boolean> {
    // The first write finds no row, or only a lease's (version 0).
    const r =
      expected === 0
        ? await this.db.pool.query(
            `INSERT INTO target_credentials (target, value, version, updated_at)
             VALUES ($1, $2, 1, now())
             ON CONFLICT (target) DO UPDATE SET value = excluded.value, version = 1,
               updated_at = excluded.updated_at
             WHERE target_credentials.version = 0`,
            [target, value],
          )
        : await this.db.pool.query(
            `UPDATE target_credentials SET value = $2, version = version + 1, updated_at = now()
             WHERE target = $1 AND version = $3`,
            [target, value, expected],
          );
    return r.rowCount === 1;
  }

  async lease(target: string, owner: string, ms: number): Promise<boolean> {
    const r = await this.db.pool.query(
      `INSERT INTO target_credentials (target, value, version, updated_at, lease_owner, lease_until)
       VALUES ($1, NULL, 0, now(), $2, now() + make_interval(secs => $3::double precision / 1000))
       ON CONFLICT (target) DO UPDATE SET lease_owner = excluded.lease_owner,
         lease_until = excluded.lease_until
       WHERE target_credentials.lease_owner IS NULL
          OR target_credentials.lease_owner = excluded.lease_owner
          OR target_credentials.lease_until <= now()`,
      [target, owner, ms],
    );
    return r.rowCount === 1;
  }

  async release(target: string, owner: string): Promise<void> {
    await this.db.pool.query(
      `UPDATE target_credentials SET lease_owner = NULL, lease_until = NULL
       WHERE target = $1 AND lease_owner = $2`,
      [target, owner],
    );
  }
}
