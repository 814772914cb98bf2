// Open-loop load at a fixed rate, as its own process so that nothing else in the bench shares its
// event loop: `node bench/open-loop.mjs PORT RATE SECONDS OFFSET` prints one JSON line. A 1 ms
// timer sends every request that has come due whatever is still in flight, so slow answers cannot
// slow the sending (no coordinated omission). Latency is timed from each request's send to the end
// of its answer; `lateP99ms` is how late the generator itself sent (its timer and event loop), and
// the same run against a bare handler shows what the generator and the machine add.

import { Pool } from 'undici';
import mix from './mix.cjs';
import { HOOK_PATH } from './load.mjs';

const [port, rate, seconds, offset] = /** @type {[number, number, number, number]} */ (
  process.argv.slice(2, 6).map(Number)
);
const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 64, pipelining: 1 });
const next = mix.bodySource(offset);
const total = rate * seconds;
const lat = new Float64Array(total);
const late = new Float64Array(total);
const inflight = [];
let failed = 0;
const t0 = performance.now();
let sent = 0;
await /** @type {Promise<void>} */ (
  new Promise((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - t0) * rate) / 1000));
      for (; sent < due; sent++) {
        const i = sent;
        const dueAt = t0 + (i * 1000) / rate;
        const start = performance.now();
        late[i] = start - dueAt;
        inflight.push(
          pool
            .request({
              path: HOOK_PATH,
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: next(),
            })
            .then(async (res) => {
              await res.body.arrayBuffer();
              if (res.statusCode !== 200) failed++;
              lat[i] = performance.now() - start;
            }),
        );
      }
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  })
);
const elapsed = (performance.now() - t0) / 1000;
await Promise.all(inflight);
await pool.close();
const q = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return +(/** @type {number} */ (s[Math.min(s.length - 1, Math.floor(s.length * p))]).toFixed(2));
};
console.log(
  JSON.stringify({
    rate,
    achieved: Math.round(total / elapsed),
    requests: total,
    failed,
    p50ms: q(lat, 0.5),
    p99ms: q(lat, 0.99),
    maxMs: q(lat, 1),
    lateP99ms: q(late, 0.99),
  }),
);
