// Assembles a running relay from a resolved configuration: store, pipeline, HTTP server.

import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { RelayConfig } from './config/load.js';
import { DeliveryEngine, type EngineOptions, type EngineTarget } from './delivery/engine.js';
import { loadTarget } from './targets/registry.js';
import { createApp } from './http/app.js';
import { Pipeline } from './pipeline/pipeline.js';
import { SqliteStore } from './store/sqlite/index.js';
import { ThreadedSqliteStore } from './store/sqlite/threaded.js';
import { PostgresStore } from './store/postgres/index.js';
import type { Store } from './store/types.js';
import { silentLogger, type Logger } from './telemetry/log.js';

/** The store for commands (short-lived; SQLite on the calling thread). */
export async function openStore(cfg: Pick<RelayConfig, 'store' | 'routing'>): Promise<Store> {
  const { routing } = cfg;
  const { maxEventsPerCall } = cfg.store;
  if ('sqlite' in cfg.store) {
    const { busyTimeoutMs } = cfg.store;
    return new SqliteStore(cfg.store.sqlite, { routing, busyTimeoutMs, maxEventsPerCall });
  }
  return PostgresStore.open(cfg.store.postgres, { routing, maxEventsPerCall, max: 2 });
}

/** The store for the server: SQLite on its own thread (commits never block HTTP), or PostgreSQL. */
export async function openServerStore(cfg: Pick<RelayConfig, 'store' | 'routing'>): Promise<Store> {
  if ('sqlite' in cfg.store) {
    return ThreadedSqliteStore.open({
      path: cfg.store.sqlite,
      routing: cfg.routing,
      maxSizeMB: cfg.store.maxSizeMB,
      busyTimeoutMs: cfg.store.busyTimeoutMs,
      maxEventsPerCall: cfg.store.maxEventsPerCall,
    });
  }
  const { maxEventsPerCall } = cfg.store;
  return PostgresStore.open(cfg.store.postgres, { routing: cfg.routing, maxEventsPerCall });
}

/** The configured targets, ready to deliver. */
export async function createTargets(
  cfg: Pick<RelayConfig, 'targets' | 'sources'>,
  log: Logger,
): Promise<Map<string, EngineTarget>> {
  const recordings = Object.fromEntries(cfg.sources.map((s) => [s.name, s.recordings]));
  const out = new Map<string, EngineTarget>();
  for (const t of cfg.targets) {
    const impl = await loadTarget(t.type);
    const target = impl.create(t, { log, recordings });
    out.set(t.name, { target, concurrency: t.concurrency, retryForMs: t.retryForHours * 3600_000 });
  }
  return out;
}

export interface Relay {
  store: Store;
  pipeline: Pipeline;
  delivery: DeliveryEngine;
  server: ServerType;
  port: number;
  close(): Promise<void>;
}

export async function startRelay(
  cfg: RelayConfig,
  log: Logger = silentLogger,
  opts: { store?: Store; delivery?: EngineOptions } = {},
): Promise<Relay> {
  const store = opts.store ?? (await openServerStore(cfg));
  // One relay process per SQLite file: leases found now were held by a process that is gone.
  if (store.backend === 'sqlite') await store.releaseDeliveries(null);
  const delivery = new DeliveryEngine(store, await createTargets(cfg, log), {
    log,
    leaseMs: cfg.delivery.leaseSec * 1000,
    ...opts.delivery,
  });
  const pipeline = new Pipeline(store, cfg.sources, log, () => delivery.kick());
  let draining = false;
  const app = createApp({
    pipeline,
    bodyLimit: cfg.server.bodyLimit,
    adminToken: cfg.adminToken,
    log,
    isDraining: () => draining,
    onDeliveriesDue: () => delivery.kick(),
  });
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: cfg.server.port, hostname: cfg.server.host }, () =>
      resolve(s),
    );
    s.once('error', reject);
  });
  pipeline.start();
  delivery.start();
  const port = (server.address() as AddressInfo).port;
  return {
    store,
    pipeline,
    delivery,
    server,
    port,
    async close() {
      draining = true;
      await new Promise<void>((r) => server.close(() => r()));
      await pipeline.stop();
      await pipeline.drain();
      await delivery.stop();
      await store.close();
    },
  };
}
