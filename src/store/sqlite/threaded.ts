// The SQLite store as the server uses it: the same SqliteStore, run on its own worker thread
// (store/sqlite/worker.ts). Calls are messages; Buffers come back as Uint8Arrays and are rewrapped.

import { Worker } from 'node:worker_threads';
import type {
  AgentWithoutUser,
  AttemptRow,
  BackfillBatch,
  BackfillQuery,
  CallKey,
  CallQuery,
  CallRow,
  CredentialRow,
  CredentialStore,
  DeliveryRow,
  DeliveryState,
  InboxRow,
  NewAttempt,
  NewInbox,
  SessionRow,
  SignInLinkRow,
  SignInLinkTaken,
  Refusal,
  SourceActivity,
  Store,
  StoreStats,
  InboxQuery,
} from '../types.js';
import type { MapResult } from '../../domain/request.js';
import type { Call, Reply, WorkerInit } from './worker.js';
import type { DeliveryJob, DeliveryOutcome, RemoteState } from '../../domain/delivery.js';
import type { InboxState } from '../../domain/inbox.js';
import type { Routing } from '../../domain/routing.js';

export class StoreError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.name = 'StoreError';
    this.code = code;
  }
}

// A worker runs JavaScript: when this module runs from source (vitest), use the built worker
// (npm test builds first).
const WORKER_URL = import.meta.url.endsWith('.ts')
  ? new URL('../../../dist/store/sqlite/worker.js', import.meta.url)
  : new URL('./worker.js', import.meta.url);

const toBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const fixRow = (r: InboxRow): InboxRow => ({ ...r, body: toBuffer(r.body) });

export class ThreadedSqliteStore implements Store {
  readonly backend = 'sqlite' as const;
  private readonly worker: Worker;
  private readonly waiting = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private closed = false;
  /** Targets' run-time credentials, on the store's thread like everything else. */
  readonly credentials: CredentialStore = {
    get: (target): Promise<CredentialRow | undefined> => this.call('credentials.get', target),
    put: (target, value, expected): Promise<boolean> =>
      this.call('credentials.put', target, value, expected),
    lease: (target, owner, ms): Promise<boolean> =>
      this.call('credentials.lease', target, owner, ms),
    release: (target, owner): Promise<void> => this.call('credentials.release', target, owner),
  };
  /**
   * Set once the thread is gone: every call fails at once (503s, /readyz fails) instead of waiting.
   */
  private dead: Error | undefined;

  private constructor(worker: Worker) {
    this.worker = worker;
    worker.on('message', (r: Reply) => {
      const w = this.waiting.get(r.id);
      if (!w) return;
      this.waiting.delete(r.id);
      if (r.ok) w.resolve(r.value);
      else w.reject(new StoreError(r.message, r.code));
    });
    worker.on('error', (err) =>
      this.failAll(new StoreError(`the store thread failed: ${err.message}`)),
    );
    worker.on('exit', (code) => this.failAll(new StoreError(`the store thread exited (${code})`)));
  }

  /** Opens the file (and migrates it) on a new thread; rejects if that fails. */
  static open(init: WorkerInit): Promise<ThreadedSqliteStore> {
    const worker = new Worker(WORKER_URL, { workerData: init });
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (message: string, code?: string): void => {
        if (settled) return;
        settled = true;
        reject(new StoreError(`opening ${init.path}: ${message}`, code));
      };
      worker.once('message', (r: Reply) => {
        if (r.ok) {
          settled = true;
          resolve(new ThreadedSqliteStore(worker));
        } else fail(r.message, r.code);
      });
      worker.once('error', (err) => fail(err.message));
      worker.once('exit', (code) => fail(`the store thread exited (${code})`));
    });
  }

  private failAll(err: Error): void {
    if (!this.closed) this.dead ??= err;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }

  private call<T>(method: Call['method'], ...args: unknown[]): Promise<T> {
    return this.callTransfer(method, args, []);
  }

  private callTransfer<T>(
    method: Call['method'],
    args: unknown[],
    transfer: ArrayBuffer[],
  ): Promise<T> {
    if (this.closed) return Promise.reject(new StoreError('the store is closed'));
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, method, args } satisfies Call, transfer);
    });
  }

  migrate(): Promise<void> {
    return this.call('migrate');
  }
  insertInbox(batch: NewInbox[]): Promise<number[]> {
    // The hot path: one JSON string and one transferred buffer of all bodies, which crosses the
    // thread boundary far cheaper than a structured clone of the object graph.
    const bodies = new Uint8Array(batch.reduce((n, b) => n + b.req.body.length, 0));
    let at = 0;
    const meta = batch.map(({ req, result, provider }) => {
      bodies.set(req.body, at);
      at += req.body.length;
      return { req: { ...req, body: req.body.length }, result, provider };
    });
    return this.callTransfer(
      'insertPacked',
      [JSON.stringify(meta), bodies.buffer],
      [bodies.buffer],
    );
  }
  applyPending(limit: number): Promise<number> {
    return this.call('applyPending', limit);
  }
  remap(id: number, result: MapResult, provider: string): Promise<void> {
    return this.call('remap', id, result, provider);
  }
  async getInbox(id: number): Promise<InboxRow | undefined> {
    const r = await this.call<InboxRow | undefined>('getInbox', id);
    return r && fixRow(r);
  }
  async listInbox(q: InboxQuery): Promise<InboxRow[]> {
    return (await this.call<InboxRow[]>('listInbox', q)).map(fixRow);
  }
  agentsWithoutUser(q: { since: string; limit: number }): Promise<AgentWithoutUser[]> {
    return this.call('agentsWithoutUser', q);
  }
  sourceActivity(): Promise<SourceActivity[]> {
    return this.call('sourceActivity');
  }
  countInbox(): Promise<Record<InboxState, number>> {
    return this.call('countInbox');
  }
  listCalls(q: CallQuery): Promise<CallRow[]> {
    return this.call('listCalls', q);
  }
  getCalls(callId: string, source?: string): Promise<CallRow[]> {
    return this.call('getCalls', callId, source);
  }
  claimDeliveries(q: {
    limit: number;
    owner: string;
    leaseMs: number;
    targets?: string[];
  }): Promise<DeliveryJob[]> {
    return this.call('claimDeliveries', q);
  }
  saveRemote(id: number, owner: string, remote: RemoteState): Promise<void> {
    return this.call('saveRemote', id, owner, remote);
  }
  finishDelivery(
    id: number,
    owner: string,
    outcome: DeliveryOutcome,
    attempts?: NewAttempt[],
  ): Promise<void> {
    return this.call('finishDelivery', id, owner, outcome, attempts);
  }
  listAttempts(q: {
    deliveryId?: number;
    call?: CallKey;
    limit: number;
    beforeId?: number;
  }): Promise<AttemptRow[]> {
    return this.call('listAttempts', q);
  }
  pruneAttempts(before: string, limit: number): Promise<number> {
    return this.call('pruneAttempts', before, limit);
  }
  setRouting(routing: Routing): Promise<void> {
    return this.call('setRouting', routing);
  }
  releaseDeliveries(owner: string | null): Promise<number> {
    return this.call('releaseDeliveries', owner);
  }
  listDeliveries(q: {
    state?: DeliveryState | 'retrying';
    target?: string;
    limit: number;
    afterId?: number;
  }): Promise<DeliveryRow[]> {
    return this.call('listDeliveries', q);
  }
  deliveriesOf(calls: CallKey[]): Promise<DeliveryRow[]> {
    return this.call('deliveriesOf', calls);
  }
  getDelivery(id: number): Promise<DeliveryRow | undefined> {
    return this.call('getDelivery', id);
  }
  retryDeliveries(ids: number[] | 'dead'): Promise<number> {
    return this.call('retryDeliveries', ids);
  }
  redeliver(ids: number[]): Promise<number> {
    return this.call('redeliver', ids);
  }
  closeStaleCalls(q: { before: string; at: string; limit: number }): Promise<CallKey[]> {
    return this.call('closeStaleCalls', q);
  }
  pruneRequests(q: {
    before: string;
    limit: number;
  }): Promise<{ calls: number; requests: number }> {
    return this.call('pruneRequests', q);
  }
  backfill(q: BackfillQuery): Promise<BackfillBatch> {
    return this.call('backfill', q);
  }
  stats(): Promise<StoreStats> {
    return this.call('stats');
  }
  checkWritable(): Promise<void> {
    return this.call('checkWritable');
  }
  createSession(x: SessionRow): Promise<void> {
    return this.call('createSession', x);
  }
  getSession(id: string): Promise<SessionRow | undefined> {
    return this.call('getSession', id);
  }
  touchSession(id: string, at: string): Promise<void> {
    return this.call('touchSession', id, at);
  }
  deleteSession(id: string): Promise<void> {
    return this.call('deleteSession', id);
  }
  deleteAllSessions(): Promise<number> {
    return this.call('deleteAllSessions');
  }
  noteRefusals(rows: Refusal[]): Promise<void> {
    return this.call('noteRefusals', rows);
  }
  refusals(): Promise<Refusal[]> {
    return this.call('refusals');
  }
  pruneSessions(q: { now: string; idleSince: string }): Promise<number> {
    return this.call('pruneSessions', q);
  }
  createSignInLink(x: SignInLinkRow): Promise<void> {
    return this.call('createSignInLink', x);
  }
  takeSignInLink(id: string, now: string): Promise<SignInLinkTaken | undefined> {
    return this.call('takeSignInLink', id, now);
  }
  async close(): Promise<void> {
    if (this.closed) return;
    await this.call('close');
    this.closed = true;
    await this.worker.terminate();
  }
}
