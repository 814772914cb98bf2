// The multi-instance store: PostgreSQL, shared by any number of relay instances. The same contract
// as the SQLite store (test/store/contract.test.ts runs against both); what differs is how
// instances share the work:
//   - migrations run under an advisory lock, so instances starting together do not race;
//   - pending requests are claimed with FOR UPDATE SKIP LOCKED;
//   - requests are filed under per-call transaction locks, and each call is folded under another
//     one, both taken in sorted order, so two instances never file or fold one call at once (and
//     cannot deadlock);
//   - deliveries are claimed with SKIP LOCKED plus a lease that expires, so a crashed instance's
//     work is picked up by the others.
// This class only assembles the store: each concern is a file of functions over the connection
// (db.ts): inbox.ts, calls.ts, deliveries.ts, retention.ts, admin.ts, and migrations.ts.

import type { DeliveryJob, DeliveryOutcome, RemoteState } from '../../domain/delivery.js';
import type { InboxState } from '../../domain/inbox.js';
import type { MapResult } from '../../domain/request.js';
import type { Routing } from '../../domain/routing.js';
import type {
  AgentWithoutUser,
  AttemptRow,
  BackfillBatch,
  BackfillQuery,
  CallKey,
  CallQuery,
  CallRow,
  DeliveryRow,
  DeliveryState,
  InboxRow,
  NewAttempt,
  NewInbox,
  Refusal,
  SessionRow,
  SignInLinkRow,
  SignInLinkTaken,
  SourceActivity,
  Store,
  StoreStats,
  InboxQuery,
} from '../types.js';
import { Db, type PostgresOptions } from './db.js';
import { migrate } from './migrations.js';
import * as admin from './admin.js';
import * as calls from './calls.js';
import { PostgresCredentials } from './credentials.js';
import * as deliveries from './deliveries.js';
import * as inbox from './inbox.js';
import * as retention from './retention.js';
import { CallWatch } from './watch.js';

export type { PostgresOptions } from './db.js';

export class PostgresStore implements Store {
  readonly backend = 'postgres' as const;
  private readonly db: Db;
  /** Targets' run-time credentials (credentials.ts). */
  readonly credentials: PostgresCredentials;
  /** Other instances' folds (LISTEN/NOTIFY), on a connection of its own while anyone watches. */
  private readonly watch: CallWatch;

  private constructor(url: string, opts: PostgresOptions) {
    this.db = new Db(url, opts);
    this.credentials = new PostgresCredentials(this.db);
    this.watch = new CallWatch(url, this.db.instance);
  }

  static async open(url: string, opts: PostgresOptions = {}): Promise<PostgresStore> {
    const s = new PostgresStore(url, opts);
    await s.migrate();
    return s;
  }

  async setRouting(routing: Routing): Promise<void> {
    this.db.routing = routing;
  }

  async migrate(): Promise<void> {
    await migrate(this.db);
  }

  // inbox.ts: filing requests and events, folding pending ones, replays, the inbox
  insertInbox(batch: NewInbox[]): Promise<number[]> {
    return inbox.insertInbox(this.db, batch);
  }

  applyPending(limit: number): Promise<number> {
    return inbox.applyPending(this.db, limit);
  }

  remap(id: number, result: MapResult, provider: string): Promise<void> {
    return inbox.remap(this.db, id, result, provider);
  }

  getInbox(id: number): Promise<InboxRow | undefined> {
    return inbox.getInbox(this.db, id);
  }

  listInbox(q: InboxQuery): Promise<InboxRow[]> {
    return inbox.listInbox(this.db, q);
  }

  countInbox(): Promise<Record<InboxState, number>> {
    return inbox.countInbox(this.db);
  }

  // calls.ts: the call list (folding is inbox.ts calling calls.ts)
  listCalls(q: CallQuery): Promise<CallRow[]> {
    return calls.listCalls(this.db, q);
  }

  getCalls(callId: string, source?: string): Promise<CallRow[]> {
    return calls.getCalls(this.db, callId, source);
  }

  // deliveries.ts: deliveries and their attempts
  claimDeliveries(q: {
    limit: number;
    owner: string;
    leaseMs: number;
    targets?: string[];
  }): Promise<DeliveryJob[]> {
    return deliveries.claimDeliveries(this.db, q);
  }

  saveRemote(id: number, owner: string, remote: RemoteState): Promise<void> {
    return deliveries.saveRemote(this.db, id, owner, remote);
  }

  finishDelivery(
    id: number,
    owner: string,
    o: DeliveryOutcome,
    attempts: NewAttempt[] = [],
  ): Promise<void> {
    return deliveries.finishDelivery(this.db, id, owner, o, attempts);
  }

  listAttempts(q: {
    deliveryId?: number;
    call?: CallKey;
    limit: number;
    beforeId?: number;
  }): Promise<AttemptRow[]> {
    return deliveries.listAttempts(this.db, q);
  }

  releaseDeliveries(owner: string | null): Promise<number> {
    return deliveries.releaseDeliveries(this.db, owner);
  }

  listDeliveries(q: {
    state?: DeliveryState | 'retrying';
    target?: string;
    limit: number;
    afterId?: number;
  }): Promise<DeliveryRow[]> {
    return deliveries.listDeliveries(this.db, q);
  }

  deliveriesOf(calls: CallKey[]): Promise<DeliveryRow[]> {
    return deliveries.deliveriesOf(this.db, calls);
  }

  getDelivery(id: number): Promise<DeliveryRow | undefined> {
    return deliveries.getDelivery(this.db, id);
  }

  retryDeliveries(ids: number[] | 'dead'): Promise<number> {
    return deliveries.retryDeliveries(this.db, ids);
  }

  redeliver(ids: number[]): Promise<number> {
    return deliveries.redeliver(this.db, ids);
  }

  backfill(q: BackfillQuery): Promise<BackfillBatch> {
    return deliveries.backfill(this.db, q);
  }

  // retention.ts: sweeps over old calls
  closeStaleCalls(q: { before: string; at: string; limit: number }): Promise<CallKey[]> {
    return retention.closeStaleCalls(this.db, q);
  }

  pruneRequests(q: {
    before: string;
    limit: number;
  }): Promise<{ calls: number; requests: number }> {
    return retention.pruneRequests(this.db, q);
  }

  pruneAttempts(before: string, limit: number): Promise<number> {
    return retention.pruneAttempts(this.db, before, limit);
  }

  // admin.ts: stats, the setup page, the heartbeat, sessions, refusals
  stats(): Promise<StoreStats> {
    return admin.stats(this.db);
  }

  agentsWithoutUser(q: { since: string; limit: number }): Promise<AgentWithoutUser[]> {
    return admin.agentsWithoutUser(this.db, q);
  }

  sourceActivity(): Promise<SourceActivity[]> {
    return admin.sourceActivity(this.db);
  }

  checkWritable(): Promise<void> {
    return admin.checkWritable(this.db);
  }

  createSession(x: SessionRow): Promise<void> {
    return admin.createSession(this.db, x);
  }

  getSession(id: string): Promise<SessionRow | undefined> {
    return admin.getSession(this.db, id);
  }

  touchSession(id: string, at: string): Promise<void> {
    return admin.touchSession(this.db, id, at);
  }

  deleteSession(id: string): Promise<void> {
    return admin.deleteSession(this.db, id);
  }

  deleteAllSessions(): Promise<number> {
    return admin.deleteAllSessions(this.db);
  }

  pruneSessions(q: { now: string; idleSince: string }): Promise<number> {
    return admin.pruneSessions(this.db, q);
  }

  createSignInLink(x: SignInLinkRow): Promise<void> {
    return admin.createSignInLink(this.db, x);
  }

  takeSignInLink(id: string, now: string): Promise<SignInLinkTaken | undefined> {
    return admin.takeSignInLink(this.db, id, now);
  }

  noteRefusals(rows: Refusal[]): Promise<void> {
    return admin.noteRefusals(this.db, rows);
  }

  refusals(): Promise<Refusal[]> {
    return admin.refusals(this.db);
  }

  watchCalls(listener: () => void): () => void {
    return this.watch.watch(listener);
  }

  async close(): Promise<void> {
    this.watch.close();
    await this.db.pool.end();
  }
}
