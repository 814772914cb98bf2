// The delivery engine: claims due work from the store (leased, so one call is never sent to the
// same target twice at once), runs the target, and records the outcome: delivered (due again if
// the call changed meanwhile), retry at a persisted time (backoff, Retry-After), or dead letter.
// Everything it knows survives in the store; memory holds only what is in flight.

import { randomUUID } from 'node:crypto';
import type { DeliveryJob } from '../domain/delivery.js';
import type { Store } from '../store/types.js';
import type { Target } from '../targets/types.js';
import { silentLogger, type Logger } from '../telemetry/log.js';
import { DeliveryError } from '../targets/kit/errors.js';
import { backoffMs, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';

export interface EngineTarget {
  target: Target;
  concurrency: number;
  retryForMs: number;
}

export interface EngineOptions {
  log?: Logger;
  /** Lease length: a crashed instance's work is picked up again after this. */
  leaseMs?: number;
  /** Look for due work (settle windows, retries) at least this often. */
  pollMs?: number;
  backoff?: BackoffOptions;
}

export class DeliveryEngine {
  readonly owner = `relay-${randomUUID().slice(0, 8)}`;
  private readonly log: Logger;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly backoff: BackoffOptions;
  private readonly inflight = new Map<string, number>();
  private readonly running = new Set<Promise<void>>();
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
    this.leaseMs = opts.leaseMs ?? 5 * 60_000;
    this.pollMs = opts.pollMs ?? 1000;
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
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
      this.log.error(
        { err: (err as Error).message },
        'claiming deliveries failed; trying again shortly',
      );
    } finally {
      this.pumping = false;
    }
  }

  private launch(t: EngineTarget, job: DeliveryJob): void {
    const name = t.target.name;
    this.inflight.set(name, (this.inflight.get(name) ?? 0) + 1);
    const p = this.run(t, job).finally(() => {
      this.inflight.set(name, this.inflight.get(name)! - 1);
      this.running.delete(p);
      this.kick();
    });
    this.running.add(p);
  }

  private async run(t: EngineTarget, job: DeliveryJob): Promise<void> {
    const what = `delivering call ${job.callId} (${job.source}) to ${t.target.name}`;
    let remote = job.remote;
    try {
      remote = await t.target.deliver({
        job,
        log: this.log,
        save: async (r) => {
          remote = r;
          await this.store.saveRemote(job.id, this.owner, r);
        },
      });
      await this.store.finishDelivery(job.id, this.owner, { ok: true, rev: job.rev, remote });
      this.log.info({ target: t.target.name, call: job.callId, rev: job.rev }, 'delivered');
    } catch (err) {
      const e =
        err instanceof DeliveryError
          ? err
          : new DeliveryError((err as Error).message, { retryable: false, cause: err });
      const message = `${what}: ${e.message}`;
      const failingFor = job.firstFailedAt ? Date.now() - Date.parse(job.firstFailedAt) : 0;
      const dead = !e.retryable || failingFor >= t.retryForMs;
      const retryAt = dead
        ? undefined
        : new Date(
            Date.now() + backoffMs(job.attempts, e.retryAfterMs, this.backoff),
          ).toISOString();
      try {
        await this.store.finishDelivery(job.id, this.owner, {
          ok: false,
          dead,
          retryAt,
          error: message,
          remote,
        });
      } catch (storeErr) {
        // The lease runs out and the work comes back: nothing is lost.
        this.log.error(
          { err: (storeErr as Error).message, target: t.target.name, call: job.callId },
          'recording a delivery failure failed',
        );
      }
      if (dead)
        this.log.error(
          { target: t.target.name, call: job.callId, status: e.status },
          `${message} (dead letter)`,
        );
      else
        this.log.warn(
          { target: t.target.name, call: job.callId, status: e.status, retryAt },
          message,
        );
    }
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
