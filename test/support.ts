// Shared test helpers: temp folders, relay.yaml writing, golden cases on disk, a relay process.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CallRecord } from '../src/domain/model.js';
import type { RawRequest } from '../src/domain/request.js';
import { readFlow, runFlow, type Flow, type FlowRequest } from '../src/flows.js';
import { loadAdapterDir } from '../src/ingest/adapter.js';
import type { Relay } from '../src/runtime.js';
import { freePort } from './harness/postgres.mjs';
import { MAIN, startRelayProcess, waitHealthy } from './harness/relay-process.mjs';

export { freePort, MAIN };

export const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
export const ADAPTERS = join(ROOT, 'adapters');

/** A JSON webhook from the 3cx source, received now. */
export function webhook(body: string): RawRequest {
  return {
    source: '3cx',
    kind: 'webhook',
    receivedAt: new Date().toISOString(),
    method: 'POST',
    query: '',
    contentType: 'application/json',
    headers: {},
    body: Buffer.from(body),
  };
}

export function tempDir(prefix = 'callrelay-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Every golden case: adapters/cases/<adapter>/<flow>.json. */
export function goldenCases(): { adapter: string; file: string; flow: Flow }[] {
  const base = join(ADAPTERS, 'cases');
  return readdirSync(base, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .flatMap((d) =>
      readdirSync(join(base, d.name))
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => ({
          adapter: d.name,
          file: join(base, d.name, f),
          flow: readFlow(join(base, d.name, f)),
        })),
    );
}

export const TOKENS = {
  admin: 'test-admin-token-123',
  threecx: 'test-3cx-token-456',
  callerdesk: 'test-cd-token-789',
};

/**
 * Every adapter under adapters/: the test relays have one source per adapter, named after it, so
 * that an adapter added with its golden cases is tested with no change here.
 */
const LOADED_ADAPTERS = loadAdapterDir(ADAPTERS);
export const ADAPTER_NAMES: string[] = [...LOADED_ADAPTERS.keys()].sort();

/** The webhook token of a test source. */
export function sourceToken(source: string): string {
  return (
    ({ '3cx': TOKENS.threecx, callerdesk: TOKENS.callerdesk } as Record<string, string>)[source] ??
    `test-${source}-token-000`
  );
}

export type SourceSettings = NonNullable<Flow['source']>;
/** Per source name (a golden flow's `source` under its adapter's name). */
export type SourceSettingsMap = Record<string, SourceSettings | undefined>;

// The 3CX sources of the tests are a PBX in Prague (as the 3cx-crm-template cases declare, so a
// national number finds its contact); other sources use their adapter's defaults.
const SOURCE_SETTINGS: Record<string, SourceSettings> = {
  '3cx': { timezone: 'Europe/Prague', defaultCountry: 'CZ' },
  '3cx-crm-template': { timezone: 'Europe/Prague', defaultCountry: 'CZ' },
};

/**
 * The settings a test relay gives source `adapter` when written with `sources: { [adapter]:
 * given }` (a golden flow's `source`): fold a flow with these to get the records that relay makes.
 */
export function relaySourceSettings(adapter: string, given?: SourceSettings): SourceSettings {
  return { ...SOURCE_SETTINGS[adapter], ...given };
}

/**
 * Whether two golden cases can go into one test relay as far as their sources go: they come
 * from different adapters, or declare the same settings for theirs.
 */
export function sameRelaySource(
  a: { adapter: string; flow: Flow },
  b: { adapter: string; flow: Flow },
): boolean {
  if (a.adapter !== b.adapter) return true;
  const x = relaySourceSettings(a.adapter, a.flow.source);
  const y = relaySourceSettings(b.adapter, b.flow.source);
  return x.timezone === y.timezone && x.defaultCountry === y.defaultCountry;
}

/**
 * Golden cases grouped for test relays that each take several: flows share call ids (one call as
 * 3CX's GET, v1 and v2 templates would send it), so a case joins the first group none of whose
 * `callKeys` it repeats and whose sources it agrees with (sameRelaySource), else starts one.
 */
export function relayBatches<C extends { adapter: string; flow: Flow }>(
  cases: readonly C[],
  callKeys: (c: C) => string[],
): C[][] {
  const out: { cases: C[]; keys: Set<string> }[] = [];
  for (const c of cases) {
    const keys = callKeys(c);
    let g = out.find(
      (x) => !keys.some((k) => x.keys.has(k)) && x.cases.every((y) => sameRelaySource(y, c)),
    );
    if (!g) out.push((g = { cases: [], keys: new Set() }));
    g.cases.push(c);
    for (const k of keys) g.keys.add(k);
  }
  return out.map((g) => g.cases);
}

/** A golden case's calls as relayBatches keys them: its adapter and each expected call id. */
export const expectedCallKeys = (c: { adapter: string; flow: Flow }): string[] =>
  (c.flow.expect?.calls ?? []).map((e) => `${c.adapter}:${String(e.callId)}`);

/** The call records a flow folds into, as a test relay given the flow's `source` folds them. */
export async function recordsOf(c: { adapter: string; flow: Flow }): Promise<CallRecord[]> {
  const settings = relaySourceSettings(c.adapter, c.flow.source);
  return (await runFlow(c.flow, LOADED_ADAPTERS.get(c.adapter)!, settings)).calls;
}

/** The `sources` of writeRelayYaml for a relay that takes these cases (sameRelaySource). */
export function casesSources(cases: { adapter: string; flow: Flow }[]): SourceSettingsMap {
  return Object.fromEntries(cases.map((c) => [c.adapter, c.flow.source]));
}

export function writeRelayYaml(
  dir: string,
  extra: {
    port?: number;
    bodyLimit?: string;
    /** Extra lines under server: (two-space indented). */
    server?: string;
    adapters?: string;
    more?: string;
    /** Extra lines for the 3cx source (recordings access). */
    threecx?: string;
    store?: string;
    /** Settings of a source (a golden flow's `source`), over the defaults above. */
    sources?: SourceSettingsMap;
  } = {},
): string {
  const file = join(dir, 'relay.yaml');
  const sources = ADAPTER_NAMES.map((name) => {
    const set = { ...SOURCE_SETTINGS[name], ...extra.sources?.[name] };
    const lines = [`  - name: ${name}`, `    adapter: ${name}`, `    token: ${sourceToken(name)}`];
    if (set.timezone) lines.push(`    timezone: ${set.timezone}`);
    if (set.defaultCountry) lines.push(`    defaultCountry: ${set.defaultCountry}`);
    return `${lines.join('\n')}\n${name === '3cx' ? (extra.threecx ?? '') : ''}`;
  }).join('');
  writeFileSync(
    file,
    `server:
  port: ${extra.port ?? 0}
  host: 127.0.0.1
  bodyLimit: ${extra.bodyLimit ?? '1MiB'}
${extra.server ?? ''}store:
  ${extra.store ?? 'sqlite: ./relay.db'}
admin:
  token: ${TOKENS.admin}
log:
  level: warn
adapters: ${extra.adapters ?? ADAPTERS}
sources:
${sources}${extra.more ?? ''}`,
  );
  return file;
}

/**
 * Run `callrelay start ARGS` until /healthz answers on `port`, then stop it (SIGTERM), whatever
 * happened; resolves with what it wrote to stdout (its log).
 */
export async function startAndStop(
  args: string[],
  port: number,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const child = spawn(process.execPath, [MAIN, 'start', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const exit = new Promise((r) => child.once('exit', r));
  try {
    await waitHealthy(port, { child });
  } finally {
    child.kill('SIGTERM');
    await exit;
  }
  return out;
}

/** Start `callrelay start` as a real process; resolves once /healthz answers on `port`. */
export function spawnRelay(config: string, port: number): Promise<ChildProcess> {
  // A cold start takes well under a second (the bench holds it to that); on two cores shared with
  // other suites, node alone can take seconds to load. The wait ends as soon as /healthz answers.
  return startRelayProcess(config, {
    port,
    env: { ...process.env, PORT: String(port) },
    timeoutMs: 20_000,
  });
}

/**
 * Send one request of a flow to a relay on `port`, as the provider would (skips to-pbx entries).
 */
export async function sendFlowRequest(
  port: number,
  source: string,
  r: FlowRequest,
): Promise<Response | undefined> {
  if (r.direction === 'to-pbx') return undefined;
  // A case may give a query string with any method (a provider that puts the line or account in
  // its webhook URL): it goes on the URL as recorded, spaces made sendable.
  const query = (r.query ?? '').replace(/ /g, '%20');
  const url = `http://127.0.0.1:${port}/hooks/${source}/${sourceToken(source)}${query ? `?${query}` : ''}`;
  if (r.method === 'GET') return fetch(url);
  return fetch(url, {
    method: r.method,
    headers: r.contentType ? { 'content-type': r.contentType } : {},
    body: r.body ?? '',
  });
}

/**
 * Whether the number a CRM got is a golden expectation's `externalNumber`, whatever the format:
 * its digits end with the expectation's (leading zeros aside: the relay may send E.164). An
 * expectation of null (a withheld number) wants no number; one left out checks nothing.
 */
export function sameParty(sent: unknown, expected: unknown): boolean {
  const digits = (v: unknown): string => (typeof v === 'string' ? v.replace(/\D/g, '') : '');
  if (expected === undefined) return true;
  if (expected === null) return digits(sent) === '';
  const want = digits(expected).replace(/^0+/, '');
  return want.length > 0 && digits(sent).endsWith(want);
}

/** Wait until everything committed is folded and no delivery is due (settle windows included). */
export async function settleDeliveries(relay: Relay, timeoutMs = 10_000): Promise<void> {
  for (const t0 = Date.now(); Date.now() - t0 < timeoutMs;) {
    await relay.pipeline.drain();
    await relay.delivery.settle();
    if (!(await relay.store.listDeliveries({ state: 'due', limit: 1 })).length) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('deliveries did not settle');
}

/** A fresh, empty database on the test run's PostgreSQL; returns its URL. */
export async function freshPostgresDatabase(baseUrl: string): Promise<string> {
  const { default: pg } = await import('pg');
  const name = `t_${Math.random().toString(36).slice(2, 12)}`;
  const admin = new pg.Client({ connectionString: `${baseUrl}/postgres` });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return `${baseUrl}/${name}`;
}

/**
 * 3CX webhooks of one call from a misconfigured PBX template that puts secrets in its payloads:
 * the admin token as the DID, `crmToken` in the title. The no-secrets tests send these.
 */
export function secretBearingCall(id: string, crmToken: string): Record<string, unknown>[] {
  const call = { event: 'incoming', id: `${id}-1`, callerid: '420774852629', user: '102' };
  return [
    { ...call, did: TOKENS.admin },
    { ...call, finishtype: 'Ok', transfer: 'False', did: '', title: `Call ${crmToken} (0:07)` },
  ];
}

/** A browser of sorts: keeps cookies, sends Origin and Sec-Fetch-Site, follows no redirect. */
export class ConsoleClient {
  private readonly jar = new Map<string, string>();
  csrf = '';
  constructor(private readonly base: string) {}

  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const res = await fetch(`${this.base}${path}`, {
      ...init,
      redirect: 'manual',
      headers: {
        origin: this.base,
        'sec-fetch-site': 'same-origin',
        cookie: [...this.jar].map(([k, v]) => `${k}=${v}`).join('; '),
        ...(init.headers as Record<string, string>),
      },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const [k, v] = pair!.split('=') as [string, string];
      if (/Max-Age=0/i.test(c) || v === '') this.jar.delete(k);
      else this.jar.set(k, v);
    }
    return res;
  }

  async post(path: string, fields: Record<string, string> = {}): Promise<Response> {
    return this.request(path, {
      method: 'POST',
      body: new URLSearchParams({ _csrf: this.csrf, ...fields }),
    });
  }
}
