// Calls whose end never came: every minute, the open calls without an event for
// calls.closeAfterMin get the relay's close (domain/close.ts), filed by the store a batch at a
// time, and the pipeline folds them like any request; they are then delivered like any ended
// call. Each batch is one transaction, so a crash mid-sweep leaves a call closed or not, never
// half; the next sweep (on any instance) goes on. Several instances sweep at once without closing
// a call twice: the store's rule (Store.closeStaleCalls).

import type { Store } from '../store/types.js';
import { silentLogger, type Logger } from '../telemetry/log.js';
import type { RelayMetrics } from '../telemetry/metrics.js';

export interface CloserOptions {
  /** Close a call after this long without events; 0 never closes one. */
  closeAfterMs: number;
  /** How often to look (default every minute). */
  everyMs?: number;
  /** Calls closed per transaction. */
  batch?: number;
  /** The clock (tests move it forward instead of waiting hours). */
  now?: () => number;
  log?: Logger;
  metrics?: RelayMetrics;
  /** Called after closes committed: the pipeline folds them. */
  onClosed?: () => void;
}

export class CallCloser {
  private readonly everyMs: number;
  private readonly batch: number;
  private readonly now: () => number;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly opts: CloserOptions,
  ) {
    this.everyMs = opts.everyMs ?? 60_000;
    this.batch = opts.batch ?? 50;
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? silentLogger;
  }

  start(): void {
    if (!this.opts.closeAfterMs) return;
    this.timer = setInterval(() => void this.sweep(), this.everyMs);
    this.timer.unref();
  }

  /** Close every call silent for too long now; resolves with how many (one sweep at a time). */
  sweep(): Promise<number> {
    this.running ??= this.closeAll().finally(() => (this.running = undefined));
    return this.running;
  }

  private async closeAll(): Promise<number> {
    if (!this.opts.closeAfterMs) return 0;
    let total = 0;
    try {
      while (!this.stopped) {
        const at = this.now();
        const closed = await this.store.closeStaleCalls({
          before: new Date(at - this.opts.closeAfterMs).toISOString(),
          at: new Date(at).toISOString(),
          limit: this.batch,
        });
        if (!closed.length) break;
        total += closed.length;
        for (const k of closed) this.opts.metrics?.callsClosed.inc({ source: k.source });
        this.opts.onClosed?.();
        if (closed.length < this.batch) break;
      }
    } catch (err) {
      // The calls stay open until the next sweep; nothing is lost.
      this.log.warn({ err: (err as Error).message }, 'closing calls without an end failed');
    }
    if (total)
      this.log.info(
        { closed: total, afterMin: this.opts.closeAfterMs / 60_000 },
        'closed calls whose end was never reported',
      );
    return total;
  }

  /** No more sweeps; resolves when one under way has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
