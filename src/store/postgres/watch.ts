// Folds committed by other instances sharing the database, as they happen: each fold's transaction
// sends one NOTIFY on CALLS_CHANNEL (calls.ts), carrying the instance's id so that an instance
// skips its own (it knows those already). One dedicated connection LISTENs while anyone watches,
// and comes back after a drop (a restarted or failed-over server); since notifications sent
// meanwhile are lost, watchers hear one change once it is back.

import pg from 'pg';

/** The channel folds notify on. */
export const CALLS_CHANNEL = 'callrelay_calls';
/** Reconnect after a drop: first after this, doubling up to MAX_RETRY_MS. */
const FIRST_RETRY_MS = 200;
const MAX_RETRY_MS = 5000;

type Listener = () => void;

export class CallWatch {
  private readonly listeners = new Set<Listener>();
  private client: pg.Client | undefined;
  private retry: NodeJS.Timeout | undefined;
  private retryMs = FIRST_RETRY_MS;
  /** Bumped when a connection is given up: a late callback of an old one is ignored. */
  private generation = 0;
  private closed = false;

  constructor(
    private readonly url: string,
    /** This instance's id: its own notifications are skipped. */
    private readonly instance: string,
  ) {}

  /** Call `listener` whenever another instance commits a fold; returns the unsubscribe. */
  watch(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.listeners.size === 1 && !this.closed) this.connect(false);
    return () => {
      if (!this.listeners.delete(listener) || this.listeners.size) return;
      this.stop();
    };
  }

  /** Drops the connection and any retry; `watch` reconnects. */
  private stop(): void {
    this.generation++;
    clearTimeout(this.retry);
    this.retry = undefined;
    const c = this.client;
    this.client = undefined;
    void c?.end().catch(() => {});
  }

  private emit(): void {
    for (const l of [...this.listeners]) {
      try {
        l();
      } catch {
        // A watcher's failure is its own.
      }
    }
  }

  private connect(again: boolean): void {
    const gen = ++this.generation;
    const c = new pg.Client({
      connectionString: this.url,
      application_name: 'callrelay listen',
      connectionTimeoutMillis: 5000,
      // A half-open connection (a server gone without a word) is found and replaced.
      keepAlive: true,
    });
    this.client = c;
    const lost = (): void => {
      if (gen !== this.generation) return;
      this.generation++;
      this.client = undefined;
      void c.end().catch(() => {});
      if (this.closed || !this.listeners.size) return;
      this.retry = setTimeout(() => this.connect(true), this.retryMs);
      this.retry.unref();
      this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    };
    c.on('error', lost);
    c.on('end', lost);
    c.on('notification', (msg) => {
      if (gen === this.generation && msg.channel === CALLS_CHANNEL && msg.payload !== this.instance)
        this.emit();
    });
    c.connect()
      .then(() => c.query(`LISTEN ${CALLS_CHANNEL}`))
      .then(
        () => {
          if (gen !== this.generation) return;
          this.retryMs = FIRST_RETRY_MS;
          // Whatever was committed while no one listened.
          if (again) this.emit();
        },
        () => lost(),
      );
  }

  close(): void {
    this.closed = true;
    this.listeners.clear();
    this.stop();
  }
}
