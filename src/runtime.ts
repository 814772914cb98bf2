// Assembles a running relay from a resolved configuration: store, pipeline, delivery engine,
// metrics, and the HTTP server with its console. It only wires: each capability is a folder of its
// own (recording links in recordings/, reloading in reload/, click-to-call in dial/, the listeners
// in listen/, opening the store in store/open.ts), and this file passes them to one another.

import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ServerType } from '@hono/node-server';
import { loadConfig, type RelayConfig } from './config/load.js';
import { Reloader, type Reloaded } from './reload/reloader.js';
import { secretsOf } from './config/secrets.js';
import { DeliveryEngine, type EngineOptions, type EngineTarget } from './delivery/engine.js';
import {
  createTargets as buildTargets,
  shownTargets as consoleTargets,
} from './delivery/targets.js';
import { createApp, type AppOptions } from './http/app.js';
import { AuthGate, type GateSettings } from './http/gate.js';
import { SourceGuards } from './http/guard.js';
import { RefusalRecorder } from './http/refusals.js';
import type { ConsoleOptions } from './http/console/types.js';
import { Dialling } from './dial/wiring.js';
import { CallerId } from './callerid/wiring.js';
import { mountAgents } from './agents/index.js';
import { makeSignInLink } from './agents/links.js';
import { oidcLabel } from './agents/oidc.js';
import { targetSpec } from './targets/registry.js';
import { Redactor } from './lib/redact.js';
import type { TargetDeps } from './targets/types.js';
import { Listeners } from './listen/listeners.js';
import { CallCloser, type CloserOptions } from './pipeline/closer.js';
import { Retention, type RetentionOptions } from './pipeline/retention.js';
import { RecordingArchive, type ArchiveOptions } from './pipeline/archive.js';
import { Pipeline } from './pipeline/pipeline.js';
import { openServerStore } from './store/open.js';
import type { Store } from './store/types.js';
import { silentLogger, type Logger } from './telemetry/log.js';
import { RelayMetrics } from './telemetry/metrics.js';
import { VERSION } from './lib/version.js';
import {
  archiveFetch,
  recordingLinker,
  RecordingLinks,
  targetRecordings,
} from './recordings/links.js';

/** The .env beside relay.yaml (`file` as the config names it), if there is one (sign-in). */
const envFileOf = (file: string): string | undefined => {
  const env = join(dirname(file), '.env');
  return existsSync(env) ? env : undefined;
};

export { VERSION };

export { openServerStore, openStore } from './store/open.js';

/** The configured targets, ready to deliver. */
export const createTargets = (
  cfg: Pick<RelayConfig, 'targets' | 'sources' | 'links'>,
  log: Logger,
  shared: Pick<TargetDeps, 'tokens' | 'redact'> = {},
): Promise<Map<string, EngineTarget>> =>
  buildTargets(cfg.targets, { log, ...targetRecordings(cfg), ...shared });

export type { Reloaded } from './reload/reloader.js';

export interface Relay {
  store: Store;
  pipeline: Pipeline;
  delivery: DeliveryEngine;
  /** Closes calls whose end never came (calls.closeAfterMin). */
  closer: CallCloser;
  /** Deletes raw requests past store.keepRequestsDays. */
  retention: Retention;
  metrics: RelayMetrics;
  /**
   * Calls or deliveries changed: this process's folds and deliveries, and other instances' folds
   * on PostgreSQL (the console's and the agent pages' live cue). Returns the unsubscribe.
   */
  onChange(listener: () => void): () => void;
  /**
   * Re-read relay.yaml and the adapter files (SIGHUP, the console): sources, tokens, adapters,
   * guards, targets, routes and the log level change at once for new requests and deliveries;
   * those under way finish on the old ones. Throws, changing nothing, if anything is wrong.
   * Returns the adapters in use and the sections that changed but take a restart.
   */
  reload(): Promise<Reloaded>;
  server: ServerType;
  port: number;
  /** Where the console and the admin API listen, when server.consolePort is set. */
  consolePort?: number;
  close(): Promise<void>;
}

/** The admin surfaces' tokens and sessions as relay.yaml sets them. */
const gateSettings = (cfg: RelayConfig): GateSettings => ({
  adminToken: cfg.adminToken,
  metricsToken: cfg.metrics.token,
  trustProxy: cfg.server.trustProxy,
  sessionIdleMs: cfg.sessions.idleMs,
  sessionMaxMs: cfg.sessions.maxMs,
});

export interface StartOptions {
  store?: Store;
  delivery?: EngineOptions;
  /** Create the SQLite database even where a marker says one was lost (`start --init`). */
  init?: boolean;
  closer?: Pick<CloserOptions, 'now' | 'everyMs' | 'batch'>;
  retention?: Pick<RetentionOptions, 'now' | 'everyMs' | 'batch'>;
  /** Shared with the log's scrubber (cli/start.ts), so that a reload's new secrets reach it. */
  redact?: Redactor;
  archive?: Pick<ArchiveOptions, 'everyMs'>;
  /** How often server.tls's files are looked at (default 2 s). */
  tlsCheckMs?: number;
  /** Read relay.yaml again (cli/start.ts also re-reads .env); default: loadConfig(cfg.file). */
  reread?: () => RelayConfig;
  /** Log lines the log's sink dropped so far, for /metrics (cli/start.ts's LogSink). */
  logDropped?: () => number;
}

export async function startRelay(
  cfg: RelayConfig,
  log: Logger = silentLogger,
  opts: StartOptions = {},
): Promise<Relay> {
  const store = opts.store ?? (await openServerStore(cfg, { init: opts.init }));
  // One relay process per SQLite file: leases found now were held by a process that is gone.
  if (store.backend === 'sqlite') await store.releaseDeliveries(null);
  const metrics = new RelayMetrics(VERSION);
  if (opts.logDropped) metrics.readLogDrops(opts.logDropped);
  const redact = opts.redact ?? new Redactor(secretsOf(cfg));
  // Live views (console) listen here: a fold committed, a delivery finished.
  const changes = new EventEmitter().setMaxListeners(0);
  const changed = (): boolean => changes.emit('change');
  // Folds alone (the agents' cards: a delivery changes no card).
  const folds = new EventEmitter().setMaxListeners(0);
  // Run-time credentials (OAuth tokens) are shared through the store and kept out of everything
  // shown.
  const shared = {
    tokens: store.credentials,
    redact: (s: string, key?: string) => (key ? redact.replace(key, [s]) : redact.add([s])),
  };
  const targets = await createTargets(cfg, log, shared);
  const delivery = new DeliveryEngine(store, targets, {
    log,
    leaseMs: cfg.delivery.leaseSec * 1000,
    keepAttemptsMs: cfg.delivery.keepAttemptsDays * 86400_000,
    redact,
    metrics,
    onFinished: changed,
    ...opts.delivery,
  });
  const archive = new RecordingArchive(store, {
    dir: cfg.archive?.dir ?? '',
    sources: new Set(cfg.sources.filter((s) => s.recordings.archive).map((s) => s.name)),
    keepMs: (cfg.archive?.keepDays ?? 0) * 86400_000,
    fetch: archiveFetch(cfg.sources),
    log,
    ...opts.archive,
  });
  const folded = (): void => {
    delivery.kick();
    archive.kick();
    changed();
    folds.emit('fold');
  };
  const pipeline = new Pipeline(store, cfg.sources, log, folded, metrics);
  const closer = new CallCloser(store, {
    closeAfterMs: cfg.calls.closeAfterMin * 60_000,
    log,
    metrics,
    onClosed: () => pipeline.kick(),
    ...opts.closer,
  });
  const retention = new Retention(store, {
    keepMs: cfg.store.keepRequestsDays * 86400_000,
    log,
    ...opts.retention,
  });
  let draining = false;
  const shownTargets = consoleTargets(targets);
  const guards = new SourceGuards(cfg.sources, cfg.server.trustProxy);
  const refusals = new RefusalRecorder(store, { log, redact });
  const auth = new AuthGate(gateSettings(cfg), { metrics });
  const reloader: Reloader = new Reloader(cfg, {
    read: opts.reread ?? (() => loadConfig(cfg.file)),
    log,
    apply: async (next, current) => {
      const nextTargets = await createTargets(next, log, shared);
      try {
        // The one step that can fail (the store): before anything is swapped.
        await store.setRouting(next.routing);
      } catch (err) {
        for (const t of nextTargets.values()) await t.target.close().catch(() => {});
        throw err;
      }
      redact.add(secretsOf(next));
      const adapters = pipeline.setSources(next.sources);
      guards.set(next.sources, next.server.trustProxy);
      listeners.setLimits(next);
      // A new admin token applies to the next request, and every session made under the old one
      // ends (their stored ids were keyed by it).
      auth.set(gateSettings(next));
      if (next.adminToken !== current.adminToken) {
        // Unfindable already here; deleted so that instances sharing the store which have not yet
        // reloaded (PostgreSQL) refuse them too, and that the old token brought back revives none.
        await store.deleteAllSessions().catch((err: Error) => {
          log.warn({ err: redact.text(err.message) }, 'ending the console sessions failed');
        });
      }
      recordingLinks.setSources(next.sources);
      delivery.setTargets(nextTargets);
      shownTargets.splice(0, shownTargets.length, ...consoleTargets(nextTargets));
      log.level = next.logLevel;
      return adapters;
    },
  });
  const reload = reloader.reload;
  const recordingLinks = new RecordingLinks(cfg.sources, () => reloader.config.archive?.dir);
  // Read at each request: a reload with a new admin.token (whence the secret, unless
  // server.urlSecret is set) signs new links with the new one; they must open.
  const linkSecret = (): string => reloader.config.links?.secret ?? cfg.links!.secret;
  const dialling = new Dialling({
    pipeline,
    config: () => reloader.config,
    secret: linkSecret,
    metrics,
    redact,
    log,
  });
  // 3CX's CRM integration: lookups answered from the targets (`targets` is the engine's map,
  // refilled on reload), by default those whose configuration lets them find contacts.
  const callerId = new CallerId({
    sources: () => reloader.config.sources,
    targets: () => [...targets.values()].map((t) => t.target),
    finders: () =>
      reloader.config.targets
        .filter((t) => targetSpec(t.type)?.contacts?.(t).find)
        .map((t) => t.name),
    publicUrl: () => reloader.config.links?.publicUrl,
    checkAddress: (source, c) => guards.checkAddress(source, c),
    refused: (source, c, err) =>
      refusals.note({
        source,
        status: err.status,
        code: err.code,
        reason: err.message,
        path: c.req.path,
        address: guards.sender(c),
      }),
    metrics,
    redact: (text) => redact.text(text),
    log,
  });
  // The live views' cue: this process's folds and deliveries, and on PostgreSQL the folds other
  // instances commit (one LISTEN connection while anything listens).
  const onChange = (listener: () => void): (() => void) => {
    changes.on('change', listener);
    const unwatch = store.watchCalls?.(listener);
    return () => {
      changes.off('change', listener);
      unwatch?.();
    };
  };
  // Aborted at close: open live streams (console tabs) end at once instead of holding the server.
  const closing = new AbortController();
  const consoleOpts: ConsoleOptions = {
    pipeline,
    log,
    signal: closing.signal,
    redact,
    targets: shownTargets,
    recording: (source, url) => recordingLinks.forConsole(source, url),
    recordingProblem: (source, url) => recordingLinks.problem(source, url),
    reload,
    dial: dialling.console,
    canDial: dialling.canDial,
    crm: { templates: callerId.templates, lookup: callerId.probe },
    onChange,
    onDeliveriesDue: () => delivery.kick(),
    agents: {
      directory: () => reloader.config.agents,
      companySignIn: () => {
        const oidc = reloader.config.oidc;
        return oidc && oidcLabel(oidc);
      },
    },
    agentLink: (sessions, c, extension, hours) =>
      makeSignInLink(
        {
          console: { sessions, opts: consoleOpts },
          opts: { directory: () => reloader.config.agents },
        },
        c,
        extension,
        hours,
      ),
    version: VERSION,
    publicUrl: cfg.server.publicUrl,
    tokenFile: envFileOf(cfg.file),
    storeHealth: async () => {
      try {
        await store.checkWritable();
        return { backend: store.backend, ok: true, detail: 'writable' };
      } catch (err) {
        return { backend: store.backend, ok: false, detail: redact.text((err as Error).message) };
      }
    },
  };
  const appOptions = {
    pipeline,
    bodyLimit: cfg.server.bodyLimit,
    adminToken: cfg.adminToken,
    log,
    isDraining: () => draining,
    onDeliveriesDue: () => delivery.kick(),
    redact,
    targets: shownTargets,
    metrics: cfg.metrics.enabled ? { registry: metrics, token: cfg.metrics.token } : undefined,
    console: consoleOpts,
    auth,
    hsts: !!cfg.server.tls,
    guards,
    refusals,
    dial: dialling.api,
    beforeHooks: callerId.mount,
    withConsole: (made, console) =>
      mountAgents(made, console, {
        directory: () => reloader.config.agents,
        oidc: () => reloader.config.oidc,
        onChange: (listener) => {
          folds.on('fold', listener);
          const unwatch = store.watchCalls?.(listener);
          return () => {
            folds.off('fold', listener);
            unwatch?.();
          };
        },
        checkDial: dialling.agentCheck,
        dial: dialling.agent,
        lookup: (e164, withinMs) => callerId.lookup.anyNumber(e164, withinMs),
        recordingLink: (source, callId, url) => {
          const { links, sources } = reloader.config;
          const archives = (s: string): boolean =>
            !!sources.find((x) => x.name === s)?.recordings.archive;
          return links && recordingLinker(links, archives)(source, callId, url);
        },
      }),
    crmLookup: callerId.probe,
    ...(reloader.config.links ? { recordings: recordingLinks.route(linkSecret) } : {}),
  } satisfies AppOptions;
  const makeApp = (serves: NonNullable<AppOptions['serves']>): ReturnType<typeof createApp> => {
    const made = createApp({ ...appOptions, serves });
    dialling.mount(made);
    return made;
  };
  const app = makeApp(cfg.server.consolePort === undefined ? 'all' : 'webhooks');
  const listeners = new Listeners(cfg, { metrics, log, tlsCheckMs: opts.tlsCheckMs });
  await listeners.open(app.fetch, () => makeApp('console').fetch);
  pipeline.start();
  delivery.start();
  closer.start();
  retention.start();
  archive.start();
  listeners.watchCertificate();
  const { server, port, consolePort } = listeners;
  return {
    store,
    pipeline,
    delivery,
    closer,
    retention,
    metrics,
    onChange,
    reload,
    server,
    port,
    ...(consolePort !== undefined ? { consolePort } : {}),
    async close() {
      draining = true;
      listeners.stopWatching();
      closing.abort();
      await listeners.close();
      await closer.stop();
      await retention.stop();
      await archive.stop();
      await pipeline.stop();
      await pipeline.drain();
      await delivery.stop();
      await refusals.close();
      await store.close();
    },
  };
}
