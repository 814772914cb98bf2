// `callrelay check`: validate relay.yaml and its adapters (or the adapter files named), every
// problem at once with file:line:col; --online also asks each CRM target whether its token works.

import { resolve } from 'node:path';
import { exposedExampleTokens } from '../config/load.js';
import { loadAdapter, loadAdapterDir } from '../ingest/adapter.js';
import { ConfigError, displayPath } from '../lib/yaml.js';
import { createTargets } from '../runtime.js';
import { createLogger } from '../telemetry/log.js';
import { configFrom, fail } from './util.js';

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
    attempt(() => {
      const cfg = configFrom(values);
      const exposed = exposedExampleTokens(cfg);
      if (exposed) throw exposed;
      const adapters = loadAdapterDir(cfg.adaptersDir);
      return [
        `ok  ${cfg.file}: ${cfg.sources.length} source(s): ${cfg.sources.map((s) => `${s.name} -> ${s.adapter.name}`).join(', ')}`,
        `ok  ${displayPath(cfg.adaptersDir)}: ${[...adapters.keys()].join(', ') || 'no adapters'}`,
      ].join('\n');
    });
  }
  if (values.online && !errors.length && !positionals.length) {
    const cfg = configFrom(values);
    const targets = await createTargets(cfg, createLogger('silent'));
    for (const [name, { target }] of targets) {
      if (!target.check) {
        lines.push(`--  ${name} (${target.type}): nothing to check without sending a real event`);
        continue;
      }
      try {
        lines.push(`ok  ${name} (${target.type}): ${await target.check()}`);
      } catch (err) {
        errors.push(`${name} (${target.type}): ${(err as Error).message}`);
      } finally {
        await target.close();
      }
    }
  }
  if (lines.length) process.stdout.write(`${lines.join('\n')}\n`);
  if (errors.length) fail(errors.join('\n'));
}
