// Reloading relay.yaml in a running relay (SIGHUP, the console): one reload at a time, the
// sections that changed but take a restart named, the outcome logged, and the configuration now
// in force for whatever reads it at each request. What each part of the relay does with the new
// file is the wiring's (runtime.ts passes it as `apply`): this folder knows relay.yaml, not the
// parts, so that it depends on config/ alone.

import type { RelayConfig } from '../config/load.js';
import type { Logger } from '../telemetry/log.js';

export interface Reloaded {
  adapters: string[];
  /** Top-level sections of relay.yaml that changed but apply only at the next start. */
  restartNeeded: string[];
}

/** What a running relay cannot take over: a new listener or store needs a start. */
const RESTART_ONLY = ['server', 'store', 'metrics', 'calls', 'delivery'] as const;

/**
 * Sections compared for RESTART_ONLY: tokens, trusted proxies and the connection limits apply at
 * once on a reload.
 */
const restartPart = (cfg: RelayConfig, k: (typeof RESTART_ONLY)[number]): unknown =>
  k === 'metrics'
    ? cfg.metrics.enabled
    : k === 'server'
      ? {
          ...cfg.server,
          trustProxy: undefined,
          maxConnections: undefined,
          maxConnectionsPerAddress: undefined,
          bodyIdleSec: undefined,
          bodyMinRate: undefined,
          webhookReserve: undefined,
        }
      : cfg[k];

export interface ReloaderOptions {
  /** Read relay.yaml again. */
  read: () => RelayConfig;
  /**
   * Builds everything the new file needs, then swaps it in; throws, changing nothing, if anything
   * is wrong. Returns the adapters in use.
   */
  apply: (next: RelayConfig, current: RelayConfig) => Promise<string[]>;
  log: Logger;
}

export class Reloader {
  private current: RelayConfig;
  private reloading: Promise<Reloaded> | undefined;

  constructor(
    initial: RelayConfig,
    private readonly o: ReloaderOptions,
  ) {
    this.current = initial;
  }

  /** relay.yaml as the last successful reload (or the start) read it. */
  get config(): RelayConfig {
    return this.current;
  }

  /** One reload at a time: a second SIGHUP during one waits for it, then reads the file again. */
  reload = (): Promise<Reloaded> => {
    const run = (this.reloading ?? Promise.resolve()).catch(() => {}).then(() => this.applyNext());
    this.reloading = run;
    return run;
  };

  private async applyNext(): Promise<Reloaded> {
    const { log } = this.o;
    // Everything is read and built first: a broken file or adapter throws here, changing nothing.
    const next = this.o.read();
    const adapters = await this.o.apply(next, this.current);
    const restartNeeded = RESTART_ONLY.filter(
      (k) => JSON.stringify(restartPart(next, k)) !== JSON.stringify(restartPart(this.current, k)),
    );
    this.current = next;
    log.info(
      {
        sources: next.sources.map((s) => `${s.name}:${s.adapter.name}`),
        targets: next.targets.map((t) => t.name),
        ...(restartNeeded.length ? { restartNeeded } : {}),
      },
      restartNeeded.length
        ? `relay.yaml reloaded; ${restartNeeded.join(', ')} changed and apply at the next start`
        : 'relay.yaml reloaded',
    );
    return { adapters, restartNeeded };
  }
}
