// The inbound pipeline: map a received request with its source's adapter, join a journal to the
// call another source has of it (join.ts), commit it (group commit), then fold the calls it
// touched in the background. Also re-maps stored requests (`replay`).

import { mapCloseRequest } from '../domain/close.js';
import { RelayError, wrapError } from '../domain/errors.js';
import type { MapResult, RawRequest } from '../domain/request.js';
import { compileAdapter, type CompiledAdapter } from '../ingest/adapter.js';
import type { ResolvedSource } from '../config/load.js';
import { GroupCommitter } from '../store/group-commit.js';
import type { InboxRow, Store } from '../store/types.js';
import { silentLogger, type Logger } from '../telemetry/log.js';
import type { RelayMetrics } from '../telemetry/metrics.js';
import { ThrottledLog } from '../telemetry/throttle.js';
import { fileJournal, JOINED_RULE, type Filing, type JoinSettings } from './join.js';

export interface SourceRuntime {
  name: string;
  token: string;
  provider: string;
  adapter: CompiledAdapter;
  /** sources[].crm: whose calls this source's journal joins (join.ts). */
  crm?: JoinSettings;
}

export interface IngestResult {
  id: number;
  result: MapResult;
}

// Small enough that a fold transaction never keeps a waiting commit (and its 2xx) long.
const APPLY_BATCH = 64;
/** Folding waits this long after a commit, so that under load it folds many requests at once. */
const FOLD_DELAY_MS = 5;

type SourceSettings = Pick<
  ResolvedSource,
  'name' | 'token' | 'adapter' | 'timezone' | 'defaultCountry' | 'crm'
>;

const compileSource = (s: SourceSettings): SourceRuntime => ({
  name: s.name,
  token: s.token,
  provider: s.adapter.name,
  adapter: compileAdapter(s.adapter, s),
  ...(s.crm ? { crm: s.crm } : {}),
});

export class Pipeline {
  private current: Map<string, SourceRuntime>;
  private readonly committer: GroupCommitter;
  private scheduled = false;
  private stopped = false;
  private busy = false;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];
  /** While the store is down every request and tick fails alike: one line a minute says so. */
  private readonly storeErrors: ThrottledLog;

  constructor(
    readonly store: Store,
    sources: SourceSettings[],
    private readonly log: Logger = silentLogger,
    /** Called after folds committed: calls changed, deliveries may be due. */
    private readonly onFolded: () => void = () => {},
    private readonly metrics?: RelayMetrics,
  ) {
    this.current = new Map(sources.map((s) => [s.name, compileSource(s)]));
    this.committer = new GroupCommitter(store, () => this.kick());
    this.storeErrors = new ThrottledLog(log);
  }

  /**
   * Map and durably store one request. Resolves only after the commit; throws STORE_UNAVAILABLE
   * otherwise.
   */
  async ingest(req: RawRequest): Promise<IngestResult> {
    const src = this.sources.get(req.source);
    if (!src)
      throw new RelayError('RELAY_ERR_UNKNOWN_SOURCE', `no source "${req.source}" in relay.yaml`);
    let filing: Filing;
    try {
      filing = await this.file(src, await this.mapSafely(src, req));
    } catch (err) {
      throw this.unavailable(err, 'looking up the call a journal joins');
    }
    const { result } = filing;
    const filed = filing.source === req.source ? req : { ...req, source: filing.source };
    const t0 = performance.now();
    try {
      const id = await this.committer.submit({ req: filed, result, provider: src.provider });
      this.metrics?.commitSeconds.observe((performance.now() - t0) / 1000);
      return { id, result };
    } catch (err) {
      throw this.unavailable(err, 'storing a request');
    }
  }

  /** Logged (once a minute while the store stays down); the 503 the sender gets. */
  private unavailable(err: unknown, what: string): RelayError {
    const message = (err as Error).message;
    this.storeErrors.write(
      'error',
      `ingest\0${message}`,
      { err: message },
      `${what} failed; answering 503`,
    );
    return new RelayError('RELAY_ERR_STORE_UNAVAILABLE', undefined, {
      cause: err,
      headers: { 'retry-after': '5' },
    });
  }

  /** Where a mapped request of `src` is filed: its own, or joined to another source's call. */
  private file(src: SourceRuntime, result: MapResult): Promise<Filing> {
    return fileJournal(this.store, src.name, src.crm, result);
  }

  private async mapSafely(src: SourceRuntime, req: RawRequest): Promise<MapResult> {
    try {
      return await src.adapter.map(req);
    } catch (err) {
      // An adapter bug must not lose the request: store it unmapped with the reason.
      return {
        status: 'unmapped',
        code: 'RELAY_ERR_MAPPING_FAILED',
        message: wrapError(`mapping with adapter ${src.provider}`, err).message,
      };
    }
  }

  /**
   * Start folding in the background: on every commit, and every `intervalMs` for rows from
   * elsewhere.
   */
  start(intervalMs = 1000): void {
    this.timer = setInterval(() => this.kick(), intervalMs);
    this.timer.unref();
    this.kick();
  }

  kick(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setTimeout(() => void this.loop(), FOLD_DELAY_MS);
  }

  private async loop(): Promise<void> {
    this.scheduled = false;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      for (;;) {
        const n = await this.store.applyPending(APPLY_BATCH);
        if (n > 0) this.onFolded();
        // A short batch took all there was: asking again would cost a transaction for nothing,
        // and a commit from now on kicks the loop anyway.
        if (n < APPLY_BATCH) break;
        // Let ingest run between batches.
        await new Promise((r) => setImmediate(r));
      }
    } catch (err) {
      const message = (err as Error).message;
      this.storeErrors.write(
        'error',
        `fold\0${message}`,
        { err: message },
        'folding stored requests failed; retrying on the next tick',
      );
    } finally {
      this.busy = false;
    }
    const rerun = this.again && !this.stopped;
    this.again = false;
    if (rerun) this.kick();
    else for (const w of this.idleWaiters.splice(0)) w();
  }

  /**
   * Resolves once every committed request this process can see has been folded. The background
   * loop may hold some rows (PostgreSQL skips locked rows), so wait for it too.
   */
  async drain(): Promise<void> {
    for (;;) {
      await this.idle();
      const n = await this.store.applyPending(APPLY_BATCH);
      if (n > 0) {
        this.onFolded();
        continue;
      }
      if (!this.busy && !this.scheduled) return;
    }
  }

  /** Wait until the background loop has nothing left (tests, shutdown). */
  idle(): Promise<void> {
    if (!this.busy && !this.scheduled) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** The sources by name, as configured now (a reload swaps the whole map at once). */
  get sources(): ReadonlyMap<string, SourceRuntime> {
    return this.current;
  }

  /**
   * Use these sources from now on (relay.yaml or an adapter reloaded). All compile before the
   * swap, so a broken adapter changes nothing; a request under way finishes with the source it
   * started with. Returns the adapter names now in use.
   */
  setSources(sources: SourceSettings[]): string[] {
    this.current = new Map(sources.map((s) => [s.name, compileSource(s)]));
    return [...new Set([...this.current.values()].map((s) => s.provider))];
  }

  /** Map a stored request again with the current adapter and refold what it touches. */
  async replay(row: InboxRow): Promise<MapResult> {
    // The relay's own close of a call is no provider's webhook: it maps the same, whatever the
    // adapter (domain/close.ts).
    if (row.kind === 'relay-close') {
      const result = mapCloseRequest(row.body);
      await this.store.remap(row.id, result, row.provider);
      this.onFolded();
      return result;
    }
    const filedUnder = this.sources.get(row.source);
    // Left as it is: its source is gone from relay.yaml, so nothing could map it now.
    if (!filedUnder)
      return {
        status: 'unmapped',
        code: 'RELAY_ERR_UNKNOWN_SOURCE',
        message: `source "${row.source}" is no longer in relay.yaml`,
      };
    // A journal a join filed under another source's call maps with its own source's adapter.
    const src =
      row.provider === filedUnder.provider
        ? filedUnder
        : ([...this.sources.values()].find(
            (s) => s.crm?.joinCallsOf === row.source && s.provider === row.provider,
          ) ?? filedUnder);
    const mapped = await this.mapSafely(src, { ...row, source: src.name });
    const result = replayFiling(row.source, await this.file(src, mapped), mapped);
    await this.store.remap(row.id, result, src.provider);
    this.onFolded();
    return result;
  }

  /** No more background folding; resolves when a fold under way has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.idle();
  }
}

/**
 * What a replayed request becomes: filed as ingest would file it now, but a stored request keeps
 * its source. So a journal stored as a record of its own stays one when it would now be filed
 * under the call it joins (the add-on's events came after it), and one stored under a call it no
 * longer joins makes no call there.
 */
function replayFiling(storedUnder: string, filing: Filing, own: MapResult): MapResult {
  if (filing.source === storedUnder || filing.result.status !== 'mapped') return filing.result;
  if (filing.result.rule === JOINED_RULE) return own;
  return {
    status: 'unmapped',
    code: 'RELAY_ERR_MAPPING_FAILED',
    message:
      `stored under source ${storedUnder} by a join to one of its calls, which it no longer ` +
      'matches; a stored request keeps its source, so it makes no call of its own there',
  };
}
