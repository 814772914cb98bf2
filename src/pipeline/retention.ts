// Retention of raw requests: every hour, ended calls unchanged for store.keepRequestsDays lose
// their stored requests and events, and old unmapped or ignored requests go, a small batch per
// transaction with a pause between, so that ingest never waits long behind it. Call records and
// their deliveries (the CRM ids) stay (Store.pruneRequests).

import type { Store } from '../store/types.js';
import { silentLogger, type Logger } from '../telemetry/log.js';

export interface RetentionOptions {
  /** Keep requests this long; 0 keeps them for ever. */
  keepMs: number;
  everyMs?: number;
  batch?: number;
  now?: () => number;
  log?: Logger;
}

export class Retention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<{ calls: number; requests: number }> | undefined;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly opts: RetentionOptions,
  ) {}

  start(): void {
    if (!this.opts.keepMs) return;
    this.timer = setInterval(() => void this.run(), this.opts.everyMs ?? 3600_000);
    this.timer.unref();
  }

  /** Prune everything past the age now, batch after batch (one run at a time). */
  run(): Promise<{ calls: number; requests: number }> {
    this.running ??= this.pruneAll().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pruneAll(): Promise<{ calls: number; requests: number }> {
    const total = { calls: 0, requests: 0 };
    if (!this.opts.keepMs) return total;
    const log = this.opts.log ?? silentLogger;
    const before = new Date((this.opts.now ?? Date.now)() - this.opts.keepMs).toISOString();
    try {
      while (!this.stopped) {
        const n = await this.store.pruneRequests({ before, limit: this.opts.batch ?? 500 });
        total.calls += n.calls;
        total.requests += n.requests;
        if (!n.calls && !n.requests) break;
        // Let waiting commits go first.
        await new Promise((r) => setTimeout(r, 10));
      }
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'deleting old requests failed; next hour again');
    }
    if (total.calls || total.requests)
      log.info({ ...total, before }, 'deleted stored requests past store.keepRequestsDays');
    return total;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
