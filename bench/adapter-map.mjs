// What mapping one webhook costs (issue 25): an Aircall-style adapter, whose every field is a
// nested path (`data.user.email`), against Callerdesk's flat fields, through the real
// compileAdapter (dist/: `npm run build` first). One process, no HTTP, no store: the adapter's own
// share of a request. Prints µs per request (median of several rounds) for each.
//
//   node bench/adapter-map.mjs [requests per round]

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
// Loaded by path, as bench/run.mjs does: dist/ is built output, not checked with the scripts.
const { compileAdapter, loadAdapter } = await import(join(ROOT, 'dist', 'ingest', 'adapter.js'));
const N = Number(process.argv[2] ?? 20000);
const ROUNDS = 7;

// Aircall's call webhook shape ({resource, event, timestamp, data: {...}}), mapped the way an
// integrator writes it from Aircall's documentation: nested paths everywhere.
const AIRCALL = `
adapter: aircall-bench
version: 1
fields:
  callId: data.id
  direction: data.direction
  externalNumber: $present(data.raw_digits, ['anonymous'])
  did: data.number.digits
  at: $toUtc(timestamp)
  startedAt: $toUtc(data.started_at)
events:
  - name: not-a-call
    when: resource != 'call'
    ignore: true
  - name: ringing
    when: event = 'call.ringing_on_agent'
    type: ringing
    fields:
      legId: "data.id & '-' & data.user.id"
      agent: data.user.email
      agentName: data.user.name
  - name: answered
    when: event = 'call.answered'
    type: answered
    fields:
      legId: "data.id & '-' & data.user.id"
      agent: data.user.email
      agentName: data.user.name
      answeredAt: $toUtc(data.answered_at)
  - name: ended
    when: event = 'call.ended'
    type: ended
    fields:
      agent: data.user.email
      agentName: data.user.name
      outcome: "data.answered_at ? 'answered' : 'missed'"
      providerStatus: data.status
      endReason: data.hangup_cause
      durationSec: data.duration
      answeredAt: $toUtc(data.answered_at)
      endedAt: $toUtc(data.ended_at)
      recordings: data.asset
`;

function aircallBodies() {
  const data = (i) => ({
    id: 812000 + i,
    direction: 'inbound',
    status: 'done',
    started_at: 1584998199 + i,
    answered_at: 1584998205 + i,
    ended_at: 1584998260 + i,
    duration: 61,
    raw_digits: '+33 1 76 36 06 95',
    hangup_cause: 'agent_hung_up',
    asset: `https://assets.aircall.io/calls/${812000 + i}/recording`,
    user: { id: 456, name: 'Madeleine Dupont', email: 'madeleine@example.com' },
    number: { id: 1234, digits: '+33 1 76 36 06 00', name: 'Paris office' },
  });
  const out = [];
  for (let i = 0; i < 50; i++)
    for (const event of ['call.ringing_on_agent', 'call.answered', 'call.ended'])
      out.push({ resource: 'call', event, timestamp: 1584998300 + i, data: data(i) });
  return out;
}

const request = (body) => ({
  source: 'bench',
  kind: 'webhook',
  receivedAt: '2026-12-07T00:00:00.000Z',
  method: 'POST',
  query: '',
  contentType: 'application/json',
  headers: {},
  body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
});

async function usPerRequest(adapter, requests) {
  for (const r of requests) {
    const m = await adapter.map(r);
    if (m.status !== 'mapped' && m.status !== 'ignored') throw new Error(JSON.stringify(m));
  }
  const rounds = [];
  for (let k = 0; k < ROUNDS; k++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) await adapter.map(requests[i % requests.length]);
    rounds.push(Number(process.hrtime.bigint() - t0) / 1000 / N);
  }
  return /** @type {number} */ (rounds.sort((a, b) => a - b)[ROUNDS >> 1]);
}

const dir = mkdtempSync(join(tmpdir(), 'callrelay-bench-'));
try {
  writeFileSync(join(dir, 'aircall.yaml'), AIRCALL);
  const settings = { name: 'bench', timezone: 'UTC', defaultCountry: 'FR' };
  const aircall = compileAdapter(loadAdapter(join(dir, 'aircall.yaml')), settings);
  const callerdesk = compileAdapter(loadAdapter(join(ROOT, 'adapters', 'callerdesk.yaml')), {
    ...settings,
    timezone: 'Asia/Kolkata',
    defaultCountry: 'IN',
  });
  const callerdeskRequests = ['callerdesk-incoming-answered', 'callerdesk-live-then-report']
    .flatMap((c) => {
      const file = join(ROOT, 'adapters', 'cases', 'callerdesk', `${c}.json`);
      return JSON.parse(readFileSync(file, 'utf8')).requests;
    })
    .filter((r) => r.method === 'POST' && r.contentType === 'application/json')
    .map((r) => request(r.body));
  const aircallUs = await usPerRequest(aircall, aircallBodies().map(request));
  const callerdeskUs = await usPerRequest(callerdesk, callerdeskRequests);
  console.log(`aircall (nested paths)  ${aircallUs.toFixed(1)} µs/request`);
  console.log(`callerdesk (flat)       ${callerdeskUs.toFixed(1)} µs/request`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
