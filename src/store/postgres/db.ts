// The PostgreSQL store's connection, shared by each of its concerns (inbox.ts, calls.ts, ...): the
// pool, clients that survive their server going away, transactions, and the settings every fold
// reads (the routes, the per-call event limit).

import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { DEFAULT_MAX_EVENTS_PER_CALL } from '../../domain/inbox.js';
import { NO_ROUTING, type Routing } from '../../domain/routing.js';

// bigint ids fit in a JS number for the life of any installation (2^53).
const types = {
  getTypeParser: (oid: number, format?: string) =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text'),
};

export type Q = pg.PoolClient;
export const iso = (d: Date | string | null): string | null =>
  d === null ? null : d instanceof Date ? d.toISOString() : new Date(d).toISOString();

export interface PostgresOptions {
  routing?: Routing;
  /** Pool size per instance. */
  max?: number;
  /** Distinct events a call keeps (domain/inbox.ts). */
  maxEventsPerCall?: number;
}

export class Db {
  readonly pool: pg.Pool;
  routing: Routing;
  readonly maxEvents: number;
  /** This store's id in the notifications its folds send (watch.ts). */
  readonly instance = randomUUID();

  constructor(url: string, opts: PostgresOptions) {
    this.pool = new pg.Pool({
      connectionString: url,
      max: opts.max ?? 10,
      types,
      connectionTimeoutMillis: 5000,
    });
    // An idle client losing its server must not crash the process: the next query reports it.
    this.pool.on('error', () => {});
    this.routing = opts.routing ?? NO_ROUTING;
    this.maxEvents = opts.maxEventsPerCall ?? DEFAULT_MAX_EVENTS_PER_CALL;
  }

  /**
   * A pooled client that survives its server going away: the error reaches the caller, not the
   * process.
   */
  async client(): Promise<{ c: Q; done: (failed?: unknown) => void }> {
    const c = await this.pool.connect();
    const onError = (): void => {};
    c.on('error', onError);
    return {
      c,
      done: (failed) => {
        c.off('error', onError);
        // A client whose transaction failed may hold a dead connection: drop it rather than reuse
        // it.
        c.release(failed instanceof Error ? failed : undefined);
      },
    };
  }

  async tx<T>(fn: (c: Q) => Promise<T>): Promise<T> {
    const { c, done } = await this.client();
    try {
      await c.query('BEGIN');
      const out = await fn(c);
      await c.query('COMMIT');
      done();
      return out;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      done(err);
      throw err;
    }
  }
}
