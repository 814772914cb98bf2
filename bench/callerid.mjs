// Caller-ID lookups under a ring storm (issue 23): callrelay (its own process, SQLite, a source
// `pbx` with crm: looking up in HubSpot, the shipped defaults for the cache, the answer budget and
// HubSpot's search rate) behind a HubSpot fake (hubspot-search.mjs, its own process) that counts
// its contact searches and answers 429 above HubSpot's documented search rate (5 a second), with
// the CRM's own TLS-free loopback as the only distance. 200 rings at once for 50 numbers (four
// per number, as 3CX asks when a call rings several phones or PBXs), then the same again once the
// answers are cached, against a fair ceiling in the same run: a bare Hono server
// (lookup-ceiling.mjs) answering the same JSON on the same path, with the same generator.
// Fails when the relay searched a number more than once or HubSpot answered 429.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { startRelayProcess, waitHealthy } from '../test/harness/relay-process.mjs';

export const NUMBERS = 50;
const RINGS = 200;
/**
 * One connection per ring: real rings come from many PBXs (3CX opens up to MaxConcurrentRequests
 * each), the bench's from one address, so the relay here allows that address more than its
 * default server.maxConnectionsPerAddress (64). Fewer connections would time the rings' queue in
 * the generator rather than the relay's answers.
 */
const CONNECTIONS = RINGS;
const TOKEN = 'bench-pbx-token-0123456789';
export const PORTAL = '4711';

/** The i-th caller's E.164 number (Czech mobiles +420 774 100 000 ...). */
export const numberOf = (i) => `+420774100${String(i).padStart(3, '0')}`;
const indexOf = (number) => Number(String(number).replace(/\D/g, '').slice(-3));
export const contactId = (i) => String(1000 + i);

/** What the relay answers for a known caller (the contract in src/callerid/template.ts). */
export function lookupAnswer(asked) {
  const i = indexOf(asked);
  if (!(i >= 0 && i < NUMBERS)) return { contacts: [] };
  return {
    contacts: [
      {
        id: contactId(i),
        firstName: 'Caller',
        lastName: `Number ${i}`,
        company: 'Bench s.r.o.',
        email: `caller${i}@bench.example`,
        phoneBusiness: asked,
        phoneMobile: '',
        phoneHome: '',
        phoneOther: '',
        url: `https://app.hubspot.com/contacts/${PORTAL}/record/0-1/${contactId(i)}`,
        entityType: 'Contacts',
        target: 'hubspot',
      },
    ],
  };
}

const AUTH = `Basic ${Buffer.from(`3cx:${TOKEN}`).toString('base64')}`;

/** One ring's lookup: its latency, status and whether it found the caller. */
async function ring(pool, k) {
  const t0 = performance.now();
  const res = await pool.request({
    path: `/hooks/pbx/crm/lookup/${numberOf(k % NUMBERS)}`,
    method: 'GET',
    headers: { authorization: AUTH },
  });
  const body = await res.body.json().catch(() => ({}));
  return {
    ms: performance.now() - t0,
    status: res.statusCode,
    hit: Array.isArray(body.contacts) && body.contacts.length > 0,
  };
}

/** 3CX's rings: `RINGS` lookups at once over `NUMBERS` numbers. */
const burst = (pool) => Promise.all(Array.from({ length: RINGS }, (_, k) => ring(pool, k)));

/** The same rings one at a time: what one answer costs with nothing else in flight. */
async function oneByOne(pool) {
  const out = [];
  for (let k = 0; k < RINGS; k++) out.push(await ring(pool, k));
  return out;
}

function summary(samples) {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const q = (p) => +ms[Math.min(ms.length - 1, Math.floor(ms.length * p))].toFixed(2);
  return {
    answers: samples.length,
    hits: samples.filter((s) => s.hit).length,
    non200: samples.filter((s) => s.status !== 200).length,
    p50ms: q(0.5),
    p99ms: q(0.99),
    maxMs: +ms.at(-1).toFixed(2),
  };
}

/**
 * The bench: first answers (the CRM asked, within the answer budget), then `rounds` cached bursts
 * alternating with the ceiling's.
 */
export async function callerIdBench({
  root,
  port = 19060,
  ceilingPort = 19061,
  hsPort = 19062,
  rounds = 5,
}) {
  const hs = spawn(process.execPath, [join(root, 'bench', 'hubspot-search.mjs')], {
    env: { ...process.env, PORT: String(hsPort) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  /** @returns {Promise<{ searches: number, tooMany: number, mostForOneNumber: number }>} */
  const crmStats = async () =>
    /** @type {any} */ (await (await fetch(`http://127.0.0.1:${hsPort}/stats`)).json());
  const dir = mkdtempSync(join(tmpdir(), 'callrelay-callerid-bench-'));
  writeFileSync(
    join(dir, 'relay.yaml'),
    `server: { port: ${port}, host: 127.0.0.1, maxConnectionsPerAddress: ${RINGS + 56} }\nstore: { sqlite: ./relay.db }\nlog: { level: warn }\nadapters: ${join(root, 'adapters')}\n` +
      `sources:\n  - name: pbx\n    adapter: 3cx-crm-template\n    token: ${TOKEN}\n    timezone: Europe/Prague\n    defaultCountry: CZ\n    crm: { lookup: [hubspot] }\n` +
      `targets:\n  - name: hubspot\n    type: hubspot\n    token: bench-hubspot-token\n    portalId: ${PORTAL}\n    baseUrl: http://127.0.0.1:${hsPort}\n`,
  );
  const ceiling = spawn(process.execPath, [join(root, 'bench', 'lookup-ceiling.mjs')], {
    env: { ...process.env, PORT: String(ceilingPort), TOKEN },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const [relayUp, ceilingUp, hsUp] = await Promise.allSettled([
    startRelayProcess(join(dir, 'relay.yaml'), { port, stderr: 'inherit', timeoutMs: 15_000 }),
    waitHealthy(ceilingPort, { child: ceiling, timeoutMs: 15_000 }),
    waitHealthy(hsPort, { child: hs, timeoutMs: 15_000 }),
  ]);
  const relay = relayUp.status === 'fulfilled' ? relayUp.value : undefined;
  const relayPool = new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS });
  const ceilingPool = new Pool(`http://127.0.0.1:${ceilingPort}`, { connections: CONNECTIONS });
  try {
    if (relayUp.status === 'rejected') throw relayUp.reason;
    if (ceilingUp.status === 'rejected') throw ceilingUp.reason;
    if (hsUp.status === 'rejected') throw hsUp.reason;
    // The ceiling's connections warm; the relay's first burst opens its own, as a PBX would.
    await burst(ceilingPool);
    const first = summary(await burst(relayPool));
    // Until every number answers from the cache: the searches a ring outlived still finish.
    const deadline = Date.now() + 60_000;
    for (let i = 0; i < NUMBERS && Date.now() < deadline;) {
      const res = await relayPool.request({
        path: `/hooks/pbx/crm/lookup/${numberOf(i)}`,
        method: 'GET',
        headers: { authorization: `Basic ${Buffer.from(`3cx:${TOKEN}`).toString('base64')}` },
      });
      const body = /** @type {{ contacts?: unknown[] }} */ (
        await res.body.json().catch(() => ({}))
      );
      if (body.contacts?.length) i++;
      else await new Promise((r) => setTimeout(r, 50));
    }
    const searchesBeforeCached = (await crmStats()).searches;
    const cached = [];
    const bare = [];
    const cachedAlone = [];
    const bareAlone = [];
    for (let r = 0; r < rounds; r++) {
      // Alternating, so that the machine's drift hits both alike.
      if (r % 2) bare.push(...(await burst(ceilingPool)));
      cached.push(...(await burst(relayPool)));
      if (!(r % 2)) bare.push(...(await burst(ceilingPool)));
    }
    cachedAlone.push(...(await oneByOne(relayPool)));
    bareAlone.push(...(await oneByOne(ceilingPool)));
    const stats = await crmStats();
    const result = {
      rings: RINGS,
      connections: CONNECTIONS,
      numbers: NUMBERS,
      first,
      cached: summary(cached),
      ceiling: summary(bare),
      cachedOneByOne: summary(cachedAlone),
      ceilingOneByOne: summary(bareAlone),
      crmSearches: stats.searches,
      crmSearchesMostForOneNumber: stats.mostForOneNumber,
      crmSearchesWhileCached: stats.searches - searchesBeforeCached,
      crm429: stats.tooMany,
    };
    const problems = [];
    if (stats.searches > NUMBERS || stats.mostForOneNumber > 1)
      problems.push(`${stats.searches} CRM searches for ${NUMBERS} numbers (at most one each)`);
    if (stats.tooMany) problems.push(`HubSpot answered 429 ${stats.tooMany} times`);
    const misses = [...cached, ...cachedAlone].filter((x) => !x.hit).length;
    if (misses) problems.push(`${misses} cached answers were not hits`);
    if ([...cached, ...cachedAlone].some((x) => x.status !== 200) || first.non200)
      problems.push('answers other than 200');
    result.ok = problems.length === 0;
    result.message = result.ok
      ? 'caller-ID lookups: at most one CRM search per number, no 429'
      : `BENCH FAILED (caller-ID lookups): ${problems.join('; ')}`;
    return result;
  } finally {
    await relayPool.close();
    await ceilingPool.close();
    // Gone before its directory is removed (it writes on the way out).
    if (relay && relay.exitCode === null) {
      const exited = once(relay, 'exit');
      relay.kill('SIGTERM');
      await exited;
    }
    ceiling.kill('SIGKILL');
    hs.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}
