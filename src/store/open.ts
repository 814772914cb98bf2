// Opening the configured store (relay.yaml's store section): SQLite, guarded by its marker file
// against a database silently re-created empty, or PostgreSQL, whose driver is loaded only when
// used. Commands get a short-lived store on their own thread; the server SQLite on a worker
// thread. The settings are spelled out here rather than imported: the store knows no config/.

import type { Routing } from '../domain/routing.js';
import { SqliteStore } from './sqlite/index.js';
import { checkDatabaseMarker, markDatabase } from './sqlite/marker.js';
import { ThreadedSqliteStore } from './sqlite/threaded.js';
import type { Store } from './types.js';

/** What opening a store reads of relay.yaml (`file`: relay.yaml's path, for the marker). */
export interface StoreConfig {
  store: ({ sqlite: string; maxSizeMB?: number; busyTimeoutMs: number } | { postgres: string }) & {
    maxEventsPerCall: number;
  };
  routing: Routing;
  file: string;
}

/** The store for commands (short-lived; SQLite on the calling thread). */
export async function openStore(cfg: StoreConfig): Promise<Store> {
  const { routing } = cfg;
  const { maxEventsPerCall } = cfg.store;
  if ('sqlite' in cfg.store) {
    const { busyTimeoutMs, sqlite } = cfg.store;
    checkDatabaseMarker(sqlite, { configFile: cfg.file });
    const store = new SqliteStore(sqlite, { routing, busyTimeoutMs, maxEventsPerCall });
    markDatabase(sqlite, cfg.file);
    return store;
  }
  const { PostgresStore } = await import('./postgres/index.js');
  return PostgresStore.open(cfg.store.postgres, { routing, maxEventsPerCall, max: 2 });
}

/** The store for the server: SQLite on its own thread (commits never block HTTP), or PostgreSQL. */
export async function openServerStore(
  cfg: StoreConfig,
  opts: { init?: boolean } = {},
): Promise<Store> {
  if ('sqlite' in cfg.store) {
    const path = cfg.store.sqlite;
    checkDatabaseMarker(path, { configFile: cfg.file, init: opts.init });
    const store = await ThreadedSqliteStore.open({
      path,
      routing: cfg.routing,
      maxSizeMB: cfg.store.maxSizeMB,
      busyTimeoutMs: cfg.store.busyTimeoutMs,
      maxEventsPerCall: cfg.store.maxEventsPerCall,
    });
    markDatabase(path, cfg.file);
    return store;
  }
  const { maxEventsPerCall } = cfg.store;
  // Loaded only here: a SQLite relay does not carry the PostgreSQL driver in its memory.
  const { PostgresStore } = await import('./postgres/index.js');
  return PostgresStore.open(cfg.store.postgres, { routing: cfg.routing, maxEventsPerCall });
}
