// Caller-ID lookups under a ring storm (issue 23): callrelay (its own process, SQLite, a source
// `pbx` with crm: looking up in HubSpot, the shipped defaults for the cache, the answer budget and
// HubSpot's search rate) behind a HubSpot fake that counts its contact searches and answers 429
// above HubSpot's documented search rate (5 a second). 200 rings at once for 50 numbers (four
// per number, as 3CX asks when a call rings several phones or PBXs), then the same again once the
// answers are cached, against a fair ceiling in the same run: a bare Hono server
// (lookup-ceiling.mjs) answering the same JSON on the same path, with the same generator.
// Fails when the relay searched a number more than once or HubSpot answered 429.

import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { startRelayProcess, waitHealthy } from '../test/harness/relay-process.mjs';

const NUMBERS = 50;
const RINGS = 200;
const TOKEN = 'bench-pbx-token-0123456789';
const PORTAL = '4711';
/** HubSpot's search limit: requests per second per account. */
const SEARCH_PER_SEC = 5;

/** The i-th caller's E.164 number (Czech mobiles +420 774 100 000 ...). */
const numberOf = (i) => `+420774100${String(i).padStart(3, '0')}`;
const indexOf = (number) => Number(String(number).replace(/\D/g, '').slice(-3));
const contactId = (i) => String(1000 + i);

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

/** HubSpot's contact search for the bench's callers, with its search rate limit. */
function hubspotFake() {
  const stats = { searches: 0, tooMany: 0, other: 0, searchedDigits: new Map() };
  const window = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const url = req.url ?? '';
      res.setHeader('content-type', 'application/json');
      if (req.method === 'POST' && url.startsWith('/crm/v3/objects/contacts/search')) {
        const now = performance.now();
        while (window.length && now - window[0] >= 1000) window.shift();
        if (window.length >= SEARCH_PER_SEC) {
          stats.tooMany++;
          res.statusCode = 429;
          return res.end(
            '{"status":"error","message":"You have reached your secondly limit.","category":"RATE_LIMITS"}',
          );
        }
        window.push(now);
        stats.searches++;
        // Every value the filters or the query carry; a contact matches on its national digits,
        // as HubSpot's calculated phone properties do.
        const q = JSON.parse(body || '{}');
        const values = [
          q.query,
          ...(q.filterGroups ?? []).flatMap((g) =>
            (g.filters ?? []).flatMap((f) => [f.value, ...(f.values ?? [])]),
          ),
        ]
          .filter((v) => v !== undefined && v !== null)
          .map((v) => String(v).replace(/\D/g, ''))
          .filter((d) => d.length >= 6);
        for (const d of new Set(values))
          stats.searchedDigits.set(d, (stats.searchedDigits.get(d) ?? 0) + 1);
        const results = [];
        for (let i = 0; i < NUMBERS; i++) {
          const national = numberOf(i).slice(4);
          if (!values.some((d) => d === national || d.endsWith(national))) continue;
          results.push({
            id: contactId(i),
            properties: {
              firstname: 'Caller',
              lastname: `Number ${i}`,
              company: 'Bench s.r.o.',
              email: `caller${i}@bench.example`,
              phone: `+420 774 100 ${String(i).padStart(3, '0')}`,
              hs_searchable_calculated_phone_number: national,
              createdate: '2025-01-01T08:00:00.000Z',
              hs_object_id: contactId(i),
            },
            createdAt: '2025-01-01T08:00:00.000Z',
            updatedAt: '2025-01-01T08:00:00.000Z',
            archived: false,
          });
        }
        return res.end(JSON.stringify({ total: results.length, results }));
      }
      stats.other++;
      if (url.startsWith('/account-info/')) return res.end(`{"portalId":${PORTAL}}`);
      res.end('{"results":[]}');
    });
  });
  return { server, stats };
}

/** 3CX's rings: `RINGS` lookups at once over `NUMBERS` numbers; each one's latency and hit. */
async function burst(pool) {
  const auth = `Basic ${Buffer.from(`3cx:${TOKEN}`).toString('base64')}`;
  return Promise.all(
    Array.from({ length: RINGS }, async (_, k) => {
      const t0 = performance.now();
      const res = await pool.request({
        path: `/hooks/pbx/crm/lookup/${numberOf(k % NUMBERS)}`,
        method: 'GET',
        headers: { authorization: auth },
      });
      const body = await res.body.json().catch(() => ({}));
      return {
        ms: performance.now() - t0,
        status: res.statusCode,
        hit: Array.isArray(body.contacts) && body.contacts.length > 0,
      };
    }),
  );
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
export async function callerIdBench({ root, port = 19060, ceilingPort = 19061, rounds = 5 }) {
  const { server: hs, stats } = hubspotFake();
  await /** @type {Promise<void>} */ (new Promise((r) => hs.listen(0, '127.0.0.1', () => r())));
  const hsPort = /** @type {import('node:net').AddressInfo} */ (hs.address()).port;
  const dir = mkdtempSync(join(tmpdir(), 'callrelay-callerid-bench-'));
  writeFileSync(
    join(dir, 'relay.yaml'),
    `server: { port: ${port}, host: 127.0.0.1 }\nstore: { sqlite: ./relay.db }\nlog: { level: warn }\nadapters: ${join(root, 'adapters')}\n` +
      `sources:\n  - name: pbx\n    adapter: 3cx-crm-template\n    token: ${TOKEN}\n    timezone: Europe/Prague\n    defaultCountry: CZ\n    crm: { lookup: [hubspot] }\n` +
      `targets:\n  - name: hubspot\n    type: hubspot\n    token: bench-hubspot-token\n    portalId: ${PORTAL}\n    baseUrl: http://127.0.0.1:${hsPort}\n`,
  );
  const ceiling = spawn(process.execPath, [join(root, 'bench', 'lookup-ceiling.mjs')], {
    env: { ...process.env, PORT: String(ceilingPort), TOKEN },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const [relayUp, ceilingUp] = await Promise.allSettled([
    startRelayProcess(join(dir, 'relay.yaml'), { port, stderr: 'inherit', timeoutMs: 15_000 }),
    waitHealthy(ceilingPort, { child: ceiling, timeoutMs: 15_000 }),
  ]);
  const relay = relayUp.status === 'fulfilled' ? relayUp.value : undefined;
  const relayPool = new Pool(`http://127.0.0.1:${port}`, { connections: RINGS });
  const ceilingPool = new Pool(`http://127.0.0.1:${ceilingPort}`, { connections: RINGS });
  try {
    if (relayUp.status === 'rejected') throw relayUp.reason;
    if (ceilingUp.status === 'rejected') throw ceilingUp.reason;
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
    const searchesBeforeCached = stats.searches;
    const cached = [];
    const bare = [];
    for (let r = 0; r < rounds; r++) {
      // Alternating, so that the machine's drift hits both alike.
      if (r % 2) bare.push(...(await burst(ceilingPool)));
      cached.push(...(await burst(relayPool)));
      if (!(r % 2)) bare.push(...(await burst(ceilingPool)));
    }
    const perNumber = Math.max(0, ...stats.searchedDigits.values());
    const result = {
      rings: RINGS,
      numbers: NUMBERS,
      first,
      cached: summary(cached),
      ceiling: summary(bare),
      crmSearches: stats.searches,
      crmSearchesMostForOneNumber: perNumber,
      crmSearchesWhileCached: stats.searches - searchesBeforeCached,
      crm429: stats.tooMany,
    };
    const problems = [];
    if (stats.searches > NUMBERS || perNumber > 1)
      problems.push(`${stats.searches} CRM searches for ${NUMBERS} numbers (at most one each)`);
    if (stats.tooMany) problems.push(`HubSpot answered 429 ${stats.tooMany} times`);
    if (result.cached.hits !== result.cached.answers)
      problems.push(`${result.cached.answers - result.cached.hits} cached answers were not hits`);
    if (first.non200 || result.cached.non200) problems.push('answers other than 200');
    result.ok = problems.length === 0;
    result.message = result.ok
      ? 'caller-ID lookups: at most one CRM search per number, no 429'
      : `BENCH FAILED (caller-ID lookups): ${problems.join('; ')}`;
    return result;
  } finally {
    await relayPool.close();
    await ceilingPool.close();
    relay?.kill('SIGTERM');
    ceiling.kill('SIGKILL');
    hs.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
