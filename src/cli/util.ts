// What the commands share: the usage text, failing with an exit code, reading relay.yaml,
// opening the store for one command, and the plain-text tables of calls, unmapped and dead.

import { resolve } from 'node:path';
import { defaultConfigPath, loadConfig, type RelayConfig } from '../config/load.js';
import { openStore } from '../runtime.js';
import type { Store } from '../store/types.js';

export const USAGE = `callrelay: phone-system webhooks in, one call record per call out.

Usage:
  callrelay --version                        the version of this callrelay
  callrelay start   [--config FILE] [--init] run the relay (default config: $RELAY_CONFIG or ./relay.yaml);
                                             --init: create the SQLite file although an earlier one was lost;
                                             --insecure-example-tokens: run reachable with relay.yaml's example tokens
  callrelay check   [--config FILE] [--online] [ADAPTER.yaml ...]
                                             validate relay.yaml and every adapter; errors name file:line:col;
                                             --online: also call each CRM once with its token
  callrelay map     --adapter NAME|FILE FLOW.json [--timezone TZ] [--country CC]
                                             print the canonical events and calls a flow produces;
                                             exits 1 when the flow's "expect" does not hold
  callrelay calls   [--config FILE] [--limit N]       recent calls, newest change first, with
                                             how each stands with each target
  callrelay deliveries [--config FILE] [--state due|retrying|dead|done] [--target NAME] [--json]
                                             what is waiting to reach a CRM, and why
  callrelay unmapped [--config FILE] [--limit N]      stored requests no adapter rule could map
  callrelay dead    [--config FILE] [--limit N]      deliveries that gave up, with the CRM's reason
  callrelay replay  [--config FILE] ID ... | --all-unmapped | dl-ID ... | --all
                                             ID: map a stored request again (after an adapter fix);
                                             dl-ID / --all: retry dead deliveries
  callrelay backfill [--config FILE] --target NAME --since DATE [--until DATE] [--yes]
                                             deliver calls stored before the target was added:
                                             counts first, queues with --yes, never twice
  callrelay schemas [--write | --check]      JSON Schemas for relay.yaml, adapters, events, records
`;

export type Command = (args: string[]) => void | Promise<void>;

export function fail(msg: string, code = 1): never {
  process.stderr.write(`${msg}\n`);
  process.exit(code);
}

/** `readOnly`: the command needs no CRM or admin secrets (loadConfig). */
export function configFrom(
  values: { config?: string | undefined },
  opts: { readOnly?: boolean } = {},
): RelayConfig {
  return loadConfig(
    values.config ? resolve(values.config) : defaultConfigPath(),
    process.env,
    opts,
  );
}

/** Run `use` with the store of relay.yaml, closed afterwards whatever happens. */
export async function withStore<T>(
  values: { config?: string | undefined },
  use: (store: Store) => Promise<T>,
): Promise<T> {
  // Reading the store needs no CRM tokens: an operator can run these without them.
  const store = await openStore(configFrom(values, { readOnly: true }));
  try {
    return await use(store);
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
