// The recipe language's `skip:`, `createContacts` and `budget:` (issue 26), through a real relay
// into the tests' own CRM (test/fakes/pebble.ts) with its recipe changed in a temp dir: a skipped
// call keeps its reason where an admin reads the delivery and is written once the contact exists;
// one contact per unknown number however many calls come at once, none for a withheld number;
// a spent budget sends the delivery back due later and makes a phone system's lookup find nobody.

import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { ConfigError } from '../../lib/yaml.js';
import { startRelay, type Relay } from '../../runtime.js';
import { FakePebble } from '../../../test/fakes/pebble.js';
import {
  ConsoleClient,
  MAIN,
  ROOT,
  sendFlowRequest,
  settleDeliveries,
  sourceToken,
  tempDir,
  TOKENS,
  writeRelayYaml,
} from '../../../test/support.js';

const KEY = 'pebble-key-0123456789abcdef';
const RECIPE = join(ROOT, 'test', 'recipes', 'pebble-crm.yaml');
const NUMBER = '420774852600';

/** A 3CX call (ended, one request) from `from`; an empty `from` is a withheld number. */
const call = (id: string, from: string): string =>
  `{"Event":"incoming","Callerid":"${from}","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:21","Id":"${id}"}`;

/** The Pebble recipe searching by E.164 only (one request a search), changed by `edit`. */
function recipeDir(edit: (text: string) => string = (t) => t): string {
  const dir = tempDir();
  mkdirSync(join(dir, 'targets'));
  const text = readFileSync(RECIPE, 'utf8').replace(
    'terms: "[external, $national(external)]"',
    'terms: "[external]"',
  );
  writeFileSync(join(dir, 'targets', 'pebble-crm.yaml'), edit(text));
  return dir;
}

const NEW_CONTACT = `newContact:
  what: making a contact for the caller
  request: { method: POST, url: /v1/contacts, form: "{ 'name': 'Caller ' & contact.e164, 'phone': contact.e164 }" }
  read: "{ 'id': answer.body.id, 'numbers': [contact.e164] }"
`;
const CARD = '    card: { lastName: contact.name }\n  user:\n';

describe('recipe language: skip, createContacts, budget', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function open(
    target: string,
    edit?: (text: string) => string,
  ): Promise<{
    crm: FakePebble;
    relay: Relay;
    file: string;
    send: (body: string) => Promise<void>;
  }> {
    const crm = await new FakePebble({ header: 'x-pebble-key', value: KEY }).start();
    cleanup.push(() => crm.close());
    const file = writeRelayYaml(recipeDir(edit), {
      more: `targets:\n  - name: pebble\n    type: rest\n    recipe: pebble-crm\n    vars: { url: "${crm.url}" }\n    auth: { apiKey: ${KEY} }\n${target}`,
    });
    const relay = await startRelay(loadConfig(file, {}), undefined, {
      delivery: { pollMs: 20, backoff: { baseMs: 50, maxMs: 400 } },
    });
    let closed = false;
    cleanup.push(async () => {
      if (!closed) await relay.close();
      closed = true;
    });
    const send = async (body: string): Promise<void> => {
      const res = await sendFlowRequest(relay.port, '3cx', {
        method: 'POST',
        contentType: 'application/json',
        body,
      });
      if (res) expect(res.status).toBe(200);
    };
    return { crm, relay, file, send };
  }

  it('skip: nothing written, the delivery done with its reason shown; a later delivery writes once the contact exists', async () => {
    // The default cache (a miss kept a fifth of cacheSec): the skip forgets the number's miss.
    const { crm, relay, file, send } = await open(
      '',
      (t) => `${t}skip: "contact ? undefined : 'no contact has this number'"\n`,
    );
    await send(call('260801100000_1-1', NUMBER));
    await settleDeliveries(relay);
    expect(crm.calls.size).toBe(0);
    expect(crm.log.map((l) => `${l.method} ${l.path}`)).toEqual(['GET /v1/contacts']);
    const [d] = await relay.store.listDeliveries({ limit: 5 });
    expect(d).toMatchObject({ state: 'done', lastError: null });
    expect(d!.remote.skipped).toBe('no contact has this number');
    const attempts = await relay.store.listAttempts({ deliveryId: d!.id, limit: 10 });
    expect(attempts.map((a) => a.error)).toContain('skipped: no contact has this number');
    // The metrics tell a skipped run from a delivered one.
    const metrics = await (await fetch(`http://127.0.0.1:${relay.port}/metrics`)).text();
    expect(metrics).toMatch(
      /^callrelay_delivery_attempts_total\{target="pebble",outcome="skipped",status_class="2xx"\} 1$/m,
    );
    expect(metrics).not.toMatch(/outcome="delivered"/);

    // The console's call page says so.
    const base = `http://127.0.0.1:${relay.port}`;
    const admin = new ConsoleClient(base);
    expect((await admin.post('/console/sign-in', { token: TOKENS.admin })).status).toBe(303);
    const page = await (await admin.request('/console/calls/3cx/260801100000_1')).text();
    // Where the CRM's record would be named, not only among the attempts.
    expect(page).toMatch(/<dt>In the CRM<\/dt><dd>skipped: no contact has this number<\/dd>/);

    // The contact exists now: delivered again, the call is written on it.
    const who = crm.addContact('Dana', ['+420 774 852 600']);
    const again = await fetch(`${base}/api/deliveries/${d!.id}/redeliver`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.admin}` },
    });
    expect(again.status).toBe(200);
    await settleDeliveries(relay);
    expect([...crm.calls.values()].map((c) => c.fields.contact_id)).toEqual([who]);
    const [after] = await relay.store.listDeliveries({ limit: 5 });
    expect(after!.remote.skipped).toBeUndefined();

    // `callrelay calls` and `deliveries` show the reason of a skipped one.
    await send(call('260801100000_2-1', '420774859999'));
    await settleDeliveries(relay);
    await relay.close();
    cleanup.pop();
    const cli = async (...args: string[]): Promise<string> =>
      (await promisify(execFile)(process.execPath, [MAIN, ...args], { encoding: 'utf8' })).stdout;
    expect(await cli('calls', '--config', file)).toContain('pebble:delivered(skipped)');
    expect(await cli('calls', '260801100000_2', '--config', file)).toContain(
      'skipped: no contact has this number',
    );
    expect(await cli('deliveries', '--state', 'done', '--config', file)).toContain(
      'skipped: no contact has this number',
    );
  });

  it('skip: a call written already is updated by a later delivery, never skipped', async () => {
    const { crm, relay, send } = await open(
      '',
      // Says skip on any delivery after the first: only a call nothing was written for may skip.
      (t) => `${t}skip: "remote.id ? 'would skip now'"\n`,
    );
    crm.addContact('Dana', ['+420 774 852 600']);
    await send(call('260801130000_1-1', NUMBER));
    await settleDeliveries(relay);
    expect(crm.calls.size).toBe(1);
    const [id] = [...crm.calls.keys()];
    const [d] = await relay.store.listDeliveries({ limit: 5 });
    const again = await fetch(`http://127.0.0.1:${relay.port}/api/deliveries/${d!.id}/redeliver`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.admin}` },
    });
    expect(again.status).toBe(200);
    await settleDeliveries(relay);
    expect(crm.log.filter((l) => l.method === 'PUT').map((l) => l.path)).toEqual([
      `/v1/calls/${id}`,
    ]);
    const [after] = await relay.store.listDeliveries({ limit: 5 });
    expect(after).toMatchObject({ state: 'done', lastError: null });
    expect(after!.remote.skipped).toBeUndefined();
  });

  it('skip: a value that is not text is a dead letter naming the skip, never ignored', async () => {
    const { crm, relay, send } = await open('', (t) => `${t}skip: "contact = null"\n`);
    await send(call('260801140000_1-1', NUMBER));
    await settleDeliveries(relay);
    expect(crm.calls.size).toBe(0);
    const [d] = await relay.store.listDeliveries({ limit: 5 });
    expect(d!.state).toBe('dead');
    expect(d!.lastError).toMatch(/skip: give the reason as text, got true/);
  });

  it('createContacts: one contact for three calls at once from an unknown number, none for a withheld one', async () => {
    const { crm, relay, send } = await open(
      '    createContacts: true\n',
      (t) => `${t}${NEW_CONTACT}`,
    );
    await Promise.all([1, 2, 3].map((i) => send(call(`260801110000_${i}-1`, NUMBER))));
    await send(call('260801110000_9-1', ''));
    await settleDeliveries(relay);
    const made = crm.log.filter((l) => l.method === 'POST' && l.path === '/v1/contacts');
    expect(made).toHaveLength(1);
    expect(crm.contacts.map((c) => c.phones)).toEqual([['+420774852600']]);
    const id = crm.contacts[0]!.id;
    const calls = [...crm.calls.values()];
    expect(calls).toHaveLength(4);
    expect(calls.filter((c) => c.fields.contact_id === id)).toHaveLength(3);
    expect(calls.filter((c) => !c.fields.contact_id)).toHaveLength(1);
  });

  it("check refuses createContacts for a recipe without newContact, at relay.yaml's place", () => {
    const file = writeRelayYaml(recipeDir(), {
      more: `targets:\n  - name: pebble\n    type: rest\n    recipe: pebble-crm\n    vars: { url: "http://x" }\n    dryRun: true\n    createContacts: true\n`,
    });
    const line =
      readFileSync(file, 'utf8')
        .split('\n')
        .findIndex((l) => l.includes('createContacts')) + 1;
    let issues: string[] = [];
    try {
      loadConfig(file, {});
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      issues = err.issues.map((i) => `${i.line}:${i.col} ${i.message}`);
    }
    expect(issues).toEqual([
      `${line}:21 createContacts: recipe pebble-crm has no \`newContact\` (how to make a contact), so it cannot create contacts`,
    ]);
  });

  it('budget: 3 requests an hour go through; the next delivery goes back due later, sending nothing', async () => {
    const { crm, relay, send } = await open(
      '    budget: { requests: 3, perSeconds: 3600 }\n',
      // relay.yaml's budget overrides the recipe's.
      (t) =>
        t.replace(
          '  concurrency: 4\n',
          '  concurrency: 4\n  budget: { requests: 1000, perSeconds: 3600 }\n',
        ),
    );
    await send(call('260801120000_1-1', NUMBER));
    await settleDeliveries(relay);
    expect(crm.calls.size).toBe(1);
    await send(call('260801120000_2-1', '420774859999'));
    // The second call's search is the third request; its create would be the fourth.
    let back;
    for (const t0 = Date.now(); Date.now() - t0 < 10_000;) {
      [back] = (await relay.store.listDeliveries({ state: 'due', limit: 5 })).filter(
        (d) => d.attempts > 0,
      );
      if (back) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(back, 'the second delivery went back to the store').toBeDefined();
    expect(crm.log).toHaveLength(3);
    expect(crm.calls.size).toBe(1);
    expect(back!.lastError).toMatch(/request budget \(3 per 3600 s\) is spent/);
    expect(Date.parse(back!.dueAt) - Date.now()).toBeGreaterThan(30 * 60_000);
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
  });

  it("budget: a phone system's lookup never queues behind a delivery; it answers nobody at once", async () => {
    const crm = await new FakePebble({ header: 'x-pebble-key', value: KEY }).start();
    cleanup.push(() => crm.close());
    crm.addContact('Dana', ['+420 774 852 600']);
    // One request per 3 s: the delivery's search takes it, and its next request waits in the
    // queue for the window, which frees within the delivery's wait.
    const file = writeRelayYaml(
      recipeDir((t) => t.replace('  user:\n', CARD)),
      {
        more: `targets:\n  - name: pebble\n    type: rest\n    recipe: pebble-crm\n    vars: { url: "${crm.url}" }\n    auth: { apiKey: ${KEY} }\n    budget: { requests: 1, perSeconds: 3 }\n`,
      },
    );
    // 3CX's CRM template source asks the lookups (uncached, so each asks the CRM).
    const tpl = `    token: ${sourceToken('3cx-crm-template')}\n`;
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace(tpl, `${tpl}    crm: { cacheSec: 0 }\n`),
    );
    const relay = await startRelay(loadConfig(file, {}), undefined, {
      delivery: { pollMs: 20, backoff: { baseMs: 50, maxMs: 400 } },
    });
    cleanup.push(() => relay.close());
    const res = await sendFlowRequest(relay.port, '3cx', {
      method: 'POST',
      contentType: 'application/json',
      body: call('260801150000_1-1', NUMBER),
    });
    if (res) expect(res.status).toBe(200);
    for (const t0 = Date.now(); crm.log.length < 1 && Date.now() - t0 < 10_000;)
      await new Promise((r) => setTimeout(r, 10));
    expect(crm.log.map((l) => `${l.method} ${l.path}`)).toEqual(['GET /v1/contacts']);
    await new Promise((r) => setTimeout(r, 200)); // the delivery's next request joins the queue
    const t0 = Date.now();
    const asked = await fetch(
      `http://127.0.0.1:${relay.port}/hooks/3cx-crm-template/crm/lookup/+420774852600`,
      {
        headers: {
          authorization: `Bearer ${sourceToken('3cx-crm-template')}`,
        },
      },
    );
    expect(asked.status).toBe(200);
    expect(await asked.json()).toEqual({ contacts: [] });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(crm.log).toHaveLength(1);
  });
});
