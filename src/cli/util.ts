// What the commands share: failing with an exit code, reading relay.yaml,
// opening the store for one command, and the plain-text tables of calls, unmapped and dead.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { defaultConfigPath, loadConfig, type RelayConfig } from '../config/load.js';
import { displayPath } from '../lib/yaml.js';
import { openStore } from '../runtime.js';
import type { Store } from '../store/types.js';

export function fail(msg: string, code = 1): never {
  process.stderr.write(`${msg}\n`);
  process.exit(code);
}

/**
 * The variables of a `.env` beside relay.yaml (as `callrelay init` writes it), for those not set
 * in the environment already: what the service manager or the shell sets wins.
 */
export function loadEnvBeside(configPath: string, env: NodeJS.ProcessEnv = process.env): void {
  const file = join(dirname(configPath), '.env');
  if (!existsSync(file)) return;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    // Readable by the service manager only (systemd's EnvironmentFile= has set the variables).
    if ((err as NodeJS.ErrnoException).code === 'EACCES') return;
    throw err;
  }
  for (const [k, v] of Object.entries(parseEnv(text))) {
    // Read again (a reload): what came from .env before follows the file; the rest stays.
    if (env[k] === undefined || fromEnvFile.has(k)) {
      env[k] = v;
      fromEnvFile.add(k);
    }
  }
}

/** Variables this process took from a .env file. */
const fromEnvFile = new Set<string>();

/** The relay.yaml a command reads: --config, else the lookup of defaultConfigPath. */
export const configPath = (values: { config?: string | undefined }): string =>
  values.config ? resolve(values.config) : defaultConfigPath();

/** Which relay.yaml a command reads, and what chose it: one line for start and check. */
export function usingConfig(values: { config?: string | undefined }): string {
  const why = values.config
    ? '--config'
    : process.env.RELAY_CONFIG
      ? '$RELAY_CONFIG'
      : configPath(values) === resolve('relay.yaml')
        ? "the quick start's; callrelay init writes config/relay.yaml"
        : 'found in ./config';
  return `using ${displayPath(configPath(values))} (${why})`;
}

/** `readOnly`: the command needs no CRM or admin secrets (loadConfig). */
export function configFrom(
  values: { config?: string | undefined },
  opts: { readOnly?: boolean } = {},
): RelayConfig {
  const path = configPath(values);
  loadEnvBeside(path);
  return loadConfig(path, process.env, opts);
}

/** Run `use` with the store of relay.yaml, closed afterwards whatever happens. */
export async function withStore<T>(
  values: { config?: string | undefined },
  use: (store: Store, cfg: RelayConfig) => Promise<T>,
): Promise<T> {
  // Reading the store needs no CRM tokens: an operator can run these without them.
  const cfg = configFrom(values, { readOnly: true });
  const store = await openStore(cfg);
  try {
    return await use(store, cfg);
  } finally {
    await store.close();
  }
}

function table(rows: Record<string, unknown>[], cols: string[]): string {
  const cell = (v: unknown): string =>
    v === null || v === undefined ? '-' : Array.isArray(v) ? v.join(',') : String(v);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]): string =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(cols), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n');
}

/** Rows as a table with a column per key of the first row, or `empty` when there are none. */
export function printTable(rows: Record<string, unknown>[], empty: string): void {
  process.stdout.write(`${rows.length ? table(rows, Object.keys(rows[0]!)) : empty}\n`);
}
