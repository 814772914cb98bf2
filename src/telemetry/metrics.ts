// Prometheus metrics (prom-client): one registry per relay, so that several relays in one process
// (tests) never mix their numbers. Names follow the Prometheus conventions: a `callrelay_` prefix,
// `_total` counters, `_seconds` for time, and labels from small fixed sets (source and target
// names, outcomes, status classes), never call ids or phone numbers. docs/metrics.md lists them.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** What the store knows right now (domain-free, so telemetry stays a leaf). */
export interface StoreGauges {
  oldestPendingAt: string | null;
  thread?: { heapUsedBytes: number; heapTotalBytes: number };
  inbox: Record<string, number>;
  targets: {
    target: string;
    due: number;
    retrying: number;
    dead: number;
    oldestDueAt: string | null;
  }[];
}

/** 2xx, 4xx, 5xx for an HTTP status; `network` when no answer came; `none` when no request. */
export function statusClass(status: number | null | undefined, requested: boolean): string {
  if (status) return `${Math.floor(status / 100)}xx`;
  return requested ? 'network' : 'none';
}

// Webhook acknowledgements are milliseconds; CRM round trips and end-to-end latency are seconds
// to minutes (settle windows, retries).
const FAST = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const CRM = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const END_TO_END = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600, 24 * 3600];

export class RelayMetrics {
  readonly registry = new Registry();

  readonly ingestRequests = new Counter({
    name: 'callrelay_ingest_requests_total',
    help: 'Webhook requests by source and result (mapped, ignored, unmapped, checked, unauthorized, forbidden, limited, rejected, unavailable).',
    labelNames: ['source', 'result'] as const,
    registers: [this.registry],
  });

  readonly ackSeconds = new Histogram({
    name: 'callrelay_ingest_ack_seconds',
    help: 'Time from a webhook arriving to its answer (stored durably before a 2xx).',
    labelNames: ['source'] as const,
    buckets: FAST,
    registers: [this.registry],
  });

  readonly commitSeconds = new Histogram({
    name: 'callrelay_store_commit_seconds',
    help: 'Time a received request waits for its durable commit (group commit included).',
    buckets: FAST,
    registers: [this.registry],
  });

  readonly foldLag = new Gauge({
    name: 'callrelay_fold_lag_seconds',
    help: 'Age of the oldest stored request not yet folded into its call (0: none waiting).',
    registers: [this.registry],
  });

  readonly storeThreadHeap = new Gauge({
    name: 'callrelay_store_thread_heap_bytes',
    help: "V8 heap of the SQLite store's own thread (used, total); nodejs_* cover the HTTP thread.",
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly storeUp = new Gauge({
    name: 'callrelay_store_up',
    help: 'Whether the last scrape could read the store (1) or not (0).',
    registers: [this.registry],
  });

  readonly inboxRequests = new Gauge({
    name: 'callrelay_inbox_requests',
    help: 'Stored requests by state (pending, applied, unmapped, ignored).',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });

  readonly callsClosed = new Counter({
    name: 'callrelay_calls_closed_total',
    help: 'Calls the relay closed because no event came for calls.closeAfterMin and no end was reported, by source.',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  readonly deliveryAttempts = new Counter({
    name: 'callrelay_delivery_attempts_total',
    help: 'Delivery runs by target, outcome (delivered, skipped, retry, dead) and the status class of the CRM answer that decided it.',
    labelNames: ['target', 'outcome', 'status_class'] as const,
    registers: [this.registry],
  });

  readonly crmRequests = new Counter({
    name: 'callrelay_crm_requests_total',
    help:
      'HTTP requests made while delivering (to the CRM, and to the PBX for a recording the CRM ' +
      'takes as a file), by target and status class (network: no answer).',
    labelNames: ['target', 'status_class'] as const,
    registers: [this.registry],
  });

  readonly crmRequestSeconds = new Histogram({
    name: 'callrelay_crm_request_duration_seconds',
    help: 'Duration of HTTP requests to CRMs, by target.',
    labelNames: ['target'] as const,
    buckets: CRM,
    registers: [this.registry],
  });

  readonly deliveryLatency = new Histogram({
    name: 'callrelay_delivery_latency_seconds',
    help: 'Time from the end of a call to its delivery to the target (settle windows and retries included).',
    labelNames: ['target'] as const,
    buckets: END_TO_END,
    registers: [this.registry],
  });

  readonly rateLimitWait = new Counter({
    name: 'callrelay_ratelimit_wait_seconds_total',
    help: "Time requests waited for the target's rate limiter (pacing below the CRM's limit).",
    labelNames: ['target'] as const,
    registers: [this.registry],
  });

  readonly authFailures = new Counter({
    name: 'callrelay_auth_failures_total',
    help: 'Wrong or missing tokens by surface (console sign-in, api, metrics).',
    labelNames: ['surface'] as const,
    registers: [this.registry],
  });

  readonly authThrottled = new Counter({
    name: 'callrelay_auth_throttled_total',
    help: 'Wrong tokens answered 429 because their client sent too many, by surface.',
    labelNames: ['surface'] as const,
    registers: [this.registry],
  });

  readonly deliveries = new Gauge({
    name: 'callrelay_deliveries',
    help: 'Deliveries waiting by target and state (due, retrying, dead).',
    labelNames: ['target', 'state'] as const,
    registers: [this.registry],
  });

  readonly oldestDue = new Gauge({
    name: 'callrelay_delivery_oldest_due_age_seconds',
    help: 'How long the oldest delivery that is due now has been waiting, by target (0: none).',
    labelNames: ['target'] as const,
    registers: [this.registry],
  });

  readonly dials = new Counter({
    name: 'callrelay_dial_total',
    help:
      'Click-to-call requests by path (link, api, console, agent), result (placed, refused, ' +
      'rate_limited, failed) and, for refusals, reason (type, country, number, agent, source, ' +
      'link, expired, csrf; none otherwise).',
    labelNames: ['path', 'result', 'reason'] as const,
    registers: [this.registry],
  });

  readonly callerLookups = new Counter({
    name: 'callrelay_crm_lookups_total',
    help:
      "3CX's CRM lookups (sources[].crm) by source, kind (number, text, email, create), result " +
      '(hit, miss, timeout, error) and whether the cache answered (cached: yes, no).',
    labelNames: ['source', 'kind', 'result', 'cached'] as const,
    registers: [this.registry],
  });

  readonly callerLookupSeconds = new Histogram({
    name: 'callrelay_crm_lookup_seconds',
    help: "Time from a 3CX CRM lookup's arrival to its answer, by source and kind.",
    labelNames: ['source', 'kind'] as const,
    buckets: FAST,
    registers: [this.registry],
  });

  readonly connectionsRefused = new Counter({
    name: 'callrelay_http_refused_total',
    help:
      'Connections refused because their address had server.maxConnectionsPerAddress open ' +
      '(per_address), requests cut because their body stopped arriving (body_idle) or ' +
      'arrived slower than server.bodyMinRate (body_slow), and requests other than webhooks ' +
      'refused 503 on the connections server.webhookReserve keeps (reserved); with every ' +
      'connection taken, ones closed that held a place without a request (evicted).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  /** How many log lines the log's sink has dropped so far (set by readLogDrops). */
  private logDrops: () => number = () => 0;

  readonly logLinesDropped = new Counter({
    name: 'callrelay_log_lines_dropped_total',
    help: 'Log lines dropped because the log output was not read fast enough (log.bufferLimit).',
    registers: [this.registry],
    collect: () => {
      // Counted by the sink, which exists before this registry; read at each scrape.
      this.logLinesDropped.reset();
      this.logLinesDropped.inc(this.logDrops());
    },
  });

  /** Where callrelay_log_lines_dropped_total comes from (telemetry/sink.ts's count). */
  readLogDrops(count: () => number): void {
    this.logDrops = count;
  }

  constructor(version: string, opts: { processMetrics?: boolean } = {}) {
    new Gauge({
      name: 'callrelay_build_info',
      help: 'Always 1; the version label says which callrelay runs.',
      labelNames: ['version'] as const,
      registers: [this.registry],
    }).set({ version }, 1);
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /**
   * Sets the gauges that come from the store (called before each scrape); `targets`: every
   * configured target, so that one with nothing waiting reads 0 rather than nothing.
   */
  observeStore(s: StoreGauges, targets: string[] = [], now = Date.now()): void {
    const age = (iso: string | null): number =>
      iso ? Math.max(0, now - Date.parse(iso)) / 1000 : 0;
    this.foldLag.set(age(s.oldestPendingAt));
    if (s.thread) {
      this.storeThreadHeap.set({ kind: 'used' }, s.thread.heapUsedBytes);
      this.storeThreadHeap.set({ kind: 'total' }, s.thread.heapTotalBytes);
    }
    for (const [state, n] of Object.entries(s.inbox)) this.inboxRequests.set({ state }, n);
    // Targets whose work is gone must read 0, not their last value.
    this.deliveries.reset();
    this.oldestDue.reset();
    const none = { due: 0, retrying: 0, dead: 0, oldestDueAt: null };
    const known = new Set(s.targets.map((t) => t.target));
    const all = [
      ...s.targets,
      ...targets.filter((t) => !known.has(t)).map((target) => ({ target, ...none })),
    ];
    for (const t of all) {
      for (const state of ['due', 'retrying', 'dead'] as const)
        this.deliveries.set({ target: t.target, state }, t[state]);
      this.oldestDue.set({ target: t.target }, age(t.oldestDueAt));
    }
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
