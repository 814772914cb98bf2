// `npm run soak -- --minutes 60 [--rate 40]` (not part of npm test; SOAK_MINUTES and SOAK_RATE
// work too; default 10 minutes at 40 webhooks/s): mixed call flows at a steady rate into a relay
// process (SQLite), delivering to a fake HubSpot that fails 5% of requests (500s and 429s). Prints
// requests accepted, calls delivered, duplicates (must be 0), and the relay's memory: RSS maximum
// and trend over the second half, with the trends of what could explain one (the V8 heaps of
// both threads, memory outside them, the SQLite WAL and its shared-memory index) from /metrics and
// the data folder.

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { freePort } from '../test/harness/postgres.mjs';
import { startRelayProcess } from '../test/harness/relay-process.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const flag = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const MINUTES = Number(flag('minutes') ?? process.env.SOAK_MINUTES ?? 10);
const RATE = Number(flag('rate') ?? process.env.SOAK_RATE ?? 40); // webhooks per second
// A free port: a second soak (or anything on a fixed port) must not take the first one's traffic.
const PORT = await freePort();
const TOKEN = 'soak-token-0123456789';

// The fake CRM: engagements by external id; 5% of requests fail.
const engagements = new Map();
const byToken = new Map();
let crmRequests = 0;
let crmFailures = 0;
const crm = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    crmRequests++;
    const url = req.url ?? '';
    res.setHeader('content-type', 'application/json');
    if (Math.random() < 0.05) {
      crmFailures++;
      res.statusCode = Math.random() < 0.5 ? 500 : 429;
      return res.end('{"status":"error","message":"injected","category":"SOAK"}');
    }
    if (url.endsWith('/search')) {
      const token = JSON.parse(body).filterGroups?.[0]?.filters?.[0]?.value;
      // By index: a scan of every engagement would make an hour's soak slow down the fake, not
      // the relay.
      const hit = (byToken.get(token) ?? []).map((id) => ({
        id,
        properties: { hs_call_external_id: token },
      }));
      return res.end(JSON.stringify({ total: hit.length, results: hit }));
    }
    if (req.method === 'POST' && url === '/crm/v3/objects/calls') {
      const id = String(engagements.size + 1);
      const token = JSON.parse(body).properties.hs_call_external_id;
      engagements.set(id, { token, patches: 0 });
      byToken.set(token, [...(byToken.get(token) ?? []), id]);
      res.statusCode = 201;
      return res.end(`{"id":"${id}"}`);
    }
    const m = /^\/crm\/v3\/objects\/calls\/(\d+)$/.exec(url);
    if (req.method === 'PATCH' && m && engagements.has(m[1])) {
      engagements.get(m[1]).patches++;
      return res.end('{}');
    }
    res.end('{}');
  });
});
await /** @type {Promise<void>} */ (new Promise((r) => crm.listen(0, '127.0.0.1', r)));

const dir = mkdtempSync(join(tmpdir(), 'callrelay-soak-'));
writeFileSync(
  join(dir, 'relay.yaml'),
  `server: { port: ${PORT}, host: 127.0.0.1 }\nstore: { sqlite: ./relay.db }\nlog: { level: error }\nadapters: ${join(ROOT, 'adapters')}\n` +
    `sources:\n  - { name: 3cx, adapter: 3cx, token: ${TOKEN}, timezone: Europe/Prague, defaultCountry: CZ }\n` +
    `targets:\n  - name: hubspot\n    type: hubspot\n    token: soak-hubspot-token\n    baseUrl: http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (crm.address()).port}\n    searchLagSec: 1\n    rateLimit: { requests: 1000, perSeconds: 1 }\n`,
);
const relay = await startRelayProcess(join(dir, 'relay.yaml'), { port: PORT, stderr: 'inherit' });

// Mixed flows: answered with a recording, attended transfer, missed in a queue.
function flow(k) {
  const id = `262001100000_${k}`;
  const caller = `4207748526${String(k % 50).padStart(2, '0')}`;
  const ring = (u, t) =>
    `{"Event":"ringing","Callerid":"${caller}","User":"${u}","Usertype":"${t}","Did":"","Id":"${id}-0"}`;
  switch (k % 3) {
    case 0:
      return [
        ring('800', 'other'),
        ring('117', 'ext'),
        `{"Event":"incomingcall_started","Callerid":"${caller}","User":"117","Trtype":"NotDef","Did":"","Id":"${id}-1"}`,
        `{"Event":"incoming","Callerid":"${caller}","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:21","Id":"${id}-1"}`,
        `{"Event":"recording","FileUrls":["https://pbx.example.com/r/${id}-1-1.mp3"],"Id":"${id}-1"}`,
      ];
    case 1:
      return [
        ring('117', 'ext'),
        `{"Event":"incomingcall_started","Callerid":"${caller}","User":"117","Trtype":"NotDef","Did":"","Id":"${id}-1"}`,
        `{"Event":"incomingcall_started","Callerid":"${caller}","User":"204","Trtype":"Attended","Did":"","Id":"${id}-2"}`,
        `{"Event":"incoming","Callerid":"${caller}","User":"117","Finishtype":"Ok","Transfer":"True","Did":"","Duration":"00:14","Id":"${id}-1"}`,
        `{"Event":"incoming","Callerid":"${caller}","User":"204","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:06","Id":"${id}-2"}`,
      ];
    default:
      return [
        ring('820', 'queue'),
        `{"Event":"incoming","Callerid":"${caller}","User":"820","Finishtype":"Missed","Transfer":"False","Did":"","Duration":"","Id":"${id}-0"}`,
      ];
  }
}

const pool = new Pool(`http://127.0.0.1:${PORT}`, { connections: 16 });
let accepted = 0;
let refused = 0;
/** Memory samples every 5 s: RSS, heaps, external memory, WAL and its index, in MB. */
const samples = [];
const rssOf = () =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${relay.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const fileMb = (f) => {
  try {
    return statSync(join(dir, f)).size / 2 ** 20;
  } catch {
    return 0;
  }
};
/** The heaps of both relay threads and memory outside them, from the relay's /metrics. */
async function heapMb() {
  const text = await (await fetch(`http://127.0.0.1:${PORT}/metrics`)).text();
  const m = (name) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20;
  return {
    heap: m('nodejs_heap_size_used_bytes'),
    external: m('nodejs_external_memory_bytes'),
    storeHeap: m('callrelay_store_thread_heap_bytes\\{kind="used"\\}'),
  };
}
const sampler = setInterval(() => {
  const t = performance.now() / 60000;
  const mb = rssOf();
  void heapMb()
    .then((h) =>
      samples.push({ t, mb, ...h, wal: fileMb('relay.db-wal'), shm: fileMb('relay.db-shm') }),
    )
    .catch(() => samples.push({ t, mb }));
}, 5000);

const queue = [];
let k = 0;
const t0 = performance.now();
const total = Math.round(MINUTES * 60 * RATE);
let sent = 0;
const inflight = new Set();
await /** @type {Promise<void>} */ (
  new Promise((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * RATE) / 1000));
      for (; sent < due; sent++) {
        if (!queue.length) queue.push(...flow(k++));
        const body = queue.shift();
        const p = pool
          .request({
            path: `/hooks/3cx/${TOKEN}`,
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
          })
          .then(async (r) => {
            await r.body.dump();
            if (r.statusCode === 200) accepted++;
            else refused++;
          })
          .finally(() => inflight.delete(p));
        inflight.add(p);
      }
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  })
);
await Promise.all(inflight);
const calls = k;
// Let deliveries (and their retries) finish.
for (let t = 0; t < 600 && engagements.size < calls; t++)
  await new Promise((r) => setTimeout(r, 500));
clearInterval(sampler);

const tokens = [...engagements.values()].map((e) => e.token);
const duplicates = tokens.length - new Set(tokens).size;
const half = samples.slice(Math.floor(samples.length / 2));
/** Least-squares MB per minute of one sampled measure over the second half of the run. */
function trend(key) {
  const xs = half.filter((x) => Number.isFinite(x[key]));
  const n = xs.length;
  if (n < 2) return null;
  const mt = xs.reduce((a, x) => a + x.t, 0) / n;
  const mm = xs.reduce((a, x) => a + x[key], 0) / n;
  const slope =
    xs.reduce((a, x) => a + (x.t - mt) * (x[key] - mm), 0) /
    xs.reduce((a, x) => a + (x.t - mt) ** 2, 0);
  return +slope.toFixed(3);
}
const last = samples.at(-1) ?? {};
const result = {
  minutes: MINUTES,
  webhooksPerSec: RATE,
  requestsAccepted: accepted,
  requestsRefused: refused,
  calls,
  callsDelivered: new Set(tokens).size,
  duplicates,
  crmRequests,
  crmFailuresInjected: crmFailures,
  maxRssMb: +Math.max(...samples.map((x) => x.mb)).toFixed(1),
  rssTrendMbPerMin: trend('mb'),
  heapTrendMbPerMin: trend('heap'),
  externalTrendMbPerMin: trend('external'),
  storeThreadHeapTrendMbPerMin: trend('storeHeap'),
  walTrendMbPerMin: trend('wal'),
  shmTrendMbPerMin: trend('shm'),
  atEndMb: Object.fromEntries(
    ['mb', 'heap', 'storeHeap', 'external', 'wal', 'shm'].map((k) => [
      k,
      +(last[k] ?? NaN).toFixed(1),
    ]),
  ),
};
console.log(JSON.stringify(result, null, 2));
relay.kill('SIGTERM');
await pool.close();
crm.close();
rmSync(dir, { recursive: true, force: true });
process.exit(duplicates === 0 && result.callsDelivered === calls ? 0 : 1);
