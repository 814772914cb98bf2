// The delivery engine: claims due work from the store (leased, so one call is never sent to the
// same target twice at once), runs the target, and records the outcome: delivered (due again if
// the call changed meanwhile), retry at a persisted time (backoff, Retry-After), or dead letter.
// Everything it knows survives in the store; memory holds only what is in flight. Each run's
// requests are written as attempt rows with its outcome, scrubbed of every configured secret.

import { randomUUID } from 'node:crypto';
import type { DeliveryJob, RemoteState } from '../domain/delivery.js';
import { Redactor } from '../lib/redact.js';
import type { AttemptResult, NewAttempt, Store } from '../store/types.js';
import type { Target } from '../targets/types.js';
import { silentLogger, type Logger } from '../telemetry/log.js';
import { statusClass, type RelayMetrics } from '../telemetry/metrics.js';
import { ThrottledLog } from '../telemetry/throttle.js';
import { DeliveryError } from '../targets/kit/errors.js';
import { traceRequests, type RequestTrace } from '../targets/kit/trace.js';
import { backoffMs, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';

export interface EngineTarget {
  target: Target;
  concurrency: number;
  retryForMs: number;
  /** A sandbox answers its requests (targets[].dryRun): shown as such, never sent. */
  dryRun?: boolean;
}

export interface EngineOptions {
  log?: Logger;
  /** Lease length: a crashed instance's work is picked up again after this. */
  leaseMs?: number;
  /** Look for due work (settle windows, retries) at least this often. */
  pollMs?: number;
  backoff?: BackoffOptions;
  /** Scrubs configured secrets from errors before they are stored or logged. */
  redact?: Redactor;
  metrics?: RelayMetrics;
  /** Called after a run's outcome is stored (live views). */
  onFinished?: () => void;
  /** Attempt rows older than this are deleted (checked hourly); 0 keeps them forever. */
  keepAttemptsMs?: number;
}

/** Longest error text kept in an attempt row or a delivery's last error. */
const MAX_ERROR = 1000;
/** A dry run's request body as kept (call notes are a few KiB; a template could be anything). */
const MAX_SENT = 64 * 1024;
const PRUNE_EVERY_MS = 3600_000;
const PRUNE_BATCH = 1000;

export class DeliveryEngine {
  readonly owner = `relay-${randomUUID().slice(0, 8)}`;
  private readonly log: Logger;
  /** While the store is down each poll fails alike: one line a minute says so. */
  private readonly storeErrors: ThrottledLog;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly backoff: BackoffOptions;
  private readonly redact: Redactor;
  private readonly metrics: RelayMetrics | undefined;
  private readonly keepAttemptsMs: number;
  private readonly onFinished: () => void;
  private lastPrune = 0;
  private readonly inflight = new Map<string, number>();
  private readonly running = new Set<Promise<void>>();
  /** Targets replaced by a reload, closing once their runs are done. */
  private readonly retiring = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private pumping = false;
  private again = false;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly targets: Map<string, EngineTarget>,
    opts: EngineOptions = {},
  ) {
    this.log = opts.log ?? silentLogger;
    this.storeErrors = new ThrottledLog(this.log);
    this.leaseMs = opts.leaseMs ?? 5 * 60_000;
    this.pollMs = opts.pollMs ?? 1000;
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
    this.redact = opts.redact ?? new Redactor([]);
    this.metrics = opts.metrics;
    this.keepAttemptsMs = opts.keepAttemptsMs ?? 30 * 86400_000;
    this.onFinished = opts.onFinished ?? (() => {});
  }

  /**
   * Deliver with these targets from now on (relay.yaml reloaded). Runs under way finish with the
   * target they started with, which is closed once they have.
   */
  setTargets(next: Map<string, EngineTarget>): void {
    const old = [...this.targets.values()];
    this.targets.clear();
    for (const [name, t] of next) this.targets.set(name, t);
    const closing = Promise.allSettled([...this.running]).then(async () => {
      for (const t of old) await t.target.close().catch(() => {});
    });
    this.retiring.add(closing);
    void closing.finally(() => this.retiring.delete(closing));
    if (!this.timer && !this.stopped) this.start();
    this.kick();
  }

  start(): void {
    if (!this.targets.size) return;
    this.timer = setInterval(() => this.kick(), this.pollMs);
    this.timer.unref();
    this.kick();
  }

  /** Something may have become due (a fold just committed): look now. */
  kick(): void {
    if (this.stopped || !this.targets.size) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    setImmediate(() => void this.pump());
  }

  private async pump(): Promise<void> {
    try {
      await this.prune();
      do {
        this.again = false;
        for (const [name, t] of this.targets) {
          const free = t.concurrency - (this.inflight.get(name) ?? 0);
          if (free <= 0 || this.stopped) continue;
          const jobs = await this.store.claimDeliveries({
            limit: free,
            owner: this.owner,
            leaseMs: this.leaseMs,
            targets: [name],
          });
          for (const job of jobs) this.launch(t, job);
        }
      } while (this.again && !this.stopped);
    } catch (err) {
      const message = (err as Error).message;
      this.storeErrors.write(
        'error',
        message,
        { err: message },
        'claiming deliveries failed; trying again shortly',
      );
    } finally {
      this.pumping = false;
    }
  }

  /** Retention of attempt rows: at most hourly, from whichever instance gets there. */
  private async prune(): Promise<void> {
    if (!this.keepAttemptsMs || Date.now() - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = Date.now();
    try {
      const before = new Date(Date.now() - this.keepAttemptsMs).toISOString();
      let n = 0;
      for (;;) {
        const batch = await this.store.pruneAttempts(before, PRUNE_BATCH);
        n += batch;
        if (batch < PRUNE_BATCH || this.stopped) break;
        // Let deliveries and commits go between batches.
        await new Promise((r) => setTimeout(r, 10));
      }
      if (n) this.log.info({ deleted: n }, 'deleted delivery attempts past their retention');
    } catch (err) {
      // Retention waits for the next hour; deliveries go on.
      this.log.warn({ err: (err as Error).message }, 'deleting old delivery attempts failed');
    }
  }

  private launch(t: EngineTarget, job: DeliveryJob): void {
    const name = t.target.name;
    this.inflight.set(name, (this.inflight.get(name) ?? 0) + 1);
    const p = this.run(t, job).finally(() => {
      this.onFinished();
      this.inflight.set(name, this.inflight.get(name)! - 1);
      this.running.delete(p);
      this.kick();
    });
    this.running.add(p);
  }

  private async run(t: EngineTarget, job: DeliveryJob): Promise<void> {
    const name = t.target.name;
    const what = `delivering call ${job.callId} (${job.source}) to ${name}`;
    const trace: RequestTrace[] = [];
    const dryRun = !!t.dryRun;
    const ids = splitRemote(job.remote, dryRun);
    let remote = job.remote;
    let skipped = false;
    try {
      await traceRequests(trace, async () => {
        const mine = await t.target.deliver({
          job: { ...job, remote: ids.mine },
          log: this.log,
          save: async (r) => {
            remote = ids.join(r);
            await this.store.saveRemote(job.id, this.owner, remote);
          },
        });
        // A recipe's `skip:` wrote nothing: done, but told apart in the metrics.
        skipped = typeof mine.skipped === 'string';
        remote = ids.join(mine);
      });
      await this.store.finishDelivery(
        job.id,
        this.owner,
        { ok: true, rev: job.rev, remote, dryRun },
        this.attempts(trace, 'delivered', null, null),
      );
      this.observe(name, trace, skipped ? 'skipped' : 'delivered', null);
      const ended = job.record.endedAt;
      if (ended)
        this.metrics?.deliveryLatency.observe(
          { target: name },
          Math.max(0, Date.now() - Date.parse(ended)) / 1000,
        );
      this.log.info(
        {
          target: name,
          source: job.source,
          call: job.callId,
          rev: job.rev,
          requests: trace.length,
          ...(t.dryRun ? { dryRun: true } : {}),
        },
        t.dryRun ? 'delivered to the sandbox (dry run)' : 'delivered',
      );
    } catch (err) {
      const e =
        err instanceof DeliveryError
          ? err
          : new DeliveryError((err as Error).message, { retryable: false, cause: err });
      const message = this.redact.text(`${what}: ${e.message}`).slice(0, MAX_ERROR);
      const failingFor = job.firstFailedAt ? Date.now() - Date.parse(job.firstFailedAt) : 0;
      const dead = !e.retryable || failingFor >= t.retryForMs;
      const retryAt = dead
        ? undefined
        : new Date(
            Date.now() + backoffMs(job.attempts, e.retryAfterMs, this.backoff),
          ).toISOString();
      const result = dead ? 'dead' : 'retry';
      try {
        await this.store.finishDelivery(
          job.id,
          this.owner,
          { ok: false, dead, retryAt, error: message, remote, dryRun },
          this.attempts(trace, result, message, retryAt ?? null),
        );
      } catch (storeErr) {
        // The lease runs out and the work comes back: nothing is lost.
        this.log.error(
          { err: this.redact.text((storeErr as Error).message), target: name, call: job.callId },
          'recording a delivery failure failed',
        );
      }
      this.observe(name, trace, result, e.status ?? null);
      if (dead)
        this.log.error(
          { target: name, call: job.callId, status: e.status },
          `${message} (dead letter)`,
        );
      else this.log.warn({ target: name, call: job.callId, status: e.status, retryAt }, message);
    }
  }

  /**
   * The run's requests as attempt rows; the last one carries how the run ended. A run that failed
   * before its first request (or after its last one worked) gets a row of its own for that.
   */
  private attempts(
    trace: RequestTrace[],
    result: Extract<AttemptResult, 'delivered' | 'retry' | 'dead'>,
    error: string | null,
    retryAt: string | null,
  ): NewAttempt[] {
    const rows: NewAttempt[] = trace.map((r) => ({
      operation: r.operation,
      method: r.note ? null : r.method,
      path: r.note ? null : r.path,
      startedAt: r.startedAt,
      durationMs: r.durationMs,
      status: r.status,
      requestId: r.requestId,
      // A note (no request) says what went without: the run went on.
      result: r.error === null || r.note ? 'ok' : 'error',
      error: r.error === null ? null : this.redact.text(r.error).slice(0, MAX_ERROR),
      retryAt: null,
      sent: r.sent ? this.redact.text(r.sent).slice(0, MAX_SENT) : null,
    }));
    const last = rows.at(-1);
    if (last && (result === 'delivered' ? last.result === 'ok' : last.result === 'error')) {
      last.result = result;
      last.error = error ?? last.error;
      last.retryAt = retryAt;
    } else {
      rows.push({
        operation: result === 'delivered' ? 'delivered' : 'delivering',
        method: null,
        path: null,
        startedAt: new Date().toISOString(),
        durationMs: 0,
        status: null,
        requestId: null,
        result,
        error,
        retryAt,
        sent: null,
      });
    }
    return rows;
  }

  private observe(
    target: string,
    trace: RequestTrace[],
    outcome: string,
    status: number | null,
  ): void {
    const m = this.metrics;
    if (!m) return;
    let waited = 0;
    for (const r of trace) {
      // Each delivery waited for the limiter itself, but a batch request was made only once.
      waited += r.waitedMs;
      if (r.copy || r.note) continue;
      m.crmRequests.inc({ target, status_class: statusClass(r.status, true) });
      m.crmRequestSeconds.observe({ target }, r.durationMs / 1000);
    }
    if (waited) m.rateLimitWait.inc({ target }, waited / 1000);
    const requests = trace.filter((r) => !r.note);
    const decisive = status ?? requests.at(-1)?.status ?? null;
    m.deliveryAttempts.inc({
      target,
      outcome,
      status_class: statusClass(decisive, requests.length > 0),
    });
  }

  /** Stop claiming, let deliveries under way finish (up to `timeoutMs`), give back the leases. */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.race([
      Promise.allSettled([...this.running]),
      new Promise((r) => setTimeout(r, timeoutMs).unref()),
    ]);
    await this.store.releaseDeliveries(this.owner).catch(() => 0);
    for (const t of this.targets.values()) await t.target.close().catch(() => {});
    await Promise.allSettled([...this.retiring]);
  }

  /** Resolves when no delivery is in flight or being claimed (tests; work due later may remain). */
  async settle(): Promise<void> {
    for (;;) {
      await Promise.allSettled([...this.running]);
      if (this.pumping) {
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      if (!this.running.size) return;
    }
  }
}

/**
 * A sandbox's ids are kept under `sandbox` in the remote state, apart from the CRM's (store
 * migration 10 moved older ones there): a dry run starts from what the sandbox made (an empty
 * account knows no real ids), and a real run from what the CRM has, so that a target turned real
 * creates the CRM's copy anew instead of updating an id only the sandbox ever gave out. `mine` is
 * what the target sees; `join` puts its answer back beside the other side's ids.
 */
export function splitRemote(
  remote: RemoteState,
  dryRun: boolean,
): { mine: RemoteState; join(r: RemoteState): RemoteState } {
  const { sandbox, ...real } = remote;
  if (!dryRun) return { mine: real, join: (r) => r };
  const mine = sandbox && typeof sandbox === 'object' ? (sandbox as RemoteState) : {};
  return { mine, join: (r) => ({ ...real, sandbox: r }) };
}
