#!/usr/bin/env node
// The callrelay command: start | check | map | calls | unmapped | replay | schemas.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { defaultConfigPath, loadConfig, type RelayConfig } from './config/load.js';
import { jsonSchemas, renderSchema } from './config/json-schemas.js';
import { ConfigError, displayPath } from './lib/yaml.js';
import { compareCalls, readFlow, runFlow } from './flows.js';
import { loadAdapter, loadAdapterDir, type LoadedAdapter } from './ingest/adapter.js';
import { BUNDLED_ADAPTERS } from './config/load.js';
import { Pipeline } from './pipeline/pipeline.js';
import { createTargets, openStore, startRelay } from './runtime.js';
import { createLogger } from './telemetry/log.js';

const USAGE = `callrelay: phone-system webhooks in, one call record per call out.

Usage:
  callrelay start   [--config FILE]          run the relay (default config: $RELAY_CONFIG or ./relay.yaml)
  callrelay check   [--config FILE] [--online] [ADAPTER.yaml ...]
                                             validate relay.yaml and every adapter; errors name file:line:col;
                                             --online: also call each CRM once with its token
  callrelay map     --adapter NAME|FILE FLOW.json [--timezone TZ] [--country CC]
                                             print the canonical events and calls a flow produces;
                                             exits 1 when the flow's "expect" does not hold
  callrelay calls   [--config FILE] [--limit N]       recent calls, newest change first
  callrelay unmapped [--config FILE] [--limit N]      stored requests no adapter rule could map
  callrelay dead    [--config FILE] [--limit N]      deliveries that gave up, with the CRM's reason
  callrelay replay  [--config FILE] ID ... | --all-unmapped | dl-ID ... | --all
                                             ID: map a stored request again (after an adapter fix);
                                             dl-ID / --all: retry dead deliveries
  callrelay schemas [--write | --check]      JSON Schemas for relay.yaml, adapters, events, records
`;

const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

function fail(msg: string, code = 1): never {
  process.stderr.write(`${msg}\n`);
  process.exit(code);
}

function configFrom(values: { config?: string | undefined }): RelayConfig {
  return loadConfig(values.config ? resolve(values.config) : defaultConfigPath());
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

async function cmdStart(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  const t0 = performance.now();
  const cfg = configFrom(values);
  const log = createLogger(cfg.logLevel);
  for (const f of cfg.envFallbacks) {
    if (f.path.at(-1) === 'token')
      log.warn(
        { variable: f.name, field: f.path.join('.') },
        `${f.name} is not set: ${f.path.join('.')} uses the example default from ${cfg.file}; set it before exposing the relay`,
      );
  }
  const relay = await startRelay(cfg, log);
  log.info(
    {
      port: relay.port,
      store: 'sqlite' in cfg.store ? displayPath(cfg.store.sqlite) : 'postgres',
      sources: cfg.sources.map((s) => `${s.name}:${s.adapter.name}`),
      startMs: Math.round(performance.now() - t0),
    },
    `callrelay listening on ${cfg.server.host}:${relay.port}`,
  );
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    relay.close().then(
      () => {
        log.flush();
        process.exit(0);
      },
      (err: Error) => {
        log.error({ err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function cmdCheck(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, online: { type: 'boolean' } },
  });
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

function findAdapter(spec: string): LoadedAdapter {
  if (/[\\/]|\.ya?ml$/.test(spec) || existsSync(spec)) return loadAdapter(resolve(spec));
  for (const dir of [resolve('adapters'), BUNDLED_ADAPTERS]) {
    const a = loadAdapterDir(dir).get(spec);
    if (a) return a;
  }
  return fail(`no adapter named "${spec}" in ./adapters or the bundled adapters`);
}

async function cmdMap(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      adapter: { type: 'string', short: 'a' },
      timezone: { type: 'string' },
      country: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  if (!values.adapter || positionals.length !== 1)
    fail(
      'usage: callrelay map --adapter NAME|FILE FLOW.json [--timezone TZ] [--country CC] [--json]',
      2,
    );
  const adapter = findAdapter(values.adapter);
  const flow = readFlow(positionals[0]!);
  const run = await runFlow(flow, adapter, {
    timezone: values.timezone,
    defaultCountry: values.country,
  });
  const diffs = flow.expect ? compareCalls(flow.expect.calls, run.calls) : [];
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ flow: flow.name, steps: run.steps, calls: run.calls, mismatches: diffs }, null, 2)}\n`,
    );
  } else {
    const out: string[] = [`flow ${flow.name} through adapter ${adapter.name}`, ''];
    for (const s of run.steps) {
      const r = s.result;
      const head = `#${s.inboxId} ${s.label}`;
      if (r.status === 'mapped')
        for (const e of r.events) out.push(`${head}\n    ${r.rule} -> ${JSON.stringify(e)}`);
      else
        out.push(
          `${head}\n    ${r.status}${r.status === 'unmapped' ? ` ${r.code}: ${r.message}` : `: ${r.message}`}`,
        );
    }
    out.push('', `${run.calls.length} call(s):`);
    for (const c of run.calls)
      out.push(JSON.stringify({ ...c, events: `${c.events.length} events` }, null, 2));
    if (flow.expect)
      out.push(
        '',
        diffs.length
          ? `expect: ${diffs.length} mismatch(es)\n  ${diffs.join('\n  ')}`
          : 'expect: all expected calls hold',
      );
    process.stdout.write(`${out.join('\n')}\n`);
  }
  if (diffs.length) process.exit(1);
}

async function cmdCalls(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c' },
      limit: { type: 'string', default: '20' },
      json: { type: 'boolean' },
    },
  });
  const store = await openStore(configFrom(values));
  try {
    const rows = await store.listCalls({ limit: Number(values.limit) || 20 });
    if (values.json)
      return void process.stdout.write(
        `${JSON.stringify(
          rows.map((r) => r.record),
          null,
          2,
        )}\n`,
      );
    const view = rows.map(({ record: c, updatedAt }) => ({
      started: c.startedAt.replace('T', ' ').slice(0, 19),
      source: c.source,
      call: c.callId,
      dir: c.direction,
      status: c.status,
      outcome: c.outcome,
      number: c.externalE164 ?? c.externalNumber,
      agent: c.agent,
      secs: c.durationSec,
      rec: c.recordings.length,
      ai: c.ai ? 'yes' : '',
      updated: updatedAt.replace('T', ' ').slice(0, 19),
    }));
    process.stdout.write(`${rows.length ? table(view, Object.keys(view[0]!)) : 'no calls yet'}\n`);
  } finally {
    await store.close();
  }
}

async function cmdUnmapped(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string', short: 'c' }, limit: { type: 'string', default: '50' } },
  });
  const store = await openStore(configFrom(values));
  try {
    const rows = await store.listInbox({ state: 'unmapped', limit: Number(values.limit) || 50 });
    const view = rows.map((r) => ({
      id: r.id,
      received: r.receivedAt.replace('T', ' ').slice(0, 19),
      source: r.source,
      method: r.method,
      bytes: r.body.length,
      code: r.reasonCode,
      reason: r.reason,
    }));
    process.stdout.write(
      `${rows.length ? table(view, Object.keys(view[0]!)) : 'no unmapped requests'}\n`,
    );
  } finally {
    await store.close();
  }
}

async function cmdDead(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string', short: 'c' }, limit: { type: 'string', default: '50' } },
  });
  const store = await openStore(configFrom(values));
  try {
    const rows = await store.listDeliveries({ state: 'dead', limit: Number(values.limit) || 50 });
    const view = rows.map((d) => ({
      id: `dl-${d.id}`,
      target: d.target,
      source: d.source,
      call: d.callId,
      attempts: d.attempts,
      since: (d.firstFailedAt ?? d.updatedAt).replace('T', ' ').slice(0, 19),
      reason: d.lastError,
    }));
    process.stdout.write(
      `${rows.length ? table(view, Object.keys(view[0]!)) : 'no dead letters'}\n`,
    );
  } finally {
    await store.close();
  }
}

async function cmdReplay(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      'all-unmapped': { type: 'boolean' },
      all: { type: 'boolean' },
    },
  });
  const dead = positionals.filter((p) => p.startsWith('dl-'));
  const inbox = positionals.filter((p) => !p.startsWith('dl-'));
  if (!positionals.length && !values['all-unmapped'] && !values.all)
    fail('usage: callrelay replay ID ... | --all-unmapped | dl-ID ... | --all', 2);
  const ids = inbox.map(Number);
  const deadIds = dead.map((d) => Number(d.slice(3)));
  if ([...ids, ...deadIds].some((n) => !Number.isInteger(n)))
    fail(
      'replay takes stored request ids (see `callrelay unmapped`) or dead-letter ids dl-N (see `callrelay dead`)',
      2,
    );
  const cfg = configFrom(values);
  const store = await openStore(cfg);
  let failed = 0;
  try {
    if (values.all || deadIds.length) {
      const n = await store.retryDeliveries(values.all ? 'dead' : deadIds);
      process.stdout.write(
        `${n} dead letter(s) due again; a running relay retries them within a second\n`,
      );
      if (!values.all && n < deadIds.length) failed++;
    }
    if (!ids.length && !values['all-unmapped']) return;
    const pipeline = new Pipeline(store, cfg.sources);
    const rows = values['all-unmapped']
      ? []
      : await Promise.all(ids.map((id) => store.getInbox(id)));
    if (values['all-unmapped']) {
      for (let after = 0; ;) {
        const page = await store.listInbox({ state: 'unmapped', limit: 500, afterId: after });
        if (!page.length) break;
        rows.push(...page);
        after = page.at(-1)!.id;
      }
    }
    let mapped = 0;
    for (const [i, row] of rows.entries()) {
      if (!row) {
        process.stdout.write(`#${ids[i]}: no such stored request\n`);
        continue;
      }
      const r = await pipeline.replay(row);
      if (r.status !== 'unmapped') mapped++;
      process.stdout.write(
        `#${row.id}: ${r.status}${r.status === 'unmapped' ? ` ${r.code}: ${r.message}` : ` (rule ${r.rule})`}\n`,
      );
    }
    if (mapped < rows.length) failed++;
    process.stdout.write(`${mapped} of ${rows.length} mapped\n`);
  } finally {
    await store.close();
  }
  if (failed) process.exit(1);
}

function cmdSchemas(args: string[]): void {
  const { values } = parseArgs({
    args,
    options: { write: { type: 'boolean' }, check: { type: 'boolean' }, dir: { type: 'string' } },
  });
  const dir = resolve(values.dir ?? join(PACKAGE_ROOT, 'config'));
  const schemas = jsonSchemas();
  if (values.write) {
    mkdirSync(dir, { recursive: true });
    for (const [f, s] of Object.entries(schemas)) writeFileSync(join(dir, f), renderSchema(s));
    process.stdout.write(`wrote ${Object.keys(schemas).join(', ')} to ${displayPath(dir)}\n`);
  } else if (values.check) {
    const stale = Object.entries(schemas).filter(
      ([f, s]) =>
        !existsSync(join(dir, f)) || readFileSync(join(dir, f), 'utf8') !== renderSchema(s),
    );
    if (stale.length)
      fail(
        `stale in ${displayPath(dir)}: ${stale.map(([f]) => f).join(', ')} (run: npm run schemas)`,
      );
    process.stdout.write('schemas are up to date\n');
  } else process.stdout.write(renderSchema(schemas));
}

const COMMANDS: Record<string, (args: string[]) => void | Promise<void>> = {
  start: cmdStart,
  check: cmdCheck,
  map: cmdMap,
  calls: cmdCalls,
  unmapped: cmdUnmapped,
  dead: cmdDead,
  replay: cmdReplay,
  schemas: cmdSchemas,
};

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help')
    return void process.stdout.write(USAGE);
  const run = COMMANDS[cmd];
  if (!run) fail(`unknown command "${cmd}"\n\n${USAGE}`, 2);
  try {
    await run(rest);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    if (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))
      fail(`${err.message}\n\n${USAGE}`, 2);
    fail(`callrelay ${cmd}: ${(err as Error).message}`);
  }
}

void main(process.argv.slice(2));
