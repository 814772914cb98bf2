// The embedded store: one SQLite file in WAL mode with synchronous=FULL, so a commit is on disk
// (fsync'd) before the relay answers 2xx. better-sqlite3 is synchronous; each method is one
// transaction, and the group committer (store/group-commit.ts) batches requests into one. The
// rules (how a request and its events are filed, how a call is refolded) are the domain's
// (domain/inbox.ts, domain/refold.ts); the parts of this folder only read and write rows, one
// file per concern on one shared connection (connection.ts), and this class puts them together.

import type { Routing } from '../../domain/routing.js';
import type { Store } from '../types.js';
import { SqliteAdmin } from './admin.js';
import { SqliteCalls } from './calls.js';
import { SqliteConnection, type SqliteOptions } from './connection.js';
import { SqliteCredentials } from './credentials.js';
import { SqliteDeliveries } from './deliveries.js';
import { SqliteInbox } from './inbox.js';
import { SqliteRetention } from './retention.js';

export type { SqliteOptions } from './connection.js';

export class SqliteStore implements Store {
  readonly backend = 'sqlite' as const;
  readonly path: string;
  private readonly conn: SqliteConnection;
  private readonly inbox: SqliteInbox;
  private readonly calls: SqliteCalls;
  private readonly deliveries: SqliteDeliveries;
  private readonly retention: SqliteRetention;
  private readonly admin: SqliteAdmin;
  /** Targets' run-time credentials (credentials.ts). */
  readonly credentials: SqliteCredentials;

  constructor(path: string, opts: SqliteOptions = {}) {
    this.path = path;
    this.conn = new SqliteConnection(path, opts);
    this.calls = new SqliteCalls(this.conn);
    // Filing folds the calls it touches, and housekeeping files its closes as requests.
    this.inbox = new SqliteInbox(this.conn, this.calls);
    this.deliveries = new SqliteDeliveries(this.conn);
    this.retention = new SqliteRetention(this.conn, this.inbox);
    this.admin = new SqliteAdmin(this.conn, this.inbox);
    this.credentials = new SqliteCredentials(this.conn);
  }

  async setRouting(routing: Routing): Promise<void> {
    this.conn.routing = routing;
  }

  async migrate(): Promise<void> {
    this.conn.migrate();
  }

  // Filing requests and events, folding, replay (inbox.ts).

  insertInbox(...a: Parameters<Store['insertInbox']>): ReturnType<Store['insertInbox']> {
    return this.inbox.insertInbox(...a);
  }

  applyPending(...a: Parameters<Store['applyPending']>): ReturnType<Store['applyPending']> {
    return this.inbox.applyPending(...a);
  }

  remap(...a: Parameters<Store['remap']>): ReturnType<Store['remap']> {
    return this.inbox.remap(...a);
  }

  getInbox(...a: Parameters<Store['getInbox']>): ReturnType<Store['getInbox']> {
    return this.inbox.getInbox(...a);
  }

  listInbox(...a: Parameters<Store['listInbox']>): ReturnType<Store['listInbox']> {
    return this.inbox.listInbox(...a);
  }

  countInbox(...a: Parameters<Store['countInbox']>): ReturnType<Store['countInbox']> {
    return this.inbox.countInbox(...a);
  }

  // Calls (calls.ts).

  listCalls(...a: Parameters<Store['listCalls']>): ReturnType<Store['listCalls']> {
    return this.calls.listCalls(...a);
  }

  getCalls(...a: Parameters<Store['getCalls']>): ReturnType<Store['getCalls']> {
    return this.calls.getCalls(...a);
  }

  // Deliveries, attempts and backfill (deliveries.ts).

  claimDeliveries(
    ...a: Parameters<Store['claimDeliveries']>
  ): ReturnType<Store['claimDeliveries']> {
    return this.deliveries.claimDeliveries(...a);
  }

  saveRemote(...a: Parameters<Store['saveRemote']>): ReturnType<Store['saveRemote']> {
    return this.deliveries.saveRemote(...a);
  }

  finishDelivery(...a: Parameters<Store['finishDelivery']>): ReturnType<Store['finishDelivery']> {
    return this.deliveries.finishDelivery(...a);
  }

  listAttempts(...a: Parameters<Store['listAttempts']>): ReturnType<Store['listAttempts']> {
    return this.deliveries.listAttempts(...a);
  }

  releaseDeliveries(
    ...a: Parameters<Store['releaseDeliveries']>
  ): ReturnType<Store['releaseDeliveries']> {
    return this.deliveries.releaseDeliveries(...a);
  }

  listDeliveries(...a: Parameters<Store['listDeliveries']>): ReturnType<Store['listDeliveries']> {
    return this.deliveries.listDeliveries(...a);
  }

  deliveriesOf(...a: Parameters<Store['deliveriesOf']>): ReturnType<Store['deliveriesOf']> {
    return this.deliveries.deliveriesOf(...a);
  }

  getDelivery(...a: Parameters<Store['getDelivery']>): ReturnType<Store['getDelivery']> {
    return this.deliveries.getDelivery(...a);
  }

  retryDeliveries(
    ...a: Parameters<Store['retryDeliveries']>
  ): ReturnType<Store['retryDeliveries']> {
    return this.deliveries.retryDeliveries(...a);
  }

  redeliver(...a: Parameters<Store['redeliver']>): ReturnType<Store['redeliver']> {
    return this.deliveries.redeliver(...a);
  }

  backfill(...a: Parameters<Store['backfill']>): ReturnType<Store['backfill']> {
    return this.deliveries.backfill(...a);
  }

  // Retention and housekeeping (retention.ts).

  pruneRequests(...a: Parameters<Store['pruneRequests']>): ReturnType<Store['pruneRequests']> {
    return this.retention.pruneRequests(...a);
  }

  pruneAttempts(...a: Parameters<Store['pruneAttempts']>): ReturnType<Store['pruneAttempts']> {
    return this.retention.pruneAttempts(...a);
  }

  closeStaleCalls(
    ...a: Parameters<Store['closeStaleCalls']>
  ): ReturnType<Store['closeStaleCalls']> {
    return this.retention.closeStaleCalls(...a);
  }

  // Sessions, refusals, stats and activity (admin.ts).

  stats(...a: Parameters<Store['stats']>): ReturnType<Store['stats']> {
    return this.admin.stats(...a);
  }

  agentsWithoutUser(
    ...a: Parameters<Store['agentsWithoutUser']>
  ): ReturnType<Store['agentsWithoutUser']> {
    return this.admin.agentsWithoutUser(...a);
  }

  sourceActivity(...a: Parameters<Store['sourceActivity']>): ReturnType<Store['sourceActivity']> {
    return this.admin.sourceActivity(...a);
  }

  checkWritable(...a: Parameters<Store['checkWritable']>): ReturnType<Store['checkWritable']> {
    return this.admin.checkWritable(...a);
  }

  createSession(...a: Parameters<Store['createSession']>): ReturnType<Store['createSession']> {
    return this.admin.createSession(...a);
  }

  getSession(...a: Parameters<Store['getSession']>): ReturnType<Store['getSession']> {
    return this.admin.getSession(...a);
  }

  touchSession(...a: Parameters<Store['touchSession']>): ReturnType<Store['touchSession']> {
    return this.admin.touchSession(...a);
  }

  deleteSession(...a: Parameters<Store['deleteSession']>): ReturnType<Store['deleteSession']> {
    return this.admin.deleteSession(...a);
  }

  deleteAllSessions(
    ...a: Parameters<Store['deleteAllSessions']>
  ): ReturnType<Store['deleteAllSessions']> {
    return this.admin.deleteAllSessions(...a);
  }

  pruneSessions(...a: Parameters<Store['pruneSessions']>): ReturnType<Store['pruneSessions']> {
    return this.admin.pruneSessions(...a);
  }

  createSignInLink(
    ...a: Parameters<Store['createSignInLink']>
  ): ReturnType<Store['createSignInLink']> {
    return this.admin.createSignInLink(...a);
  }

  takeSignInLink(...a: Parameters<Store['takeSignInLink']>): ReturnType<Store['takeSignInLink']> {
    return this.admin.takeSignInLink(...a);
  }

  noteRefusals(...a: Parameters<Store['noteRefusals']>): ReturnType<Store['noteRefusals']> {
    return this.admin.noteRefusals(...a);
  }

  refusals(...a: Parameters<Store['refusals']>): ReturnType<Store['refusals']> {
    return this.admin.refusals(...a);
  }

  async close(): Promise<void> {
    this.conn.close();
  }
}
