// `callrelay check`: validate relay.yaml and its adapters (or the adapter files named), every
// problem at once with file:line:col; --online also asks each CRM target whether its token works.

import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { exposedExampleTokens, exposedWeakSecrets, type RelayConfig } from '../config/load.js';
import { loadAdapter, loadAdapterDir } from '../ingest/adapter.js';
import { ConfigError, displayPath } from '../lib/yaml.js';
import { createTargets, openStore } from '../runtime.js';
import type { Store } from '../store/types.js';
import type { TargetTokens } from '../targets/types.js';
import { silentLogger } from '../telemetry/log.js';
import { configFrom, fail, usingConfig } from './util.js';

/** How many of the latest calls each agent extension handled (none when there is no store yet). */
async function recentAgents(
  cfg: RelayConfig,
): Promise<{ calls: number; agents: Map<string, number> }> {
  const agents = new Map<string, number>();
  // A check must never create the database a first start would.
  if ('sqlite' in cfg.store && !existsSync(cfg.store.sqlite)) return { calls: 0, agents };
  const store = await openStore(cfg);
  try {
    const rows = await store.listCalls({ limit: RECENT_CALLS });
    for (const { record } of rows)
      if (record.agent) agents.set(record.agent, (agents.get(record.agent) ?? 0) + 1);
    return { calls: rows.length, agents };
  } finally {
    await store.close();
  }
}

/**
 * The store's target credentials, as the relay shares them (an OAuth refresh token the relay
 * rotated is only there; one the check rotates must be kept there). The store is opened on first
 * use, and a SQLite file that does not exist yet is created only to keep a credential.
 */
function storedCredentials(cfg: RelayConfig): { tokens: TargetTokens; close: () => Promise<void> } {
  let store: Promise<Store> | undefined;
  const absent = (): boolean => 'sqlite' in cfg.store && !existsSync(cfg.store.sqlite) && !store;
  const open = (): Promise<Store> => (store ??= openStore(cfg));
  const tokens: TargetTokens = {
    get: async (t) => (absent() ? undefined : (await open()).credentials.get(t)),
    put: async (t, v, e) => (await open()).credentials.put(t, v, e),
    lease: async (t, o, ms) => (absent() ? true : (await open()).credentials.lease(t, o, ms)),
    release: async (t, o) => (absent() ? undefined : (await open()).credentials.release(t, o)),
  };
  return { tokens, close: async () => void (await (await store)?.close()) };
}

/** How far back `check --online` looks for extensions without a mapping. */
const RECENT_CALLS = 500;

export async function cmdCheck(
  positionals: string[],
  values: { config?: string; online?: boolean },
): Promise<void> {
  const lines: string[] = [];
  const errors: string[] = [];
  const attempt = (what: () => string): void => {
    try {
      lines.push(what());
    } catch (err) {
      if (err instanceof ConfigError) errors.push(err.message);
      else throw err;
    }
  };
  if (positionals.length) {
    for (const p of positionals)
      attempt(() => `ok  ${displayPath(resolve(p))} (adapter ${loadAdapter(resolve(p)).name})`);
  } else {
    lines.push(usingConfig(values));
    attempt(() => {
      const cfg = configFrom(values);
      const exposed = exposedExampleTokens(cfg);
      const weak = exposedWeakSecrets(cfg);
      if (exposed || weak)
        throw new ConfigError([...(exposed?.issues ?? []), ...(weak?.issues ?? [])]);
      const adapters = loadAdapterDir(cfg.adaptersDir);
      return [
        `ok  ${cfg.file}: ${cfg.sources.length} source(s): ${cfg.sources.map((s) => `${s.name} -> ${s.adapter.name}`).join(', ')}`,
        `ok  ${displayPath(cfg.adaptersDir)}: ${[...adapters.keys()].join(', ') || 'no adapters'}`,
      ].join('\n');
    });
  }
  if (values.online && !errors.length && !positionals.length) {
    const cfg = configFrom(values);
    const stored = storedCredentials(cfg);
    const targets = await createTargets(cfg, silentLogger, { tokens: stored.tokens });
    const seen = await recentAgents(cfg);
    for (const [name, { target, dryRun }] of targets) {
      const label = `${name} (${target.type}${dryRun ? ', dry run' : ''})`;
      try {
        if (!target.check) {
          lines.push(`--  ${label}: nothing to check without sending a real event`);
          continue;
        }
        // A sandbox answers every question alike: what it says about the token or the agents
        // proves nothing, so it is not asked.
        const unknown = dryRun ? [] : ((await target.unknownAgents?.()) ?? []);
        if (dryRun)
          lines.push(
            `--  ${label}: dry run, not asked: the sandbox answers every agent as a user ` +
              '(set the token and remove dryRun to check the CRM)',
          );
        else lines.push(`ok  ${label}: ${await target.check()}`);
        errors.push(...unknown.map((u) => `${label}: ${u}: its calls go without an owner`));
        if (!dryRun && target.mappedAgents && !unknown.length && target.mappedAgents.length)
          lines.push(`ok  ${label}: all ${target.mappedAgents.length} agents are users`);
        const mapped = new Set(target.mappedAgents ?? []);
        for (const [ext, n] of seen.agents)
          if (target.mappedAgents && !mapped.has(ext))
            lines.push(
              `--  ${label}: extension ${ext} handled ${n} of the last ${seen.calls} calls and ` +
                'has no agents: entry, so its calls go without an owner',
            );
      } catch (err) {
        errors.push(`${label}: ${(err as Error).message}`);
      } finally {
        await target.close();
      }
    }
    await stored.close();
  }
  if (lines.length) process.stdout.write(`${lines.join('\n')}\n`);
  if (errors.length) fail(errors.join('\n'));
}
