// Throughput of durable ingest on PostgreSQL with one instance and with two (same database, same
// payloads, the bench's six-webhooks-per-call mix from load.mjs): for docs/scaling.md and
// docs/performance.md. Starts its own PostgreSQL (test/harness/postgres.mjs). Two instances get
// half the connections each (a load balancer would do the same).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { closedLoop, generator, TOKEN } from './load.mjs';
import { LocalPostgres } from '../test/harness/postgres.mjs';
import { startRelayProcess } from '../test/harness/relay-process.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
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

let offset = 0;
const load = (port, connections) =>
  closedLoop({ port, connections, seconds: SECONDS, offset: (offset += 1_000_000) });

const a = await startInstance(19401);
await load(19401, 50); // warm-up
const one = await load(19401, 50);
const b = await startInstance(19402);
await load(19402, 25); // warm-up
const [x, y] = await Promise.all([load(19401, 25), load(19402, 25)]);
const result = {
  generator,
  oneInstance: { reqPerSec: one.reqPerSec, p99ms: one.p99ms, generatorCpu: one.generatorCpu },
  twoInstances: {
    reqPerSec: x.reqPerSec + y.reqPerSec,
    p99ms: Math.max(x.p99ms, y.p99ms),
    generatorCpu: +(x.generatorCpu + y.generatorCpu).toFixed(2),
  },
};
console.log(JSON.stringify(result, null, 2));
a.kill('SIGTERM');
b.kill('SIGTERM');
await new Promise((r) => setTimeout(r, 1000));
await pg.destroy();
rmSync(dir, { recursive: true, force: true });
