// The REST target through a real relay into "Pebble CRM", the tests' own made-up CRM
// (test/fakes/pebble.ts) and its recipe (test/recipes/pebble-crm.yaml): every sample flow as one
// call record with the right fields, contacts found on a later page, owners by email, form bodies
// and ids in Location, errors inside 200 answers, its own rate-limit header, exactly once through
// failures and lost answers, dry runs without credentials, and config errors that name the place.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { secretsOf } from '../../config/secrets.js';
import type { Flow } from '../../flows.js';
import { ConfigError } from '../../lib/yaml.js';
import { startRelay, type Relay } from '../../runtime.js';
import { FakePbx } from '../../../test/fakes/pbx.js';
import { FakePebble } from '../../../test/fakes/pebble.js';
import { silentLogger } from '../../telemetry/log.js';
import type { RestConfig } from './spec.js';
import { create } from './target.js';
import {
  goldenCases,
  sameParty,
  ROOT,
  sendFlowRequest,
  settleDeliveries,
  tempDir,
  writeRelayYaml,
  type SourceSettingsMap,
} from '../../../test/support.js';

const KEY = 'pebble-key-0123456789abcdef';
const RECIPE = join(ROOT, 'test', 'recipes', 'pebble-crm.yaml');
type Req = Flow['requests'][number];

/** relay.yaml with a Pebble target whose recipe is in targets/ beside it. */
function config(
  target: string,
  o: { sources?: SourceSettingsMap; threecx?: string; recipe?: (text: string) => string } = {},
): string {
  const dir = tempDir();
  mkdirSync(join(dir, 'targets'));
  const text = readFileSync(RECIPE, 'utf8');
  writeFileSync(join(dir, 'targets', 'pebble-crm.yaml'), o.recipe ? o.recipe(text) : text);
  return writeRelayYaml(dir, {
    ...(o.sources ? { sources: o.sources } : {}),
    ...(o.threecx ? { threecx: o.threecx } : {}),
    more: `targets:\n  - name: pebble\n    type: rest\n    recipe: pebble-crm\n${target}`,
  });
}

const post = (body: string): Req => ({ method: 'POST', contentType: 'application/json', body });
const flowOf = (name: string) => goldenCases().find((c) => c.flow.name === name)!.flow;

describe('REST target (a recipe of the tests own)', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function open(
    target = '',
    o: { sources?: SourceSettingsMap; threecx?: string; recipe?: (text: string) => string } = {},
  ): Promise<{
    crm: FakePebble;
    relay: Relay;
    send: (source: string, r: Req) => Promise<void>;
    settle: (ms?: number) => Promise<void>;
  }> {
    const crm = await new FakePebble({ header: 'x-pebble-key', value: KEY }).start();
    cleanup.push(() => crm.close());
    const file = config(
      (target.includes('vars:') ? '' : `    vars: { url: "${crm.url}" }\n`) +
        (target.includes('dryRun') ? '' : `    auth: { apiKey: ${KEY} }\n`) +
        target.replace('"URL"', `"${crm.url}"`),
      o,
    );
    const relay = await startRelay(loadConfig(file, {}), undefined, {
      delivery: { pollMs: 20, backoff: { baseMs: 50, maxMs: 400 } },
    });
    cleanup.push(() => relay.close());
    const send = async (source: string, r: Req): Promise<void> => {
      const res = await sendFlowRequest(relay.port, source, r);
      if (res) expect(res.status).toBe(200);
    };
    return { crm, relay, send, settle: (ms) => settleDeliveries(relay, ms) };
  }

  it.each(goldenCases().map((c) => [`${c.adapter}/${c.flow.name}`, c] as const))(
    '%s: one call record per call, with direction, outcome, talk time and numbers',
    async (_n, c) => {
      const { crm, send, settle } = await open('', { sources: { [c.adapter]: c.flow.source } });
      for (const r of c.flow.requests) await send(c.adapter, r);
      await settle();
      const expected = c.flow.expect!.calls;
      expect(crm.calls.size).toBe(expected.length);
      for (const e of expected) {
        const ref = `callrelay:${c.adapter}:${String(e.callId)}`;
        const made = [...crm.calls.values()].filter((x) => x.fields.external_ref === ref);
        expect(made, ref).toHaveLength(1);
        const f = made[0]!.fields;
        expect(f.direction).toBe(e.direction === 'outbound' ? 'out' : 'in');
        expect(f.outcome).toBe(
          { answered: 'talked', missed: 'no-answer', busy: 'busy', failed: 'failed' }[
            e.outcome as string
          ],
        );
        const talk = e.outcome === 'answered' ? (e.talkSec ?? e.durationSec) : 0;
        if (typeof talk === 'number') expect(f.duration_sec).toBe(String(talk));
        expect(sameParty(f.number, e.externalNumber), `${String(f.number)}`).toBe(true);
        expect(f.notes).toContain(`callrelay ${c.adapter}/${String(e.callId)}`);
      }
      expect(crm.tooManyRequests).toBe(0);
    },
  );

  it('finds the contact on the search answer page 2 and the owner by email, sends a form', async () => {
    const { crm, send, settle, relay } = await open('    agents:\n      "117": bob@example.com\n');
    crm.users.push({ id: 'u7', email: 'bob@example.com' });
    // The search is fuzzy: three look-alikes (containing the digits) come first, two a page.
    crm.addContact('Look-alike 1', ['+420 774 852 6001'], '2020-01-01T00:00:00Z');
    crm.addContact('Look-alike 2', ['774852600 9'], '2020-01-02T00:00:00Z');
    crm.addContact('Look-alike 3', ['+1 420 774 852 600'], '2020-01-03T00:00:00Z');
    const who = crm.addContact('Dana', ['+420 774 852 600'], '2021-01-01T00:00:00Z');
    await send(
      '3cx',
      post(
        '{"Event":"incoming","Callerid":"420774852600","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"01:05","Id":"260701200000_1-1"}',
      ),
    );
    await settle();
    const [call] = [...crm.calls.values()];
    expect(call!.fields).toMatchObject({
      contact_id: who,
      owner_id: 'u7',
      direction: 'in',
      outcome: 'talked',
      duration_sec: '65',
      number: '+420774852600',
    });
    // Both number forms searched; the E.164 one needed its second page.
    const searches = crm.log.filter((l) => l.path === '/v1/contacts');
    expect(searches.length).toBeGreaterThanOrEqual(3);
    const [d] = await relay.store.listDeliveries({ limit: 1 });
    // The console's link, worked out by the recipe's `link:`.
    expect(d).toMatchObject({
      state: 'done',
      remote: {
        id: call!.id,
        link: { id: `call ${call!.id}`, url: `https://eu.pebble.example/calls/${call!.id}` },
      },
    });
  });

  it('a keep or an upsert id that fails after the write is a warning: the call stays delivered', async () => {
    const post1 = (i: number) =>
      post(
        `{"Event":"incoming","Callerid":"42077485${3100 + i}","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:21","Id":"260702110000_${i}-1"}`,
      );
    const broken = (t: string) =>
      t
        .replace(
          "  id: $substringAfter(answer.headers.location, '/v1/calls/')\n",
          "  id: $substringAfter(answer.headers.location, '/v1/calls/')\n  keep: \"{ 'n': $number('x') }\"\n",
        )
        .replace(
          '  id: answer.body.id\n',
          "  id: $number('x')\n  keep: \"{ 'n': $number('y') }\"\n",
        );
    expect(broken(readFileSync(RECIPE, 'utf8'))).toContain("$number('y')");
    for (const byRef of ['no', 'yes']) {
      const { crm, send, settle, relay } = await open(
        `    vars: { url: "URL", byRef: "${byRef}" }\n`,
        { recipe: broken },
      );
      await send('3cx', post1(byRef === 'yes' ? 2 : 1));
      await settle();
      const [call] = [...crm.calls.values()];
      const [d] = await relay.store.listDeliveries({ limit: 1 });
      expect(d, byRef).toMatchObject({ state: 'done', remote: { delivered: true } });
      if (byRef === 'no') expect(d!.remote.id).toBe(call!.id);
      expect(crm.calls.size).toBe(1);
    }
  });

  it('relookup: a contact merged since it was looked up is looked up again, and the call goes to its successor', async () => {
    const { crm, send, settle, relay } = await open();
    const ada = crm.addContact('Ada', ['+420 774 853 201'], '2020-01-01T00:00:00Z');
    const ring = (i: number) =>
      post(
        `{"Event":"incoming","Callerid":"420774853201","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:21","Id":"260702120000_${i}-1"}`,
      );
    await send('3cx', ring(1));
    await settle();
    expect([...crm.calls.values()].map((c) => c.fields.contact_id)).toEqual([ada]);
    // Ada is merged into a new record: her id is refused, and the search finds the new one.
    crm.merged.add(ada);
    crm.contacts.splice(0);
    const merged = crm.addContact('Ada Lovelace', ['+420 774 853 201']);
    await send('3cx', ring(2));
    await settle();
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
    expect([...crm.calls.values()].map((c) => c.fields.contact_id)).toEqual([ada, merged]);
    const ds = await relay.store.listDeliveries({ limit: 5 });
    expect(ds.map((d) => (d.remote.contact as { id?: string } | null)?.id).sort()).toEqual(
      [ada, merged].sort(),
    );
  });

  it('keeps exactly one call record per call through 20% failures and lost answers', async () => {
    const { crm, send, relay } = await open('    rateLimit: { requests: 400, perSeconds: 1 }\n');
    const ids = Array.from({ length: 24 }, (_, i) => `260701300000_${i + 1}`);
    // The first create's answer lost for certain, then about 20% failed and 10% lost.
    crm.faults.push({ match: 'POST /v1/calls', fault: { lost: true } });
    crm.setChaos({ match: ['POST /v1/', 'GET /v1/', 'PUT /v1/'], fail: 0.2, lost: 0.1, seed: 11 });
    for (const [i, id] of ids.entries())
      await send(
        '3cx',
        post(
          `{"Event":"incoming","Callerid":"420774853${String(100 + i)}","User":"117","Finishtype":"${i % 3 ? 'Ok' : 'NoAnswer'}","Transfer":"False","Did":"","Duration":"00:12","Id":"${id}-1"}`,
        ),
      );
    await settleDeliveries(relay, 60_000);
    crm.setChaos(undefined);
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
    for (const id of ids) {
      const made = [...crm.calls.values()].filter(
        (c) => c.fields.external_ref === `callrelay:3cx:${id}`,
      );
      expect(made, id).toHaveLength(1);
    }
    expect(crm.calls.size).toBe(ids.length);
    // The scripted lost answer was dealt (so `find` ran), and many random faults besides.
    expect(crm.faults).toEqual([]);
    expect(crm.count('GET', '/v1/calls')).toBeGreaterThanOrEqual(1);
    expect(crm.chaosLog.length).toBeGreaterThan(5);
  });

  it("waits out a 429 by the CRM's own header; an error inside a 200 retries or dead-letters", async () => {
    const { crm, send, settle, relay } = await open();
    crm.faults.push(
      {
        match: 'POST /v1/calls',
        fault: { status: 429, body: { ok: false }, headers: { 'x-pebble-retry-ms': '1200' } },
      },
      { match: 'POST /v1/calls', fault: { errorIn200: { code: 'BUSY', message: 'try later' } } },
    );
    const t0 = Date.now();
    for (const r of flowOf('3cx-v2-outgoing-missed').requests) await send('3cx', r);
    await settle();
    expect(crm.calls.size).toBe(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1200);

    crm.faults.push({
      match: 'POST /v1/calls',
      fault: { errorIn200: { code: 'INVALID', message: 'owner_id is not a user' } },
    });
    for (const r of flowOf('3cx-v2-ringgroup-missed').requests) await send('3cx', r);
    await settle();
    const dead = await relay.store.listDeliveries({ state: 'dead', limit: 5 });
    expect(dead.map((d) => d.lastError)).toEqual([
      expect.stringMatching(/: creating the call record: 200 owner_id is not a user \(INVALID\)$/),
    ]);
  });

  it('keeps what `keep:` reads in remote; statuses under errors.retry retry', async () => {
    const { crm, send, settle, relay } = await open('', {
      recipe: (t) =>
        t
          .replace(
            "  id: $substringAfter(answer.headers.location, '/v1/calls/')",
            "  id: $substringAfter(answer.headers.location, '/v1/calls/')\n  keep: \"{ 'path': answer.headers.location }\"",
          )
          .replace('errors:\n', 'errors:\n  retry: [409]\n'),
    });
    crm.faults.push({ match: 'POST /v1/calls', fault: { status: 409, body: { ok: false } } });
    for (const r of flowOf('3cx-v2-outgoing-missed').requests) await send('3cx', r);
    await settle();
    const [call] = [...crm.calls.values()];
    const [d] = await relay.store.listDeliveries({ limit: 1 });
    expect(d).toMatchObject({
      state: 'done',
      remote: { id: call!.id, path: `/v1/calls/${call!.id}` },
    });
    expect(crm.log.filter((l) => l.method === 'POST').map((l) => l.status)).toEqual([409, 201]);
  });

  it('dry run: needs no auth, sends nothing, shows the form bodies among the attempts', async () => {
    const { crm, send, settle, relay } = await open('    dryRun: true\n');
    for (const r of flowOf('3cx-v2-incoming-answered').requests) await send('3cx', r);
    await settle();
    expect(crm.log).toEqual([]);
    const attempts = await relay.store.listAttempts({ limit: 50 });
    const create = attempts.find((a) => a.operation === 'creating the call record')!;
    expect(create).toMatchObject({ method: 'POST', path: '/v1/calls', status: 201 });
    const form = Object.fromEntries(new URLSearchParams(create.sent!));
    expect(form).toMatchObject({ direction: 'in', outcome: 'talked' });
    expect(form.external_ref).toMatch(/^callrelay:3cx:/);
    const [d] = await relay.store.listDeliveries({ limit: 1 });
    expect(d!.state).toBe('done');
  });

  it('uploads each recording once, streamed from the PBX as multipart, after the create', async () => {
    const pbx = await new FakePbx('pbx-secret').start();
    cleanup.push(() => pbx.close());
    const { crm, send, settle } = await open('', {
      threecx: `    recordings:\n      allowHosts: ["${pbx.url}"]\n      bearer: pbx-secret\n`,
    });
    const audio = Buffer.alloc(50_000, 7);
    const id = '260701400000_1';
    pbx.files.set(`/webapi/recording/${id}-1-1.mp3`, audio);
    for (const body of [
      `{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:12","Id":"${id}-1"}`,
      `{"Event":"recording","FileUrls":["${pbx.url}/webapi/recording/${id}-1-1.mp3"],"Id":"${id}-1"}`,
    ])
      await send('3cx', post(body));
    await settle();
    const [call] = [...crm.calls.values()];
    expect(call!.attachments).toEqual([
      { filename: `${id}-1-1.mp3`, bytes: expect.any(Number) as number },
    ]);
    expect(call!.attachments[0]!.bytes).toBeGreaterThan(audio.length);
  });

  it('uploads a recording as base64 in a JSON body when the recipe says so', async () => {
    const pbx = await new FakePbx('pbx-secret').start();
    cleanup.push(() => pbx.close());
    const { crm, send, settle } = await open('', {
      threecx: `    recordings:\n      allowHosts: ["${pbx.url}"]\n      bearer: pbx-secret\n`,
      recipe: (text) =>
        text.replace(
          'multipart: { field: file }',
          `base64: true\n      json: '{ "name": file.filename, "data": file.base64 }'`,
        ),
    });
    const audio = Buffer.alloc(20_000, 9);
    const id = '260701400000_2';
    pbx.files.set(`/webapi/recording/${id}-1-1.mp3`, audio);
    for (const body of [
      `{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:12","Id":"${id}-1"}`,
      `{"Event":"recording","FileUrls":["${pbx.url}/webapi/recording/${id}-1-1.mp3"],"Id":"${id}-1"}`,
    ])
      await send('3cx', post(body));
    await settle();
    const [call] = [...crm.calls.values()];
    expect(call!.attachments).toEqual([{ filename: `${id}-1-1.mp3`, bytes: audio.length }]);
  });

  it('check --online, unknown agents: asks the CRM with the credentials', async () => {
    const crm = await new FakePebble({ header: 'x-pebble-key', value: KEY }).start();
    cleanup.push(() => crm.close());
    crm.users.push({ id: 'u1', email: 'alice@example.com' });
    const targetOf = (key: string) => {
      const cfg = loadConfig(
        config(
          `    vars: { url: "${crm.url}" }\n    auth: { apiKey: ${key} }\n    agents: { "101": alice@example.com, "102": nobody@example.com, "103": "42" }\n`,
        ),
        {},
      ).targets[0]!;
      const t = create(cfg as unknown as RestConfig, { log: silentLogger, recordings: {} });
      cleanup.push(() => t.close());
      return t;
    };
    expect(await targetOf(KEY).check!()).toMatch(/^credentials accepted \(Pebble CRM: /);
    await expect(targetOf('wrong-key-0123456789').check!()).rejects.toThrow(
      'searching contacts by phone: 401 bad credentials (AUTH)',
    );
    expect(await targetOf(KEY).unknownAgents!()).toEqual([
      'agent 102 -> nobody@example.com: no Pebble CRM user has this email',
    ]);
  });

  it('with vars turning upsert on (when:), writes by reference: once per call through lost answers', async () => {
    const { crm, send, settle, relay } = await open('    vars: { url: "URL", byRef: "yes" }\n');
    crm.faults.push({ match: 'PUT /v1/calls/ref/', fault: { lost: true } });
    for (const name of ['3cx-v2-outgoing-missed', '3cx-v2-incoming-answered'])
      for (const r of flowOf(name).requests) await send('3cx', r);
    await settle();
    expect(crm.count('POST', '/v1/calls')).toBe(0);
    expect(crm.count('GET', '/v1/calls')).toBe(0);
    const refs = [...crm.calls.values()].map((c) => c.fields.external_ref).sort();
    expect(refs).toEqual([...new Set(refs)]);
    expect(refs).toHaveLength(2);
    const ds = await relay.store.listDeliveries({ limit: 10 });
    expect(ds.map((d) => d.state)).toEqual(['done', 'done']);
    // The lost first answer named the id; the 204 of the retry did not: the id is kept anyway
    // when one was named, and the console still gets a link.
    for (const d of ds) expect(d.remote).toHaveProperty('link');
  });

  it('catches the auth values for the redactor, whatever the recipe names them', () => {
    // A header credential under a name no secret pattern knows.
    const file = config(
      `    vars: { url: "http://127.0.0.1:9" }\n    auth: { pebbleId: ${KEY} }\n`,
    );
    const recipe = join(dirname(file), 'targets', 'pebble-crm.yaml');
    writeFileSync(recipe, readFileSync(recipe, 'utf8').replace(/apiKey/g, 'pebbleId'));
    expect(secretsOf(loadConfig(file, {}))).toContain(KEY);
  });
});

describe('REST target config errors name the place', () => {
  const issuesOf = (file: string): string[] => {
    try {
      loadConfig(file, {});
    } catch (err) {
      if (err instanceof ConfigError)
        return err.issues.map((i) => `${i.line}:${i.col} ${i.message}`);
      throw err;
    }
    return [];
  };
  const at = (file: string, text: string) =>
    text.split('\n').findIndex((l) => l.includes(file)) + 1;

  it('relay.yaml: unknown var (near name), a required one missing, enum, auth fields', () => {
    const file = config(
      '    vars: { urll: "http://x", region: mars }\n    auth: { apiKy: x }\n    deliverOn: change\n',
    );
    const issues = issuesOf(file);
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/no variable "urll" \(did you mean "url"\?\)/),
        expect.stringMatching(/needs vars\.url/),
        expect.stringMatching(/vars\.region: one of eu, us, not "mars"/),
        expect.stringMatching(/auth\.apiKy: .* \(did you mean "apiKey"\?\)/),
        expect.stringMatching(/auth: recipe pebble-crm \(header\) needs apiKey/),
      ]),
    );
    expect(issues.every((i) => /^\d+:\d+ /.test(i))).toBe(true);
  });

  it('an auth field left at its example default is refused unless it is a dry run', () => {
    const text =
      '    vars: { url: "http://x" }\n    auth: { pebbleId: "${PEBBLE_ID:-example-id}" }\n';
    const recipe = (t: string) => t.replace(/apiKey/g, 'pebbleId');
    expect(issuesOf(config(text, { recipe }))).toEqual([
      expect.stringMatching(/targets\.0\.auth\.pebbleId is the example default of \$\{PEBBLE_ID\}/),
    ]);
    expect(issuesOf(config(`${text}    dryRun: true\n`, { recipe }))).toEqual([]);
  });

  it('no auth is needed for a dry run; without dryRun it is', () => {
    expect(issuesOf(config('    vars: { url: "http://x" }\n    dryRun: true\n'))).toEqual([]);
    expect(issuesOf(config('    vars: { url: "http://x" }\n'))).toEqual([
      expect.stringMatching(/auth: recipe pebble-crm \(header\) needs apiKey/),
    ]);
  });

  it("OAuth 2 recipes: the grant's fields at their place; a dry run needs none, and delivers", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'targets'));
    const text = readFileSync(RECIPE, 'utf8').replace(
      /auth:\n {2}type: header\n {2}fields: \[apiKey\]\n {2}headers: .*\n/,
      'auth:\n  type: refresh_token\n  tokenUrl: "{vars.url}/oauth/token"\n',
    );
    expect(text).toContain('refresh_token');
    writeFileSync(join(dir, 'targets', 'pebble-crm.yaml'), text);
    const yaml = (more: string) =>
      writeRelayYaml(dir, {
        more: `targets:\n  - name: pebble\n    type: rest\n    recipe: pebble-crm\n    vars: { url: "http://127.0.0.1:9" }\n${more}`,
      });
    expect(issuesOf(yaml('    auth: { clientId: a, clientSecret: b }\n'))).toEqual([
      expect.stringMatching(/auth: recipe pebble-crm \(refresh_token\) needs refreshToken$/),
    ]);
    const dry = yaml('    dryRun: true\n');
    expect(issuesOf(dry)).toEqual([]);
    const relay = await startRelay(loadConfig(dry, {}), undefined, {
      delivery: { pollMs: 20, backoff: { baseMs: 50, maxMs: 400 } },
    });
    try {
      for (const r of flowOf('3cx-v2-outgoing-missed').requests)
        await sendFlowRequest(relay.port, '3cx', r);
      await settleDeliveries(relay);
      const ds = await relay.store.listDeliveries({ limit: 5 });
      expect(ds.map((d) => d.state)).toEqual(['done']);
    } finally {
      await relay.close();
    }
  });

  it('deliverOn: change without update or upsert is refused at its place', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'targets'));
    const text = readFileSync(RECIPE, 'utf8')
      .replace(/\nupdate:\n.*\n/, '\n')
      .replace(/\nupsert:\n( {2}.*\n)+/, '\n');
    writeFileSync(join(dir, 'targets', 'pebble-crm.yaml'), text);
    const file = writeRelayYaml(dir, {
      more: `targets:\n  - name: pebble\n    type: rest\n    recipe: pebble-crm\n    vars: { url: "http://x" }\n    dryRun: true\n    deliverOn: change\n`,
    });
    const relay = readFileSync(file, 'utf8');
    expect(issuesOf(file)).toEqual([
      `${at('deliverOn: change', relay)}:16 deliverOn: change needs \`update\` or \`upsert\` in recipe pebble-crm, which can only create once: use deliverOn: ended`,
    ]);
  });

  it('recipe: `create` without `find` is refused at its place, even beside an `upsert`', () => {
    const text = readFileSync(RECIPE, 'utf8').replace(/\nfind:\n( {2}.*\n)+/, '\n');
    expect(text).not.toContain('\nfind:');
    const file = config('    vars: { url: "http://x" }\n    dryRun: true\n', {
      recipe: () => text,
    });
    const line = text.split('\n').findIndex((l) => l.startsWith('create:')) + 1;
    expect(issuesOf(file)).toEqual([
      `${line + 1}:3 \`create\` needs \`find\` (how to find a create whose answer was lost), or use \`upsert\` alone`,
    ]);
  });

  it("recipe: an expression's own `$f := function` is no unknown function", () => {
    const recipe = (t: string) =>
      t.replace(
        "  id: $substringAfter(answer.headers.location, '/v1/calls/')\n",
        '  id: "($f := function($l) { $substringAfter($l, \'/v1/calls/\') }; $f(answer.headers.location))"\n',
      );
    expect(recipe(readFileSync(RECIPE, 'utf8'))).toContain('$f := function');
    expect(
      issuesOf(config('    vars: { url: "http://x" }\n    dryRun: true\n', { recipe })),
    ).toEqual([]);
  });

  it('recipe: unknown field (near name), expression syntax and unknown $function at file:line:col', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'targets'));
    const text = readFileSync(RECIPE, 'utf8')
      .replace(
        '  id: answer.body.items[0].id',
        '  idd: answer.body.items[0].id\n  id: answer.body.items[0',
      )
      .replace('classify: "answer.status', 'classify: "$isError(answer) or answer.status');
    writeFileSync(join(dir, 'targets', 'pebble-crm.yaml'), text);
    const file = writeRelayYaml(dir, {
      more: `targets:\n  - name: pebble\n    type: rest\n    recipe: pebble-crm\n    vars: { url: "http://x" }\n    dryRun: true\n`,
    });
    let err: ConfigError | undefined;
    try {
      loadConfig(file, {});
    } catch (e) {
      err = e as ConfigError;
    }
    const lines = text.split('\n');
    const lineOf = (s: string) => lines.findIndex((l) => l.includes(s)) + 1;
    expect(
      err?.issues.map((i) => `${i.file.split('/').at(-1)}:${i.line}:${i.col} ${i.message}`),
    ).toEqual([`pebble-crm.yaml:${lineOf('  idd:')}:3 unknown field "idd" (did you mean "id"?)`]);
    // With the schema satisfied, the expressions are checked.
    writeFileSync(
      join(dir, 'targets', 'pebble-crm.yaml'),
      text.replace('  idd: answer.body.items[0].id\n', ''),
    );
    try {
      loadConfig(file, {});
      err = undefined;
    } catch (e) {
      err = e as ConfigError;
    }
    const fixed = text.replace('  idd: answer.body.items[0].id\n', '').split('\n');
    const l2 = (x: string) => fixed.findIndex((l) => l.includes(x)) + 1;
    expect(err?.issues.map((i) => `${i.line}:${i.col} ${i.message}`)).toEqual([
      expect.stringMatching(
        new RegExp(`^${l2('  id: answer.body.items[0')}:\\d+ expression error`),
      ),
      `${l2('classify:')}:${'  classify: "'.length + 1} unknown function $isError`,
    ]);
  });
});
