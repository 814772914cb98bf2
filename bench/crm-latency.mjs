// Webhook in -> CRM request out: a fake HubSpot answering at once records when each call's create
// arrives; callrelay (its own process, SQLite, shipped 3CX adapter, HubSpot target, no settle
// window, rate limit lifted) gets one end-of-call webhook per call at a fixed rate.

import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { startRelayProcess } from '../test/harness/relay-process.mjs';

export async function crmLatency({ root, rate = 200, seconds = 10, port = 19050 }) {
  const arrivals = new Map();
  let requests = 0;
  const crm = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      requests++;
      const now = performance.now();
      const url = req.url ?? '';
      res.setHeader('content-type', 'application/json');
      if (url.endsWith('/search')) return res.end('{"total":0,"results":[]}');
      if (req.method === 'POST' && url === '/crm/v3/objects/calls') {
        const token = JSON.parse(body).properties.hs_call_external_id;
        if (!arrivals.has(token)) arrivals.set(token, now);
        res.statusCode = 201;
        return res.end(`{"id":"${requests}"}`);
      }
      res.end('{}');
    });
  });
  await /** @type {Promise<void>} */ (new Promise((r) => crm.listen(0, '127.0.0.1', r)));
  const dir = mkdtempSync(join(tmpdir(), 'callrelay-crm-bench-'));
  writeFileSync(
    join(dir, 'relay.yaml'),
    `server: { port: ${port}, host: 127.0.0.1 }\nstore: { sqlite: ./relay.db }\nlog: { level: warn }\nadapters: ${join(root, 'adapters')}\n` +
      `sources:\n  - { name: 3cx, adapter: 3cx, token: bench-token-0123456789, timezone: Europe/Prague, defaultCountry: CZ }\n` +
      `targets:\n  - name: hubspot\n    type: hubspot\n    token: bench-hubspot-token\n    baseUrl: http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (crm.address()).port}\n    rateLimit: { requests: 100000, perSeconds: 1 }\n    searchRateLimit: { requests: 100000, perSeconds: 1 }\n    concurrency: 16\n`,
  );
  const relay = await startRelayProcess(join(dir, 'relay.yaml'), { port, stderr: 'inherit' });
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 32 });
  const sentAt = new Map();
  const send = (i) => {
    const id = `260901100000_${i}`;
    const caller = `4207748526${String(i % 20).padStart(2, '0')}`;
    sentAt.set(`callrelay:3cx:${id}`, performance.now());
    return pool
      .request({
        path: '/hooks/3cx/bench-token-0123456789',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `{"Event":"incoming","Callerid":"${caller}","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:09","Id":"${id}-1"}`,
      })
      .then((r) => r.body.dump());
  };
  // Warm-up, then the measured run: `rate` calls per second, one webhook each.
  const run = async (from, count) => {
    const t0 = performance.now();
    const inflight = [];
    let i = 0;
    await /** @type {Promise<void>} */ (
      new Promise((resolve) => {
        const timer = setInterval(() => {
          const due = Math.min(count, Math.floor(((performance.now() - t0) * rate) / 1000));
          for (; i < due; i++) inflight.push(send(from + i));
          if (i >= count) {
            clearInterval(timer);
            resolve();
          }
        }, 1);
      })
    );
    await Promise.all(inflight);
  };
  await run(0, rate * 2);
  const before = requests;
  arrivals.clear();
  const measured = rate * seconds;
  await run(1_000_000, measured);
  for (
    let t = 0;
    t < 300 &&
    [...arrivals.keys()].filter((k) => Number(k.split('_').pop()) >= 1_000_000).length < measured;
    t++
  )
    await new Promise((r) => setTimeout(r, 20));
  // Only the measured calls (a warm-up create may land late).
  const lat = [...arrivals]
    .filter(([k]) => Number(k.split('_').pop()) >= 1_000_000)
    .map(([k, at]) => at - sentAt.get(k))
    .sort((a, b) => a - b);
  const q = (p) =>
    +(/** @type {number} */ (lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]).toFixed(1));
  relay.kill('SIGTERM');
  await pool.close();
  crm.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    callsPerSec: rate,
    calls: measured,
    delivered: lat.length,
    p50ms: q(0.5),
    p99ms: q(0.99),
    maxMs: +(/** @type {number} */ (lat.at(-1)).toFixed(1)),
    crmRequestsPerCall: +((requests - before) / measured).toFixed(3),
  };
}
