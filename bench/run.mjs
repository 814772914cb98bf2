// `npm run bench`: ingest throughput and p99 of four servers on the same payloads, load generator
// and HTTP stack, in rotating rounds: a bare Hono handler (bare-server.mjs, for reference), the
// durable floor (durable-floor.mjs: the same handler storing each raw body durably with a 1 ms
// group commit before it answers), and callrelay with the shipped defaults (log level info) and at
// log level warn. Then ack latency at a fixed 1,000 req/s with the relay's resident memory,
// webhook-to-CRM latency, mapping and folding cost per event, the store's cost as its file grows,
// repeats and runaway calls (bench/repeats.mjs), and cold start. Results go to stdout and
// .bench/last.json. The relay's ratio to the durable floor is checked against the figure recorded
// in bench/baseline.json (which docs/performance.md quotes): more than 10% below it fails the run.
// BENCH_SECONDS, BENCH_ROUNDS and BENCH_CONNECTIONS adjust the run; BENCH_ONLY=ingest stops after
// the rounds, BENCH_ONLY=growth runs the store's growth alone, BENCH_ONLY=callerid the caller-ID
// lookups alone (bench/callerid.mjs; also run last in a full run); BENCH_RECORD=1 writes the run's
// ratio to bench/baseline.json instead of checking it; BENCH_GENERATOR=autocannon uses autocannon
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
import { callerIdBench } from './callerid.mjs';
import { crmLatency } from './crm-latency.mjs';
import { repeats } from './repeats.mjs';
import { bodySource, closedLoop, generator, TOKEN } from './load.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** How far below the recorded ratio to the durable floor a run may fall before it fails. */
const GUARD_DROP = 0.1;
const BASELINE = join(ROOT, 'bench', 'baseline.json');

/** relay.yaml in `dir`; `level` unset: the shipped default (info), as users run it. */
function relayConfig(dir, port, level) {
  const file = join(dir, 'relay.yaml');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    file,
    `server: { port: ${port}, host: 127.0.0.1 }\nstore: { sqlite: ./relay.db }\nadmin: { token: bench-admin-token }\n${level ? `log: { level: ${level} }\n` : ''}adapters: ${join(ROOT, 'adapters')}\nsources:\n  - { name: 3cx, adapter: 3cx, token: ${TOKEN}, timezone: Europe/Prague, defaultCountry: CZ }\n`,
  );
  return file;
}

/** The baseline (bare-server.mjs); the caller waits for it while the relay starts too. */
function startBare(port) {
  return started(
    spawn(process.execPath, [join(ROOT, 'bench', 'bare-server.mjs')], {
      env: { ...process.env, PORT: String(port) },
      stdio: ['ignore', 'ignore', 'inherit'],
    }),
  );
}

/** The durable floor (durable-floor.mjs) on a fresh SQLite file in `dir`. */
function startFloor(port, dir) {
  return started(
    spawn(process.execPath, [join(ROOT, 'bench', 'durable-floor.mjs')], {
      env: { ...process.env, PORT: String(port), DB: join(dir, 'floor.db') },
      stdio: ['ignore', 'ignore', 'inherit'],
    }),
  );
}

/**
 * callrelay on `port` with a fresh SQLite store in `dir`; resolves once it answers /healthz. Its
 * log (stdout) goes to /dev/null: the relay still formats and writes every line.
 */
async function startRelay(port, dir, level) {
  // Four servers start at once on a busy machine: give the relay longer than the tests do.
  const child = await startRelayProcess(relayConfig(dir, port, level), {
    port,
    stderr: 'inherit',
    timeoutMs: 30_000,
  });
  return started(child);
}

/** Every server this run started, killed when it ends, however it ends. */
const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});
function started(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
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

/** The docs' line that quotes bench/baseline.json; the bench checks that the two agree. */
const QUOTE = /ratio to the durable floor recorded in `bench\/baseline\.json`: \*\*([^*]+)\*\*/;

/**
 * The regression guard: the relay's ratio to the durable floor (median of the rounds) against the
 * figure recorded in bench/baseline.json, which docs/performance.md quotes. With BENCH_RECORD=1
 * this run's figure is written there instead. `ok: false` fails the bench.
 */
function guard(results) {
  const measured = results.summary.relayToFloor;
  if (process.env.BENCH_RECORD === '1') {
    const s = results.summary;
    const recorded = {
      ratioToFloor: measured,
      date: results.date.slice(0, 10),
      machine: `${results.cpus} × ${results.cpu}, Node ${results.node}, ${results.generator}`,
      command: `BENCH_RECORD=1 BENCH_SECONDS=${DURATION} BENCH_ROUNDS=${ROUNDS} npm run bench`,
      reqPerSec: {
        bare: s.bareReqPerSec,
        floor: s.floorReqPerSec,
        relay: s.relayReqPerSec,
        relayWarn: s.relayWarnReqPerSec,
      },
    };
    writeFileSync(BASELINE, `${JSON.stringify(recorded, null, 2)}\n`);
    return {
      ok: true,
      message:
        `recorded relay/floor = ${measured} in bench/baseline.json; quote it in ` +
        `docs/performance.md ("ratio to the durable floor recorded in \`bench/baseline.json\`: ` +
        `**${measured}**") and commit both`,
    };
  }
  const base = JSON.parse(readFileSync(BASELINE, 'utf8'));
  const recorded = base.ratioToFloor;
  const quoted = QUOTE.exec(readFileSync(join(ROOT, 'docs', 'performance.md'), 'utf8'))?.[1];
  const expected = typeof recorded === 'number' ? String(recorded) : 'to be measured';
  if (quoted !== expected)
    return {
      ok: false,
      message:
        `BENCH FAILED: docs/performance.md quotes the ratio to the durable floor as ` +
        `"${quoted ?? '(no such line)'}" but bench/baseline.json holds ${expected}: make them agree`,
    };
  if (typeof recorded !== 'number')
    return {
      ok: true,
      message:
        `regression guard NOT ARMED: bench/baseline.json has no ratio to the durable floor yet ` +
        `(this run: ${measured}); record one on a quiet machine with BENCH_RECORD=1 npm run bench`,
    };
  const min = +(recorded * (1 - GUARD_DROP)).toFixed(3);
  return measured >= min
    ? {
        ok: true,
        message: `regression guard: relay/floor ${measured} >= ${min} (recorded ${recorded} - 10%) ✔`,
      }
    : {
        ok: false,
        message:
          `BENCH FAILED: the relay's ratio to the durable floor dropped to ${measured}, more than ` +
          `10% below the ${recorded} recorded on ${base.date} (bench/baseline.json; at least ` +
          `${min} needed). Find what made the relay's per-request work dearer, or, if the drop is ` +
          `meant, record a new figure (BENCH_RECORD=1) and update docs/performance.md.`,
      };
}

async function main() {
  if (process.env.BENCH_ONLY === 'growth') return console.log(JSON.stringify(await storeGrowth()));
  if (process.env.BENCH_ONLY === 'callerid') return void (await callerId({}));
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

  // The four servers up at once (an idle one costs nothing), each relay on its own store; the
  // order rotates from round to round so that the machine's drift hits all alike, and the medians
  // are reported.
  const bare = startBare(19001);
  const floor = startFloor(19003, dir);
  // All settled before any failure is thrown, so that no server is left starting when this exits.
  const up = await Promise.allSettled([
    startRelay(19002, join(dir, 'info')),
    startRelay(19004, join(dir, 'warn'), 'warn'),
    waitHealthy(19001, { child: bare }),
    waitHealthy(19003, { child: floor }),
  ]);
  for (const u of up) if (u.status === 'rejected') throw u.reason;
  const [relay, relayWarn] = up.map((u) => /** @type {any} */ (u).value);
  results.relayIdleRssMb = rssMb(relay.pid);
  // Warm-ups (and realistic, non-empty stores).
  for (const port of [19001, 19003, 19002, 19004]) await throughput(port, 1_000_000);
  await fixedRate(19001, 1000, 2, 0);
  await fixedRate(19002, 1000, 2, 1_500_000);

  /** @type {[string, number][]} */
  const servers = [
    ['bare', 19001],
    ['floor', 19003],
    ['relay', 19002],
    ['relayWarn', 19004],
  ];
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    /** @type {Record<string, any>} */
    const t = {};
    for (let i = 0; i < servers.length; i++) {
      const [name, port] = /** @type {[string, number]} */ (servers[(r + i) % servers.length]);
      t[name] = await throughput(port, 2_000_000 + r * 1_000_000);
    }
    // Let folding catch up before the latency runs.
    await new Promise((res) => setTimeout(res, 2000));
    const af = await fixedRate(19001, 1000, DURATION, 0);
    const rss = rssSampler(relay.pid);
    const bf = await fixedRate(19002, 1000, DURATION, 5_000_000 + r * 1_000_000);
    bf.maxRssMb = rss.stop();
    const ratio = (x, y) => +(t[x].reqPerSec / t[y].reqPerSec).toFixed(2);
    const round = {
      ...t,
      ratio: ratio('relay', 'bare'),
      relayToFloor: ratio('relay', 'floor'),
      relayWarnToFloor: ratio('relayWarn', 'floor'),
      infoToWarn: ratio('relay', 'relayWarn'),
      floorToBare: ratio('floor', 'bare'),
      bareAt1000: af,
      relayAt1000: bf,
    };
    console.log(`round ${r + 1}:`, JSON.stringify(round));
    rounds.push(round);
  }
  bare.kill('SIGKILL');
  floor.kill('SIGKILL');
  relay.kill('SIGTERM');
  relayWarn.kill('SIGTERM');
  results.rounds = rounds;
  const med = (f) => median(rounds.map(f));
  results.summary = {
    bareReqPerSec: med((r) => r.bare.reqPerSec),
    floorReqPerSec: med((r) => r.floor.reqPerSec),
    relayReqPerSec: med((r) => r.relay.reqPerSec),
    relayWarnReqPerSec: med((r) => r.relayWarn.reqPerSec),
    ratio: med((r) => r.ratio),
    relayToFloor: med((r) => r.relayToFloor),
    relayWarnToFloor: med((r) => r.relayWarnToFloor),
    infoToWarn: med((r) => r.infoToWarn),
    floorToBare: med((r) => r.floorToBare),
    p99ms: {
      bare: med((r) => r.bare.p99ms),
      floor: med((r) => r.floor.p99ms),
      relay: med((r) => r.relay.p99ms),
      relayWarn: med((r) => r.relayWarn.p99ms),
    },
    bareAt1000: {
      p50ms: med((r) => r.bareAt1000.p50ms),
      p99ms: med((r) => r.bareAt1000.p99ms),
    },
    relayAt1000: {
      p50ms: med((r) => r.relayAt1000.p50ms),
      p99ms: med((r) => r.relayAt1000.p99ms),
      maxRssMb: Math.max(...rounds.map((r) => r.relayAt1000.maxRssMb)),
    },
    generatorAt1000LateP99ms: med((r) => r.relayAt1000.lateP99ms),
    generatorCpu: {
      bare: med((r) => r.bare.generatorCpu),
      floor: med((r) => r.floor.generatorCpu),
      relay: med((r) => r.relay.generatorCpu),
      relayWarn: med((r) => r.relayWarn.generatorCpu),
    },
  };
  console.log('\nmedians:', JSON.stringify(results.summary));
  const sum = results.summary;
  const rps = (n) => n.toLocaleString('en-US');
  console.log(
    `req/s (median of ${ROUNDS} rounds, ${generator}, ${CONNECTIONS} connections, ${DURATION} s): ` +
      `bare ${rps(sum.bareReqPerSec)}, durable floor ${rps(sum.floorReqPerSec)}, relay (info, ` +
      `the shipped default) ${rps(sum.relayReqPerSec)}, relay (warn) ${rps(sum.relayWarnReqPerSec)}\n` +
      `relay/floor = ${sum.relayToFloor} (goal >= 0.75), relay (warn)/floor = ` +
      `${sum.relayWarnToFloor}, info/warn = ${sum.infoToWarn} (target >= 0.90: the per-webhook ` +
      `line costs under 10%), floor/bare = ${sum.floorToBare}, relay/bare = ${sum.ratio}\n` +
      `generator CPU ${sum.generatorCpu.bare} (bare) / ${sum.generatorCpu.floor} (floor) / ` +
      `${sum.generatorCpu.relay} (relay) cores; ack p99 at 1000 req/s = ` +
      `${sum.relayAt1000.p99ms} ms (bare Hono: ${sum.bareAt1000.p99ms} ms; the generator's own ` +
      `lateness p99 ${sum.generatorAt1000LateP99ms} ms); relay RSS idle ` +
      `${results.relayIdleRssMb} MB, at 1000 req/s up to ${sum.relayAt1000.maxRssMb} MB`,
  );
  results.guard = guard(results);
  console.log(results.guard.message);
  if (!results.guard.ok) process.exitCode = 1;

  if (process.env.BENCH_ONLY === 'ingest') return save(results, dir);
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

  await callerId(results);

  save(results, dir);
  // Said again at the end, where it is seen.
  if (!results.guard.ok) console.error(`\n${results.guard.message}`);
}

/** The caller-ID section (bench/callerid.mjs): printed, kept in `results`, failing the run. */
async function callerId(results) {
  const c = await callerIdBench({ root: ROOT });
  results.callerId = c;
  const f = (s) => `p50 ${s.p50ms} ms, p99 ${s.p99ms} ms (${s.hits}/${s.answers} found)`;
  console.log(
    `caller-ID lookups, ${c.rings} rings at once for ${c.numbers} numbers (HubSpot fake at 5 ` +
      `searches/s): first ${f(c.first)}; cached ${f(c.cached)}; ceiling (bare Hono, same JSON) ` +
      `${f(c.ceiling)}; one at a time, cached ${f(c.cachedOneByOne)}, ceiling ` +
      `${f(c.ceilingOneByOne)}; CRM searches ${c.crmSearches} (most for one number ` +
      `${c.crmSearchesMostForOneNumber}), 429s ${c.crm429}`,
  );
  console.log(c.message);
  if (!c.ok) process.exitCode = 1;
}

function save(results, dir) {
  mkdirSync(join(ROOT, '.bench'), { recursive: true });
  writeFileSync(join(ROOT, '.bench', 'last.json'), `${JSON.stringify(results, null, 2)}\n`);
  rmSync(dir, { recursive: true, force: true });
}

await main();
