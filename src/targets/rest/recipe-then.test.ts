// A recipe's `then:` (requests sent in order after its create, update or upsert), through a real
// relay into a small CRM fake of this file's own: in order after the create, `if` deciding per
// delivery; a then-request that fails retries the delivery, which takes the update path to the
// same end state (nothing made twice), as does a lost create found again; dry runs show them by
// their `what`; and `check` names a misplaced field or a bad `if` at recipe-file:line:col.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { ConfigError } from '../../lib/yaml.js';
import { startRelay, type Relay } from '../../runtime.js';
import { CrmFake } from '../../../test/fakes/local-server.js';
import {
  sendFlowRequest,
  settleDeliveries,
  tempDir,
  writeRelayYaml,
} from '../../../test/support.js';
import { dryRun } from '../../../test/recipes/golden.js';
import { loadRecipe } from './recipe.js';

const TOKEN = 'tally-token-0123456789abcdef';

/**
 * "Tally CRM": calls made by POST /calls (an id in the body; found again by ?ref=), reopened by
 * PATCH, and completed, timed and marked by PUTs below the call, as Dynamics completes a phone
 * call after writing it.
 */
class FakeTally extends CrmFake {
  readonly calls = new Map<string, Record<string, unknown>>();
  /** Answers to give instead of the next matching requests ("PUT /calls/"), each once. */
  readonly faults: { match: string; status?: number; lost?: true }[] = [];
  private next = 1;

  /** Requests as "METHOD path", those answered 2xx only, in order. */
  get done(): string[] {
    return this.log.filter((l) => l.status < 300).map((l) => `${l.method} ${l.path}`);
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const body = (raw ? JSON.parse(raw) : {}) as Record<string, unknown>;
    const url = new URL(req.url ?? '/', 'http://x');
    const line = `${req.method} ${url.pathname}`;
    const answer = (status: number, out: unknown = {}): void => {
      this.log.push({ method: req.method!, path: url.pathname, status });
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(out));
    };
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return answer(401, {});
    const i = this.faults.findIndex((f) => line.startsWith(f.match));
    const fault = i >= 0 ? this.faults.splice(i, 1)[0] : undefined;
    if (fault?.status) return answer(fault.status, { error: 'down for a moment' });
    if (req.method === 'POST' && url.pathname === '/calls') {
      const id = String(this.next++);
      this.calls.set(id, { ...body, state: 'open' });
      if (fault?.lost) {
        this.log.push({ method: 'POST', path: '/calls', status: 0 });
        return void res.destroy();
      }
      return answer(201, { id });
    }
    if (req.method === 'GET' && url.pathname === '/calls') {
      const ref = url.searchParams.get('ref');
      const items = [...this.calls].filter(([, c]) => c.ref === ref).map(([id]) => ({ id }));
      return answer(items.length ? 200 : 404, { items });
    }
    const m = /^\/calls\/(\d+)(?:\/(\w+))?$/.exec(url.pathname);
    const call = m ? this.calls.get(m[1]!) : undefined;
    if (!call) return answer(404, { error: 'no such call' });
    if (req.method === 'PATCH' && !m![2]) Object.assign(call, body);
    else if (req.method === 'PUT' && m![2]) call[m![2]] = Object.values(body)[0];
    else return answer(405, {});
    answer(200, {});
  }
}

const RECIPE = `name: tally
crm: Tally CRM
vars:
  url: { required: true }
baseUrl: "{vars.url}"
auth:
  type: bearer
defaults:
  deliverOn: ended
create:
  what: creating the call
  request: { method: POST, url: /calls, json: "{ 'ref': key, 'subject': title }" }
  id: answer.body.id
  then:
    - what: completing the call
      request: { method: PUT, url: "/calls/{remote.id}/state", json: "{ 'state': 'done' }" }
    - what: noting the talk time
      if: talkSec > 0
      request: { method: PUT, url: "/calls/{remote.id}/talk", json: "{ 'sec': talkSec }" }
    - request: { method: PUT, url: "/calls/{remote.id}/marker", json: "{ 'marker': marker }" }
update:
  what: reopening the call
  request: { method: PATCH, url: "/calls/{remote.id}", json: "{ 'subject': title, 'state': 'open' }" }
  then:
    - what: completing the call again
      request: { method: PUT, url: "/calls/{remote.id}/state", json: "{ 'state': 'done' }" }
    - what: noting the talk time again
      if: talkSec > 0
      request: { method: PUT, url: "/calls/{remote.id}/talk", json: "{ 'sec': talkSec }" }
find:
  request: { method: GET, url: /calls, query: { ref: key } }
  notFound: [404]
  id: answer.body.items[0].id
`;

/** An ended 3CX call in one webhook (one revision, so one delivery): answered, or missed. */
const call = (id: string, answered: boolean) =>
  `{"Event":"incoming","Callerid":"420774852600","User":"117","Finishtype":"${answered ? 'Ok' : 'NoAnswer'}","Transfer":"False","Did":"","Duration":"${answered ? '01:05' : '00:00'}","Id":"${id}-1"}`;
const MISSED = call('260702100000_1', false);
const ANSWERED = call('260702100000_2', true);

function recipeFile(text = RECIPE): string {
  const dir = tempDir();
  mkdirSync(join(dir, 'targets'));
  writeFileSync(join(dir, 'targets', 'tally.yaml'), text);
  return join(dir, 'targets', 'tally.yaml');
}

describe("a recipe's then: requests", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function open(more = '', text = RECIPE): Promise<{ crm: FakeTally; relay: Relay }> {
    const crm = await new FakeTally().start();
    cleanup.push(() => crm.close());
    const recipe = recipeFile(text);
    const file = writeRelayYaml(join(recipe, '..', '..'), {
      more: `targets:\n  - name: tally\n    type: rest\n    recipe: tally\n    vars: { url: "${crm.url}" }\n    auth: { token: ${TOKEN} }\n${more}`,
    });
    const relay = await startRelay(loadConfig(file, {}), undefined, {
      delivery: { pollMs: 20, backoff: { baseMs: 50, maxMs: 400 } },
    });
    cleanup.push(() => relay.close());
    return { crm, relay };
  }

  async function deliver(relay: Relay, body: string): Promise<void> {
    const res = await sendFlowRequest(relay.port, '3cx', {
      method: 'POST',
      contentType: 'application/json',
      body,
    });
    expect(res?.status).toBe(200);
    await settleDeliveries(relay);
  }

  it('sends them in order after the create, skipping one whose `if` is false for this call', async () => {
    const { crm, relay } = await open();
    await deliver(relay, MISSED);
    expect(crm.done).toEqual(['POST /calls', 'PUT /calls/1/state', 'PUT /calls/1/marker']);
    await deliver(relay, ANSWERED);
    expect(crm.done.slice(3)).toEqual([
      'POST /calls',
      'PUT /calls/2/state',
      'PUT /calls/2/talk',
      'PUT /calls/2/marker',
    ]);
    expect(crm.calls.get('1')).toMatchObject({ state: 'done', marker: expect.any(String) });
    expect(crm.calls.get('1')).not.toHaveProperty('talk');
    expect(crm.calls.get('2')).toMatchObject({ state: 'done', talk: 65 });
    const ds = await relay.store.listDeliveries({ limit: 5 });
    expect(ds.map((d) => d.state)).toEqual(['done', 'done']);
  });

  it('a then-request failing with 500 retries the delivery, which reopens and completes the call by update', async () => {
    const { crm, relay } = await open();
    // More 500s than one attempt's quick retries: the attempt fails.
    for (let i = 0; i < 3; i++) crm.faults.push({ match: 'PUT /calls/1/state', status: 500 });
    await deliver(relay, ANSWERED);
    expect(crm.faults).toEqual([]);
    // Made once; the retry took the update path and its then, in order.
    expect(crm.done).toEqual([
      'POST /calls',
      'PATCH /calls/1',
      'PUT /calls/1/state',
      'PUT /calls/1/talk',
    ]);
    expect(crm.calls.size).toBe(1);
    expect(crm.calls.get('1')).toMatchObject({ state: 'done', talk: 65 });
    const [d] = await relay.store.listDeliveries({ limit: 1 });
    expect(d!.state).toBe('done');
    // The failing request is named by its `what` in the attempt rows.
    const attempts = await relay.store.listAttempts({ limit: 50 });
    expect(attempts.filter((a) => a.status === 500).map((a) => a.operation)).toEqual([
      'completing the call',
      'completing the call',
      'completing the call',
    ]);
  });

  it("without an update step, a then-request failing with 500 is sent again by the retry: the create's then", async () => {
    const noUpdate = RECIPE.replace(/\nupdate:\n[\s\S]*?\nfind:/, '\nfind:');
    expect(noUpdate).not.toContain('update:');
    const { crm, relay } = await open('', noUpdate);
    for (let i = 0; i < 3; i++) crm.faults.push({ match: 'PUT /calls/1/state', status: 500 });
    await deliver(relay, ANSWERED);
    expect(crm.faults).toEqual([]);
    // Made once; the retry sent the create's then-requests, in order, to the same call.
    expect(crm.done).toEqual([
      'POST /calls',
      'PUT /calls/1/state',
      'PUT /calls/1/talk',
      'PUT /calls/1/marker',
    ]);
    expect(crm.calls.size).toBe(1);
    expect(crm.calls.get('1')).toMatchObject({ state: 'done', talk: 65 });
    const [d] = await relay.store.listDeliveries({ limit: 1 });
    expect(d!.state).toBe('done');
  });

  it('a lost create found by `find` runs the update and its then', async () => {
    const { crm, relay } = await open();
    crm.faults.push({ match: 'POST /calls', lost: true });
    await deliver(relay, MISSED);
    expect(crm.log.map((l) => `${l.method} ${l.path} ${l.status}`)).toEqual([
      'POST /calls 0',
      'GET /calls 200',
      'PATCH /calls/1 200',
      'PUT /calls/1/state 200',
    ]);
    expect(crm.calls.size).toBe(1);
    expect(crm.calls.get('1')).toMatchObject({ state: 'done' });
  });

  it('dry run: sends nothing and shows each then-request by its `what`, in order', async () => {
    const { crm, relay } = await open('    dryRun: true\n');
    await deliver(relay, ANSWERED);
    expect(crm.log).toEqual([]);
    const attempts = (await relay.store.listAttempts({ limit: 50 }))
      .filter((a) => a.method !== null)
      .sort((a, b) => a.id - b.id);
    expect(
      attempts.map((a) => [a.operation, a.method, a.path?.replace(/\d+/, 'N'), a.status]),
    ).toEqual([
      ['creating the call', 'POST', '/calls', 201],
      ['completing the call', 'PUT', '/calls/N/state', 200],
      ['noting the talk time', 'PUT', '/calls/N/talk', 200],
      ['after creating the call (3)', 'PUT', '/calls/N/marker', 200],
    ]);
  });
});

describe('golden cases', () => {
  it('list the then-requests a dry run makes, in order, with their bodies', async () => {
    const traces = await dryRun(recipeFile(), {
      flow: '3cx/3cx-v2-outgoing-missed',
      vars: { url: 'https://tally.example' },
      expect: { requests: [] },
    });
    expect(traces.map((t) => [t.method, t.path.replace(/\d+/, 'N'), t.sent])).toEqual([
      ['POST', '/calls', expect.stringContaining('"ref":"callrelay:3cx:')],
      ['PUT', '/calls/N/state', '{"state":"done"}'],
      ['PUT', '/calls/N/marker', expect.stringContaining('"marker":"callrelay 3cx/')],
    ]);
  });
});

describe('check names a wrong then: item at its place', () => {
  const issuesOf = (text: string): string[] => {
    try {
      loadRecipe(recipeFile(text));
    } catch (err) {
      if (err instanceof ConfigError)
        return err.issues.map((i) => `${i.file.split('/').at(-1)}:${i.line}:${i.col} ${i.message}`);
      throw err;
    }
    return [];
  };
  const lineOf = (text: string, s: string) => text.split('\n').findIndex((l) => l.includes(s)) + 1;

  it('an unknown field inside a then item, with the name meant', () => {
    expect(issuesOf(RECIPE)).toEqual([]);
    const text = RECIPE.replace('      if: talkSec > 0\n', '      iff: talkSec > 0\n');
    expect(issuesOf(text)).toEqual([
      `tally.yaml:${lineOf(text, 'iff:')}:7 unknown field "iff" (did you mean "if"?)`,
    ]);
  });

  it('a bad expression in `if`, and one in a then request', () => {
    const text = RECIPE.replace('      if: talkSec > 0\n', '      if: talkSec >\n').replace(
      `json: "{ 'marker': marker }"`,
      `json: "{ 'marker': $nope(marker) }"`,
    );
    expect(issuesOf(text)).toEqual([
      expect.stringMatching(new RegExp(`^tally\\.yaml:${lineOf(text, 'if: talkSec >')}:\\d+ `)),
      `tally.yaml:${lineOf(text, '$nope')}:${text.split('\n')[lineOf(text, '$nope') - 1]!.indexOf('$nope') + 1} unknown function $nope`,
    ]);
  });
});
