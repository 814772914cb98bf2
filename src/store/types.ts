// The store contract every backend (SQLite now, PostgreSQL for several instances) fulfils. Each
// method is one transaction; everything that must survive a crash goes through here.

import type { DeliveryJob, DeliveryOutcome, RemoteState } from '../domain/delivery.js';
import type { InboxState } from '../domain/inbox.js';
import type { CallRecord } from '../domain/model.js';
import type { MapResult, RawRequest } from '../domain/request.js';

export interface NewInbox {
  req: RawRequest;
  result: MapResult;
  /** The adapter that mapped it; call records name it as their provider. */
  provider: string;
}

/** A stored request: the request as received, and how it was filed. */
export interface InboxRow extends RawRequest {
  id: number;
  /** The adapter that mapped it. */
  provider: string;
  state: InboxState;
  rule: string | null;
  reasonCode: string | null;
  reason: string | null;
  replays: number;
}

export type DeliveryState = 'due' | 'done' | 'dead';

export interface DeliveryRow {
  id: number;
  target: string;
  source: string;
  callId: string;
  state: DeliveryState;
  dueAt: string;
  wantRev: number;
  doneRev: number;
  attempts: number;
  firstFailedAt: string | null;
  lastError: string | null;
  remote: RemoteState;
  updatedAt: string;
}

export interface CallRow {
  record: CallRecord;
  updatedAt: string;
  revision: number;
  /** Distinct events past the per-call limit, kept as raw requests only (record.truncated). */
  droppedEvents: number;
}

export interface Store {
  readonly backend: 'sqlite' | 'postgres';
  /** Apply numbered migrations that are not applied yet. */
  migrate(): Promise<void>;
  /** Commit received requests (and their mapped events) durably; ids in the same order. */
  insertInbox(batch: NewInbox[]): Promise<number[]>;
  /**
   * Fold the calls touched by up to `limit` pending requests, oldest first; returns how many were
   * applied.
   */
  applyPending(limit: number): Promise<number>;
  /** Replace a stored request's mapping (after an adapter fix) and refold every call it touches. */
  remap(id: number, result: MapResult, provider: string): Promise<void>;
  getInbox(id: number): Promise<InboxRow | undefined>;
  listInbox(q: { state?: InboxState; limit: number; afterId?: number }): Promise<InboxRow[]>;
  countInbox(): Promise<Record<InboxState, number>>;
  listCalls(q: { limit: number; since?: string; source?: string }): Promise<CallRow[]>;
  getCalls(callId: string, source?: string): Promise<CallRow[]>;
  /** Lease up to `limit` due deliveries (oldest due first) to `owner` for `leaseMs`. */
  claimDeliveries(q: {
    limit: number;
    owner: string;
    leaseMs: number;
    targets?: string[];
  }): Promise<DeliveryJob[]>;
  /** Record progress of a delivery under way (e.g. the id of an object just created). */
  saveRemote(id: number, owner: string, remote: RemoteState): Promise<void>;
  /**
   * End a leased delivery: delivered (due again if the call changed meanwhile), retry later, or
   * dead.
   */
  finishDelivery(id: number, owner: string, outcome: DeliveryOutcome): Promise<void>;
  /** Give up leases (shutdown), so that the work is due again at once; `null`: every lease (a
   * single-instance store at start: whoever held them is gone). */
  releaseDeliveries(owner: string | null): Promise<number>;
  listDeliveries(q: {
    state?: DeliveryState;
    limit: number;
    afterId?: number;
  }): Promise<DeliveryRow[]>;
  getDelivery(id: number): Promise<DeliveryRow | undefined>;
  /** Make dead deliveries due again (all of them, or these ids); returns how many. */
  retryDeliveries(ids: number[] | 'dead'): Promise<number>;
  /** Throws unless a write can be committed now (readiness). */
  checkWritable(): Promise<void>;
  close(): Promise<void>;
}
