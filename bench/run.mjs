// `npm run bench`: ingest throughput and p99 of a bare Hono handler vs callrelay's durable ingest
// with mapping (same payloads, same load generator, alternating rounds), ack latency of both at a
// fixed 1,000 req/s with the relay's resident memory, webhook-to-CRM latency, mapping and folding
// cost per event, the store's cost as its file grows, repeats and runaway calls
// (bench/repeats.mjs), and cold start. Results go to stdout and .bench/last.json. BENCH_SECONDS,
// BENCH_ROUNDS and BENCH_CONNECTIONS adjust the run; BENCH_ONLY=ingest stops after the rounds,
// BENCH_ONLY=growth runs the store's growth alone; BENCH_GENERATOR=autocannon uses autocannon
// where wrk is installed.

import { spawn } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRelayProcess, waitHealthy } from '../test/harness/relay-process.mjs';
import { crmLatency } from './crm-latency.mjs';
import { repeats } from './repeats.mjs';
import { bodySource, closedLoop, generator, TOKEN } from './load.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
function relayConfig(dir, port) {
  const file = join(dir, 'relay.yaml');
  writeFileSync(
    file,
    `server: { port: ${port}, host: 127.0.0.1 }\nstore: { sqlite: ./relay.db }\nadmin: { token: bench-admin-token }\nlog: { level: warn }\nadapters: ${join(ROOT, 'adapters')}\nsources:\n  - { name: 3cx, adapter: 3cx, token: ${TOKEN}, timezone: Europe/Prague, defaultCountry: CZ }\n`,
  );
  return file;
}

/** The baseline (bare-server.mjs); the caller waits for it while the relay starts too. */
function startBare(port) {
  return spawn(process.execPath, [join(ROOT, 'bench', 'bare-server.mjs')], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

/** callrelay on `port` with a fresh SQLite store in `dir`; resolves once it answers /healthz. */
function startRelay(port, dir) {
  return startRelayProcess(relayConfig(dir, port), { port, stderr: 'inherit' });
}

/** Closed-loop throughput of the server on `port` (load.mjs picks the generator). */
const throughput = (port, offset) =>
  closedLoop({ port, connections: CONNECTIONS, seconds: DURATION, offset });

/** Open loop at `rate` req/s from its own process (open-loop.mjs). */
function fixedRate(port, rate, seconds, offset) {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        join(ROOT, 'bench', 'open-loop.mjs'),
        String(port),
        String(rate),
        String(seconds),
        String(offset),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`open-loop.mjs exited ${code}`));
      const r = JSON.parse(out);
      if (r.failed) return reject(new Error(`${r.failed} answers at ${rate} req/s were not 200`));
      resolve(r);
    });
  });
}

async function mappingCost() {
  const { loadAdapterDir, compileAdapter } = await import(
    join(ROOT, 'dist', 'ingest', 'adapter.js')
  );
  const { flowRequests, readFlow } = await import(join(ROOT, 'dist', 'flows.js'));
  const { foldCall, eventKey } = await import(join(ROOT, 'dist', 'domain', 'fold.js'));
  const adapters = loadAdapterDir(join(ROOT, 'adapters'));
  const out = {};
  for (const [name, a] of adapters) {
    const mapper = compileAdapter(a, {
      name,
      timezone: a.def.defaults.timezone ?? 'UTC',
      defaultCountry: a.def.defaults.defaultCountry,
    });
    const dir = join(ROOT, 'adapters', 'cases', name);
    const reqs = readdirSync(dir).flatMap((f) => flowRequests(readFlow(join(dir, f)), name));
    const events = [];
    for (const r of reqs) {
      const m = await mapper.map(r);
      if (m.status === 'mapped')
        events.push(
          ...m.events.map((event, idx) => ({
            inboxId: events.length + 1,
            idx,
            receivedAt: r.receivedAt,
            key: eventKey(event),
            event,
          })),
        );
    }
    const rounds = 3000;
    let t = performance.now();
    for (let i = 0; i < rounds; i++) for (const r of reqs) await mapper.map(r);
    const mapUs = ((performance.now() - t) * 1000) / (rounds * reqs.length);
    const byCall = new Map();
    for (const e of events)
      if (e.event.callId) byCall.set(e.event.callId, [...(byCall.get(e.event.callId) ?? []), e]);
    t = performance.now();
    for (let i = 0; i < rounds; i++)
      for (const evs of byCall.values()) foldCall(evs, { source: name, provider: name });
    const foldUs = ((performance.now() - t) * 1000) / (rounds * byCall.size);
    out[name] = {
      requests: reqs.length,
      mapUsPerEvent: +mapUs.toFixed(1),
      foldUsPerCall: +foldUs.toFixed(1),
    };
  }
  return out;
}

/**
 * The store's own cost as its file grows: the bench's mix mapped once, then committed 25 at a time
 * (a typical group commit under load) and folded, in `segments` of `per` requests into one SQLite
 * file, in process. A request must cost the same in the last segment as in the first.
 */
async function storeGrowth(segments = 10, per = 20_000) {
  const { SqliteStore } = await import(join(ROOT, 'dist', 'store', 'sqlite', 'index.js'));
  const { loadAdapterDir, compileAdapter } = await import(
    join(ROOT, 'dist', 'ingest', 'adapter.js')
  );
  const a = loadAdapterDir(join(ROOT, 'adapters')).get('3cx');
  const mapper = compileAdapter(a, {
    name: '3cx',
    timezone: 'Europe/Prague',
    defaultCountry: 'CZ',
  });
  const dir = mkdtempSync(join(tmpdir(), 'callrelay-growth-'));
  const store = new SqliteStore(join(dir, 'relay.db'), {});
  const next = bodySource(0);
  const costs = [];
  for (let s = 0; s < segments; s++) {
    const items = [];
    for (let i = 0; i < per; i++) {
      const body = Buffer.from(/** @type {string} */ (next()));
      const req = {
        source: '3cx',
        kind: 'webhook',
        receivedAt: new Date().toISOString(),
        method: 'POST',
        query: '',
        contentType: 'application/json',
        headers: { 'content-type': 'application/json' },
        body,
      };
      items.push({ req, result: await mapper.map(req), provider: '3cx' });
    }
    const t = performance.now();
    for (let i = 0; i < per; i += 25) {
      await store.insertInbox(items.slice(i, i + 25));
      if (i % 100 === 0) await store.applyPending(64);
    }
    while ((await store.applyPending(64)) > 0);
    costs.push(((performance.now() - t) * 1000) / per);
  }
  await store.close();
  const mb = readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0) / 2 ** 20;
  rmSync(dir, { recursive: true, force: true });
  const [first, last] = [/** @type {number} */ (costs[0]), /** @type {number} */ (costs.at(-1))];
  return {
    requests: segments * per,
    fileMb: Math.round(mb),
    firstUsPerRequest: +first.toFixed(1),
    lastUsPerRequest: +last.toFixed(1),
    lastToFirst: +(last / first).toFixed(2),
  };
}

async function coldStart(runs = 5) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'callrelay-cold-'));
    const port = 19100 + i;
    const t0 = performance.now();
    const child = await startRelay(port, dir);
    times.push(performance.now() - t0);
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  times.sort((a, b) => a - b);
  return {
    runs,
    medianMs: Math.round(/** @type {number} */ (times[Math.floor(runs / 2)])),
    maxMs: Math.round(/** @type {number} */ (times.at(-1))),
  };
}

/** Resident memory of a process in MB, from /proc (Linux). */
function rssMb(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(m?.[1] ?? NaN) / 1024);
}

/** Samples a process's resident memory every 250 ms until stop(), which gives the maximum. */
function rssSampler(pid) {
  let max = rssMb(pid);
  const timer = setInterval(() => (max = Math.max(max, rssMb(pid))), 250);
  return {
    stop: () => {
      clearInterval(timer);
      return Math.max(max, rssMb(pid));
    },
  };
}

const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

async function main() {
  if (process.env.BENCH_ONLY === 'growth') return console.log(JSON.stringify(await storeGrowth()));
  const dir = mkdtempSync(join(tmpdir(), 'callrelay-bench-'));
  // Filled in as the parts finish; `rounds` is the count until the rounds' results replace it.
  /** @type {Record<string, any>} */
  const results = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    generator,
    durationSec: DURATION,
    connections: CONNECTIONS,
    rounds: ROUNDS,
  };

  // Both servers up at once (an idle one costs nothing); rounds alternate a and b so that the
  // machine's drift hits both alike, and the medians are reported.
  const bare = startBare(19001);
  const [relay] = await Promise.all([startRelay(19002, dir), waitHealthy(19001, { child: bare })]);
  results.relayIdleRssMb = rssMb(relay.pid);
  await throughput(19001, 0); // warm-up
  await throughput(19002, 1_000_000); // warm-up (and a realistic, non-empty store)
  await fixedRate(19001, 1000, 2, 0);
  await fixedRate(19002, 1000, 2, 1_500_000);

  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const a = await throughput(19001, 0);
    const b = await throughput(19002, 2_000_000 + r * 1_000_000);
    // Let folding catch up before the latency runs.
    await new Promise((res) => setTimeout(res, 2000));
    const af = await fixedRate(19001, 1000, DURATION, 0);
    const rss = rssSampler(relay.pid);
    const bf = await fixedRate(19002, 1000, DURATION, 5_000_000 + r * 1_000_000);
    bf.maxRssMb = rss.stop();
    const round = {
      bare: a,
      relay: b,
      ratio: +(b.reqPerSec / a.reqPerSec).toFixed(2),
      bareAt1000: af,
      relayAt1000: bf,
    };
    console.log(`round ${r + 1}:`, JSON.stringify(round));
    rounds.push(round);
  }
  bare.kill('SIGKILL');
  relay.kill('SIGTERM');
  results.rounds = rounds;
  results.summary = {
    bareReqPerSec: median(rounds.map((r) => r.bare.reqPerSec)),
    relayReqPerSec: median(rounds.map((r) => r.relay.reqPerSec)),
    ratio: median(rounds.map((r) => r.ratio)),
    bareAt1000: {
      p50ms: median(rounds.map((r) => r.bareAt1000.p50ms)),
      p99ms: median(rounds.map((r) => r.bareAt1000.p99ms)),
    },
    relayAt1000: {
      p50ms: median(rounds.map((r) => r.relayAt1000.p50ms)),
      p99ms: median(rounds.map((r) => r.relayAt1000.p99ms)),
      maxRssMb: Math.max(...rounds.map((r) => r.relayAt1000.maxRssMb)),
    },
    generatorAt1000LateP99ms: median(rounds.map((r) => r.relayAt1000.lateP99ms)),
    generatorCpu: {
      bare: median(rounds.map((r) => r.bare.generatorCpu)),
      relay: median(rounds.map((r) => r.relay.generatorCpu)),
    },
  };
  console.log('\nmedians:', JSON.stringify(results.summary));
  const sum = results.summary;
  console.log(
    `generator ${generator}, its CPU ${sum.generatorCpu.bare} (bare) / ${sum.generatorCpu.relay} ` +
      `(relay) cores; ratio b/a = ${sum.ratio} (target >= 0.60); ack p99 at 1000 req/s = ` +
      `${sum.relayAt1000.p99ms} ms (target <= 3 ms; bare Hono: ${sum.bareAt1000.p99ms} ms; the ` +
      `generator's own lateness p99 ${sum.generatorAt1000LateP99ms} ms); relay RSS idle ` +
      `${results.relayIdleRssMb} MB, at 1000 req/s up to ${sum.relayAt1000.maxRssMb} MB ` +
      `(target <= 120 MB)`,
  );

  if (process.env.BENCH_ONLY === 'ingest') return;
  results.crmLatency = await crmLatency({ root: ROOT, seconds: DURATION });
  console.log(
    'webhook in -> CRM request (HubSpot fake answering at once, 200 calls/s):',
    JSON.stringify(results.crmLatency),
    '(target p99 <= 50 ms)',
  );

  results.mapping = await mappingCost();
  console.log('mapping cost per event / fold per call:', JSON.stringify(results.mapping));
  results.storeGrowth = await storeGrowth();
  const g = results.storeGrowth;
  console.log(
    `store cost as the file grows to ${g.fileMb} MB (${g.requests} requests, committed 25 at a ` +
      `time, folded): ${g.firstUsPerRequest} -> ${g.lastUsPerRequest} us per request ` +
      `(last/first ${g.lastToFirst}; target <= 1.3)`,
  );
  results.repeats = await repeats();
  for (const r of Object.values(results.repeats)) {
    console.log(
      `${r.scenario}: first 500 ${r.firstReqPerSec} req/s, last 500 ${r.lastReqPerSec} req/s ` +
        `(last/first ${r.lastToFirst}; target >= ${(1 / 1.3).toFixed(2)}); fold lag after the last ` +
        `ack ${r.foldLagAfterLastAckMs} ms; another sender's p50 ${r.otherSenderP50ms.first} -> ` +
        `${r.otherSenderP50ms.last} ms`,
    );
  }
  results.coldStart = await coldStart();
  console.log(
    'cold start (spawn to first /healthz 200):',
    JSON.stringify(results.coldStart),
    '(target < 1000 ms)',
  );

  mkdirSync(join(ROOT, '.bench'), { recursive: true });
  writeFileSync(join(ROOT, '.bench', 'last.json'), `${JSON.stringify(results, null, 2)}\n`);
  rmSync(dir, { recursive: true, force: true });
}

await main();
