// Throughput of durable ingest on PostgreSQL with one instance and with two (same database, same
// payloads): for docs/scaling.md. Starts its own PostgreSQL (test/harness/postgres.mjs).
// Two instances get half the connections each (a load balancer would do the same).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { LocalPostgres } from '../test/harness/postgres.mjs';
import { startRelayProcess } from '../test/harness/relay-process.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const TOKEN = 'scale-token-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'callrelay-scale-'));
const pg = await LocalPostgres.create();
await pg.start();
const url = await pg.createDatabase('relay');

function startInstance(port) {
  const file = join(dir, `relay-${port}.yaml`);
  writeFileSync(
    file,
    `server: { port: ${port}, host: 127.0.0.1 }\nstore:\n  postgres: ${url}\nlog: { level: error }\nadapters: ${join(ROOT, 'adapters')}\nsources:\n  - { name: 3cx, adapter: 3cx, token: ${TOKEN} }\n`,
  );
  return startRelayProcess(file, { port, stderr: 'inherit' });
}

let k = 0;
const body = () =>
  `{"Event":"ringing","Callerid":"05552221133","User":"800","Usertype":"other","Did":"","Id":"263001100000_${k++}-0"}`;
const load = (port, connections) =>
  autocannon({
    url: `http://127.0.0.1:${port}/hooks/3cx/${TOKEN}`,
    connections,
    duration: SECONDS,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        setupRequest: (r) => ({ ...r, body: body() }),
      },
    ],
  });

const a = await startInstance(19401);
await load(19401, 50); // warm-up
const one = await load(19401, 50);
const b = await startInstance(19402);
await load(19402, 25); // warm-up
const [x, y] = await Promise.all([load(19401, 25), load(19402, 25)]);
const result = {
  oneInstance: {
    reqPerSec: Math.round(one.requests.average),
    p99ms: one.latency.p99,
    errors: one.errors + one.non2xx,
  },
  twoInstances: {
    reqPerSec: Math.round(x.requests.average + y.requests.average),
    p99ms: Math.max(x.latency.p99, y.latency.p99),
    errors: x.errors + x.non2xx + y.errors + y.non2xx,
  },
};
console.log(JSON.stringify(result, null, 2));
a.kill('SIGTERM');
b.kill('SIGTERM');
await new Promise((r) => setTimeout(r, 1000));
await pg.destroy();
rmSync(dir, { recursive: true, force: true });
