// Repeats and runaway calls (part of `npm run bench`, or `node bench/repeats.mjs` alone): the cost
// of one more webhook of a call must not grow with what that call already has.
//   - repeat storm: a PBX retrying one webhook 5,000 times; req/s of the first and the last 500
//     copies, and the p50 of another sender's ordinary traffic meanwhile;
//   - runaway call: 2,000 distinct events of one call (past store.maxEventsPerCall the rest are
//     kept as raw requests only); the same figures, and how long folding takes after the last ack.
// Each scenario runs against a fresh relay (SQLite, default settings) after a warm-up.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { startRelayProcess } from '../test/harness/relay-process.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TOKEN = 'bench-token-0123456789';
const ADMIN = 'bench-admin-token';
const CHUNK = 500;
const CONNECTIONS = 16;

const ring = (/** @type {string} */ id, /** @type {string} */ user) =>
  `{ "Event": "ringing", "Callerid": "05552221133", "User": "${user}", "Usertype": "ext", "Did": "", "Id": "${id}-0" }`;

/** @param {number} port */
async function startRelay(port) {
  const dir = mkdtempSync(join(tmpdir(), 'callrelay-repeats-'));
  const file = join(dir, 'relay.yaml');
  writeFileSync(
    file,
    `server: { port: ${port}, host: 127.0.0.1 }\nstore: { sqlite: ./relay.db }\nadmin: { token: ${ADMIN} }\n` +
      `log: { level: warn }\nadapters: ${join(ROOT, 'adapters')}\n` +
      `sources:\n  - { name: 3cx, adapter: 3cx, token: ${TOKEN}, timezone: Europe/Prague, defaultCountry: CZ }\n`,
  );
  const child = await startRelayProcess(file, { port, stderr: 'inherit' });
  return {
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Send `bodies` with CONNECTIONS requests in flight; returns the seconds each CHUNK took.
 * @param {Pool} pool @param {string[]} bodies
 */
async function send(pool, bodies) {
  const chunkSecs = [];
  let next = 0;
  let done = 0;
  let t0 = performance.now();
  const worker = async () => {
    while (next < bodies.length) {
      const body = bodies[next++];
      const res = await pool.request({
        path: `/hooks/3cx/${TOKEN}`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      await res.body.arrayBuffer();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
      if (++done % CHUNK === 0) {
        const t = performance.now();
        chunkSecs.push((t - t0) / 1000);
        t0 = t;
      }
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  return chunkSecs;
}

/**
 * Another sender's ordinary traffic (a new call every request, 50 req/s) while `during` runs:
 * its latencies, tagged with the phase of `during` they fell in.
 * @param {Pool} pool @param {() => number} phase
 */
function bystander(pool, phase) {
  /** @type {{ phase: number, ms: number }[]} */
  const lat = [];
  let k = 0;
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      const t = performance.now();
      const p = phase();
      const res = await pool.request({
        path: `/hooks/3cx/${TOKEN}`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: ring(`261101090000_${k++}`, '101'),
      });
      await res.body.arrayBuffer();
      lat.push({ phase: p, ms: performance.now() - t });
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    stop: async () => {
      stop = true;
      await loop;
      return lat;
    },
  };
}

/** Resolves once the relay has folded everything it committed. @param {number} port */
async function folded(port) {
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${port}/api/inbox?state=pending&limit=1`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    const body = /** @type {{ counts: { pending: number } }} */ (await res.json());
    if (body.counts.pending === 0) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** @param {number[]} xs */
const p50 = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted[Math.floor(sorted.length / 2)];
  return mid === undefined ? null : +mid.toFixed(2);
};

/**
 * @param {string} name @param {number} count @param {(k: number) => string} bodyOf
 * @param {number} port
 */
async function scenario(name, count, bodyOf, port) {
  const relay = await startRelay(port);
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS + 1 });
  try {
    // Warm-up: the same path with other calls, so that the first chunk is not the JIT's.
    await send(
      pool,
      Array.from({ length: 1000 }, (_, i) => ring(`261101080000_${i}`, '100')),
    );
    const bodies = Array.from({ length: count }, (_, k) => bodyOf(k));
    let sent = 0;
    const chunks = count / CHUNK;
    const other = bystander(pool, () => Math.min(chunks - 1, Math.floor(sent / CHUNK)));
    const t0 = performance.now();
    const secs = [];
    for (let c = 0; c < chunks; c++) {
      secs.push(...(await send(pool, bodies.slice(c * CHUNK, (c + 1) * CHUNK))));
      sent += CHUNK;
    }
    const lat = await other.stop();
    const acked = performance.now();
    // Folding runs after the ack: wait until nothing is pending.
    await folded(port);
    const foldedAt = performance.now();
    const first = CHUNK / secs[0];
    const last = CHUNK / secs.at(-1);
    return {
      scenario: name,
      requests: count,
      firstReqPerSec: Math.round(first),
      lastReqPerSec: Math.round(last),
      lastToFirst: +(last / first).toFixed(2),
      totalSec: +((acked - t0) / 1000).toFixed(2),
      foldLagAfterLastAckMs: Math.round(foldedAt - acked),
      otherSenderP50ms: {
        first: p50(lat.filter((l) => l.phase === 0).map((l) => l.ms)),
        last: p50(lat.filter((l) => l.phase === chunks - 1).map((l) => l.ms)),
      },
    };
  } finally {
    await pool.close();
    await relay.stop();
  }
}

export async function repeats(port = 19010) {
  const storm = await scenario(
    'one webhook 5,000 times',
    5000,
    () => ring('261101100000_1', '102'),
    port,
  );
  // Distinct agents make every event distinct; all belong to one call.
  const runaway = await scenario(
    '2,000 distinct events of one call',
    2000,
    (k) => ring('261101110000_1', `a${k}`),
    port + 1,
  );
  return { storm, runaway };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await repeats();
  console.log(JSON.stringify(r, null, 2));
}
