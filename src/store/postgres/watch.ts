// Folds committed by other instances sharing the database, as they happen: each fold's transaction
// sends one NOTIFY on CALLS_CHANNEL (calls.ts), carrying the instance's id so that an instance
// skips its own (it knows those already). One dedicated connection LISTENs while anyone watches,
// and comes back after a drop (a restarted or failed-over server); since notifications sent
// meanwhile are lost, watchers hear one change once it is back. A connection that dies without a
// word (a firewall or NAT dropping it, a host gone) is found by a ping that goes unanswered: TCP
// keepalive alone would take the OS's probes, some eleven minutes on Linux by default.

import pg from 'pg';

/** The channel folds notify on. */
export const CALLS_CHANNEL = 'callrelay_calls';
/** Reconnect after a drop: first after this, doubling up to MAX_RETRY_MS. */
const FIRST_RETRY_MS = 200;
const MAX_RETRY_MS = 5000;
/** While listening, the connection is asked a trivial query this often... */
const PING_MS = 5000;
/** ...and replaced when the answer takes longer than this. */
const PING_ANSWER_MS = 5000;

/** How often the LISTEN connection is checked (tests make it quicker). */
export interface WatchTiming {
  pingMs?: number;
  pingAnswerMs?: number;
}

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
    private readonly timing: WatchTiming = {},
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
      // The OS probes an idle connection after 10 s rather than its default two hours; the ping
      // below bounds how long a dead one goes unnoticed whatever the OS's probe settings.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    this.client = c;
    let ping: NodeJS.Timeout | undefined;
    const lost = (): void => {
      if (gen !== this.generation) return;
      this.generation++;
      this.client = undefined;
      clearInterval(ping);
      void c.end().catch(() => {});
      // A dead connection would hold its socket until TCP gives up on the Terminate message.
      c.connection.stream.destroy();
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
          ping = this.pinging(c, () => gen === this.generation, lost);
          // Whatever was committed while no one listened.
          if (again) this.emit();
        },
        () => lost(),
      );
  }

  /**
   * Asks `c` a trivial query every so often; `lost` when it fails or goes unanswered. The query is
   * the LISTEN again (a no-op on a channel already listened to), so that the server's
   * pg_stat_activity keeps saying what the connection is for.
   */
  private pinging(c: pg.Client, current: () => boolean, lost: () => void): NodeJS.Timeout {
    let waiting = false;
    const every = setInterval(() => {
      if (!current()) return clearInterval(every);
      if (waiting) return;
      waiting = true;
      const late = setTimeout(lost, this.timing.pingAnswerMs ?? PING_ANSWER_MS);
      late.unref();
      c.query(`LISTEN ${CALLS_CHANNEL}`).then(
        () => {
          waiting = false;
          clearTimeout(late);
        },
        () => {
          clearTimeout(late);
          lost();
        },
      );
    }, this.timing.pingMs ?? PING_MS);
    every.unref();
    return every;
  }

  close(): void {
    this.closed = true;
    this.listeners.clear();
    this.stop();
  }
}
