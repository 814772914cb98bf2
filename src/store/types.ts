// The store contract every backend (SQLite now, PostgreSQL for several instances) fulfils. Each
// method is one transaction; everything that must survive a crash goes through here.

import type { CallRecord } from '../calls/model.js';
import type { MapResult } from '../ingest/adapter.js';
import type { RawRequest, RequestKind } from '../ingest/request.js';

export type InboxState = 'pending' | 'applied' | 'unmapped' | 'ignored';

export interface NewInbox {
  req: RawRequest;
  result: MapResult;
  /** The adapter that mapped it; call records name it as their provider. */
  provider: string;
}

export interface InboxRow {
  id: number;
  source: string;
  provider: string;
  kind: RequestKind;
  receivedAt: string;
  method: string;
  query: string;
  contentType: string | null;
  headers: Record<string, string>;
  body: Buffer;
  state: InboxState;
  rule: string | null;
  reasonCode: string | null;
  reason: string | null;
  replays: number;
}

export interface CallRow {
  record: CallRecord;
  updatedAt: string;
  revision: number;
}

export interface Store {
  readonly backend: 'sqlite' | 'postgres';
  /** Apply numbered migrations that are not applied yet. */
  migrate(): Promise<void>;
  /** Commit received requests (and their mapped events) durably; ids in the same order. */
  insertInbox(batch: NewInbox[]): Promise<number[]>;
  /** Fold the calls touched by up to `limit` pending requests, oldest first; returns how many were applied. */
  applyPending(limit: number): Promise<number>;
  /** Replace a stored request's mapping (after an adapter fix) and refold every call it touches. */
  remap(id: number, result: MapResult, provider: string): Promise<void>;
  getInbox(id: number): Promise<InboxRow | undefined>;
  listInbox(q: { state?: InboxState; limit: number; afterId?: number }): Promise<InboxRow[]>;
  countInbox(): Promise<Record<InboxState, number>>;
  listCalls(q: { limit: number; since?: string; source?: string }): Promise<CallRow[]>;
  getCalls(callId: string, source?: string): Promise<CallRow[]>;
  /** Throws unless a write can be committed now (readiness). */
  checkWritable(): Promise<void>;
  close(): Promise<void>;
}
