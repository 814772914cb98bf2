// The newest refused webhook per source (a stale token, a bad signature, an address not allowed),
// kept in the store for Setup and `callrelay status`. Refusals can come as a flood from anyone, so
// noting one only touches memory (latest wins, counted); the store gets one small write for all
// sources together at most every few seconds, on a timer, never on the request's path.

import type { Redactor } from '../lib/redact.js';
import type { Refusal, Store } from '../store/types.js';
import type { Logger } from '../telemetry/log.js';
import { ThrottledLog } from '../telemetry/throttle.js';

/** Longest path or reason kept: whatever a client puts in a URL, the row stays small. */
const MAX_TEXT = 200;

const short = (s: string): string => (s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT - 1)}…` : s);

export interface RefusalOptions {
  /** At most one store write per this many ms (default 5 s). */
  everyMs?: number;
  log?: Logger;
  /** Every configured secret: a token pasted into the wrong part of a URL is never kept. */
  redact?: Redactor;
  now?: () => number;
}

export class RefusalRecorder {
  private pending = new Map<string, Refusal>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private lastWrite = -Infinity;
  private closed = false;
  private readonly everyMs: number;
  private readonly now: () => number;
  private readonly failures: ThrottledLog | undefined;

  constructor(
    private readonly store: Pick<Store, 'noteRefusals'>,
    private readonly opts: RefusalOptions = {},
  ) {
    this.everyMs = opts.everyMs ?? 5000;
    this.now = opts.now ?? Date.now;
    this.failures = opts.log && new ThrottledLog(opts.log);
  }

  /**
   * A webhook was refused. `source` is a configured source's name, else UNKNOWN_SOURCE (store/
   * types.ts): names in URLs are anybody's to choose, and must not grow the table.
   */
  note(r: Omit<Refusal, 'count' | 'at'> & { at?: string }): void {
    const clean = (s: string): string => short(this.opts.redact ? this.opts.redact.text(s) : s);
    const prev = this.pending.get(r.source);
    this.pending.set(r.source, {
      ...r,
      at: r.at ?? new Date(this.now()).toISOString(),
      reason: clean(r.reason),
      path: clean(r.path),
      address: short(r.address),
      count: (prev?.count ?? 0) + 1,
    });
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.writing || this.closed || !this.pending.size) return;
    // The first refusal in a while is written at once (an admin testing the PBX sees it), later
    // ones wait for the interval.
    const wait = Math.max(0, this.lastWrite + this.everyMs - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, wait);
    this.timer.unref();
  }

  /** Write what is pending now (and wait for a write under way). */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.writing) await this.writing;
    if (!this.pending.size) return;
    const rows = [...this.pending.values()];
    this.pending.clear();
    this.lastWrite = this.now();
    this.writing = this.store.noteRefusals(rows).catch((err: Error) => {
      // Only a note for the console: dropped rather than retried, but said.
      this.failures?.write(
        'warn',
        'refusals',
        { err: err.message },
        'noting refused webhooks in the store failed',
      );
    });
    try {
      await this.writing;
    } finally {
      this.writing = undefined;
      this.schedule();
    }
  }

  /** Shutting down: what is pending is written, nothing is scheduled after. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }
}
