// The store contract every backend (SQLite now, PostgreSQL for several instances) fulfils. Each
// method is one transaction; everything that must survive a crash goes through here.

import type { Routing } from '../domain/routing.js';
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
  /**
   * Its last run was a dry run (targets[].dryRun), as written with that run's outcome: a sandbox
   * answered, nothing reached the CRM. Kept with the row, so that renaming the target or turning
   * it real later never makes a sandbox's "delivered" look like a CRM's.
   */
  dryRun: boolean;
}

/**
 * One delivery attempt as an admin reads it: a request the target made to the CRM (or a failure
 * before any request), timed, with the CRM's answer. The engine writes the attempts of a run with
 * the run's outcome; texts are already scrubbed of every configured secret.
 */
export interface NewAttempt {
  /**
   * What the request did: "creating the call engagement"; "delivering" for a failure outside HTTP.
   */
  operation: string;
  /** HTTP method and path (no query string: some CRMs take credentials there), if a request. */
  method: string | null;
  path: string | null;
  startedAt: string;
  durationMs: number;
  /** The CRM's HTTP status; null: no answer (see `error`). */
  status: number | null;
  /** The CRM's request id (x-request-id, x-hubspot-correlation-id, ...), when it sent one. */
  requestId: string | null;
  /**
   * ok: a request that worked; error: one that failed (a quick retry may follow); the last row of a
   * run says how the run ended: delivered, retry (at `retryAt`) or dead.
   */
  result: AttemptResult;
  /** Short, scrubbed error text (null when it worked). */
  error: string | null;
  /** result = retry: when the next try is due. */
  retryAt: string | null;
  /** The body the request carried, kept in dry runs only (targets[].dryRun); scrubbed. */
  sent: string | null;
}

export type AttemptResult = 'ok' | 'error' | 'delivered' | 'retry' | 'dead';

export interface AttemptRow extends NewAttempt {
  id: number;
  deliveryId: number;
  target: string;
  source: string;
  callId: string;
  /** The call revision the run was delivering. */
  rev: number;
}

/** A call, as a console or API looks it up. */
export interface CallKey {
  source: string;
  callId: string;
}

/** Filters for the call list (all optional; combined with AND). */
export interface CallQuery {
  limit: number;
  /** Calls updated at or after this time (ISO). */
  since?: string;
  source?: string;
  direction?: 'inbound' | 'outbound';
  outcome?: 'answered' | 'missed' | 'busy' | 'failed';
  /** The agent extension (record.agent) exactly, or any leg's agent. */
  agent?: string;
  /**
   * Calls any of these extensions (or queues, ring groups) took part in: record.agent, any leg's
   * agent or any entry of `rang` is one of them, exactly. An empty list matches nothing.
   */
  parties?: string[];
  /** Digits that appear in the external number (raw or E.164) or the DID. */
  number?: string;
  /** Calls that started in [from, to) (ISO). */
  from?: string;
  to?: string;
  /** Paging: calls ordered before this one (updatedAt, then source and call id). */
  before?: { updatedAt: string; source: string; callId: string };
}

/** Per target: how much is waiting, what is failing, how old the oldest due work is. */
export interface TargetStats {
  target: string;
  /** Due, never failed since it became due. */
  due: number;
  /** Due again after a failed attempt. */
  retrying: number;
  dead: number;
  done: number;
  /** due_at of the oldest delivery that is due now (null: none). */
  oldestDueAt: string | null;
}

export interface StoreStats {
  /** received_at of the oldest request not folded yet (null: none). */
  oldestPendingAt: string | null;
  inbox: Record<InboxState, number>;
  targets: TargetStats[];
  /**
   * The V8 heap of the thread the store runs on, where it has its own (SQLite): prom-client's
   * process metrics see only the HTTP thread's.
   */
  thread?: { heapUsedBytes: number; heapTotalBytes: number };
}

/** The newest stored request of a source, for the setup page. */
export interface SourceActivity {
  source: string;
  lastId: number;
  lastReceivedAt: string;
  lastState: InboxState;
  lastReasonCode: string | null;
}

/**
 * An agent a CRM has no user for, as deliveries noted it (kit/user-lookup.ts): one per target and
 * sentence, with when it was last noted and on how many calls' runs since `since`.
 */
export interface AgentWithoutUser {
  target: string;
  /** "agent 102 (bob@acme-ofice.cz) is not a HubSpot user: the call has no owner". */
  text: string;
  lastAt: string;
  runs: number;
}

/**
 * The newest webhook a source refused (a stale token, a bad signature, an address not allowed...),
 * for Setup and `callrelay status`. Never the token: `path` is masked.
 */
export interface Refusal {
  /** The source, or UNKNOWN_SOURCE for a URL that names no configured source. */
  source: string;
  at: string;
  status: number;
  /** RELAY_ERR_* */
  code: string;
  /** The answer's message, shortened (no secrets: the catalogue's texts never carry one). */
  reason: string;
  /** The request's path with the token masked, shortened. */
  path: string;
  /** The sender's address (through server.trustProxy); '' when unknown. */
  address: string;
  /** Refusals noted for this source since its first (every instance's). */
  count: number;
}

/** The one row under which refusals of URLs naming no configured source are kept. */
export const UNKNOWN_SOURCE = '(unknown)';

/** One batch of a backfill (Store.backfill). */
export interface BackfillQuery {
  target: string;
  /** Calls that started at or after this (ISO)... */
  since: string;
  /** ...and before this. */
  until?: string;
  /** Where the previous batch ended (exclusive). */
  after?: CallKey;
  limit: number;
  /** Count only: queue nothing. */
  dryRun: boolean;
  /**
   * The target is a dry run (targets[].dryRun) now: a delivery a dry run made counts as one, since
   * queueing it would only send the call to the sandbox again. Else it counts as none.
   */
  sandboxTarget?: boolean;
}

export interface BackfillBatch {
  /** Calls looked at: those the target has not delivered for real (no row, or a dry run's). */
  scanned: number;
  /** Of them, the calls the routes send to the target now: queued unless a dry run. */
  matched: number;
  /** Where the next batch starts; none: this was the last. */
  next?: CallKey;
}

export interface CallRow {
  record: CallRecord;
  updatedAt: string;
  revision: number;
  /** Distinct events past the per-call limit, kept as raw requests only (record.truncated). */
  droppedEvents: number;
}

/** Stored requests by id: `ids`, only these (the requests behind a call); `source`, only this
 * source's; `afterId` pages. */
export interface InboxQuery {
  state?: InboxState;
  limit: number;
  afterId?: number;
  ids?: number[];
  source?: string;
}

export interface Store {
  readonly backend: 'sqlite' | 'postgres';
  /** Apply numbered migrations that are not applied yet. */
  migrate(): Promise<void>;
  /** Route folds from now on by these targets and routes (relay.yaml reloaded). */
  setRouting(routing: Routing): Promise<void>;
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
  /** By id, as the query says. */
  listInbox(q: InboxQuery): Promise<InboxRow[]>;
  /** Per source, its newest stored request. */
  sourceActivity(): Promise<SourceActivity[]>;
  /** Agents the CRMs had no user for in runs since `since`, newest first (the setup page). */
  agentsWithoutUser(q: { since: string; limit: number }): Promise<AgentWithoutUser[]>;
  countInbox(): Promise<Record<InboxState, number>>;
  /** Newest first: updatedAt, then source and call id (the order `before` pages by). */
  listCalls(q: CallQuery): Promise<CallRow[]>;
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
   * dead; the run's attempts are written in the same transaction.
   */
  finishDelivery(
    id: number,
    owner: string,
    outcome: DeliveryOutcome,
    attempts?: NewAttempt[],
  ): Promise<void>;
  /** Attempts, newest first; of one delivery, of one call, or all. */
  listAttempts(q: {
    deliveryId?: number;
    call?: CallKey;
    limit: number;
    beforeId?: number;
  }): Promise<AttemptRow[]>;
  /**
   * Delete up to `limit` attempts that started before `before` (retention, a batch per call so
   * that a big backlog never holds the store long); returns how many.
   */
  pruneAttempts(before: string, limit: number): Promise<number>;
  /** Give up leases (shutdown), so that the work is due again at once; `null`: every lease (a
   * single-instance store at start: whoever held them is gone). */
  releaseDeliveries(owner: string | null): Promise<number>;
  /** By id; `retrying`: due rows that have failed at least once. */
  listDeliveries(q: {
    state?: DeliveryState | 'retrying';
    target?: string;
    limit: number;
    afterId?: number;
  }): Promise<DeliveryRow[]>;
  /** Every delivery of these calls (the call list's badges, a call's page). */
  deliveriesOf(calls: CallKey[]): Promise<DeliveryRow[]>;
  getDelivery(id: number): Promise<DeliveryRow | undefined>;
  /**
   * Retry now: dead deliveries (all of them, or these ids) become due now; with ids, a due one
   * waiting for its next try is due now too. Leased ones are left alone. Returns how many.
   */
  retryDeliveries(ids: number[] | 'dead'): Promise<number>;
  /**
   * Deliver again: done deliveries among `ids` become due now for their call's current revision
   * (the CRM copy is updated in place: the remote ids are kept). Returns how many.
   */
  redeliver(ids: number[]): Promise<number>;
  /**
   * Close calls whose end never came (domain/close.ts): up to `limit` open calls (oldest change
   * first) with no event received at or after `before` and not closed yet each get a close
   * request received at `at`, pending until folded. Idempotent per call across instances (a call
   * is closed once, whoever gets there). Returns the calls closed.
   */
  closeStaleCalls(q: { before: string; at: string; limit: number }): Promise<CallKey[]>;
  /**
   * Deliver calls stored before a target was added (or a route changed): for calls that started in
   * the range and have no delivery row for the target, one due delivery each where the routes send
   * the call there now. One batch in key order; existing rows (done or dead) are never touched, so
   * running it again queues nothing new. A dry run's delivery (done or dead) counts as none unless
   * `sandboxTarget`: it is made due again, and the target, real by then, creates the CRM's copy
   * anew.
   */
  backfill(q: BackfillQuery): Promise<BackfillBatch>;
  /**
   * Retention, one batch: up to `limit` ended calls unchanged since `before` lose their raw
   * requests and events (the record and its deliveries stay; a later refold keeps the record), with
   * the events that name only their legs; up to `limit` legs whose leg-only events no call has and
   * up to `limit` unmapped or ignored requests older than `before` go. Returns how many calls and
   * requests.
   */
  pruneRequests(q: { before: string; limit: number }): Promise<{ calls: number; requests: number }>;
  /** Counts for metrics and the console. */
  stats(): Promise<StoreStats>;
  /** Throws unless a write can be committed now (readiness). */
  checkWritable(): Promise<void>;
  /** A console sign-in, kept so that sign-out ends it on every instance. */
  createSession(s: SessionRow): Promise<void>;
  getSession(id: string): Promise<SessionRow | undefined>;
  /** The session was used at `at` (its idle timeout counts from here). */
  touchSession(id: string, at: string): Promise<void>;
  /** Sign-out. */
  deleteSession(id: string): Promise<void>;
  /** Everyone signed out (a new admin token); returns how many sessions there were. */
  deleteAllSessions(): Promise<number>;
  /**
   * Delete sessions that ended by `now` or were last used before `idleSince`; returns how many.
   */
  pruneSessions(q: { now: string; idleSince: string }): Promise<number>;
  /** A one-time sign-in link for an agent (its id a keyed hash of the link's secret). */
  createSignInLink(x: SignInLinkRow): Promise<void>;
  /**
   * Use a sign-in link: it is deleted whether or not it is still good, so that it works once on
   * every instance; returns whom it was made for (the extension, and the email then) if it had
   * not expired by `now`.
   */
  takeSignInLink(id: string, now: string): Promise<SignInLinkTaken | undefined>;
  /**
   * Keep the newest refusal per source (one row each; an older one never replaces a newer one
   * written by another instance) and add up their counts.
   */
  noteRefusals(rows: Refusal[]): Promise<void>;
  /** Per source, its newest refusal, by source name. */
  refusals(): Promise<Refusal[]>;
  /** Credentials targets obtain at run time, shared by every instance (target_credentials). */
  readonly credentials: CredentialStore;
  /**
   * Stores shared by several instances (PostgreSQL): call `listener` soon after another instance
   * commits a fold (calls changed), and once after a lost connection to hear it is back; returns
   * the unsubscribe. Absent where only this process writes (SQLite).
   */
  watchCalls?(listener: () => void): () => void;
  close(): Promise<void>;
}

/**
 * One target's stored credential: sealed by the target, opaque here. The same shape as targets/'
 * StoredCredential (the store does not import targets/).
 */
export interface CredentialRow {
  value: string;
  /** Bumped on every write. */
  version: number;
  updatedAt: string;
}

/** The same shape as targets/' TargetTokens: what TargetDeps.tokens is given. */
export interface CredentialStore {
  /** The stored credential; undefined when none was written (a lease alone is no credential). */
  get(target: string): Promise<CredentialRow | undefined>;
  /** Write if the stored version is still `expected` (0: none stored yet); false if it moved on. */
  put(target: string, value: string, expected: number): Promise<boolean>;
  /** Take (or renew) the right to refresh for `ms`: false while another owner's lease runs. */
  lease(target: string, owner: string, ms: number): Promise<boolean>;
  /** Give the lease back (only the owner's own). */
  release(target: string, owner: string): Promise<void>;
}

/**
 * A console session as stored: `id` is a keyed hash of the cookie's secret, never the secret, so
 * that the table is no list of ways in.
 */
export interface SessionRow {
  id: string;
  createdAt: string;
  lastSeenAt: string;
  expiresAt: string;
  /** An agent's session: their extension (agents: in relay.yaml). Absent: the admin's. */
  agent?: string;
  /**
   * The agent's directory email at sign-in, lowercased (absent: they had none), so that an
   * extension passed to someone else in agents: does not carry the old person's session over.
   */
  email?: string;
}

/** A one-time sign-in link as stored: the id is a keyed hash of the link's secret. */
export interface SignInLinkRow {
  id: string;
  /** The agent's extension. */
  agent: string;
  /** Their directory email when it was made, lowercased (absent: none), as SessionRow's. */
  email?: string;
  createdAt: string;
  expiresAt: string;
}

/** Whom a used sign-in link was made for. */
export type SignInLinkTaken = Pick<SignInLinkRow, 'agent' | 'email'>;
