// The shipped Freshsales recipe (targets/freshsales.yaml) through a real relay into the Freshsales
// fake (test/fakes/freshsales.ts): every sample flow as exactly one phone call on the right
// contact (never the look-alike abroad; withheld numbers on the catch-all contact), with the right
// call_direction and a note ending in the call's marker; the same with failures and lost answers
// (lost creates found again by the marker among the contact's notes); the hourly budget kept
// without a 429; a relay killed while its creates are in flight; a withheld number skipped, with
// its reason, where there is no catch-all; createContacts making one contact per new number;
// `check --online` with a good key and a refused one.
// The recipe is copied beside relay.yaml with find.lagSec 0.2 (shipped: 30 s), and the fake's
// notesLagMs is 100 ms (default 3 s), so that a lost create is looked for after its note shows,
// in a fraction of the time; only the budget test changes the recipe further (its budget).

import { execFile, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { SHIPPED_RECIPES } from '../../src/targets/rest/recipe.js';
import { FakeFreshsales, type FreshsalesCall } from '../fakes/freshsales.js';
import { killMidDelivery, waitUntil } from './crash.js';
import {
  casesSources,
  MAIN,
  freePort,
  goldenCases,
  recordsOf,
  relayBatches,
  sendFlowRequest,
  settleDeliveries,
  tempDir,
  writeRelayYaml,
  type SourceSettingsMap,
} from '../support.js';

const KEY = 'fs-test-key-0123456789abcdef';
const RECIPE = readFileSync(join(SHIPPED_RECIPES, 'freshsales.yaml'), 'utf8');
const SKIP_REASON =
  'Freshsales logs calls on a contact: no contact has this number (set vars.unknownCallerContact or createContacts)';

/** The phone calls whose note ends with the call's marker (not a prefix of another's). */
const callsOf = (crm: FakeFreshsales, source: string, callId: string): FreshsalesCall[] =>
  [...crm.calls.values()].filter(
    (c) =>
      crm.notes.get(c.note_id)?.description.split('\n').at(-1) === `callrelay ${source}/${callId}`,
  );

/** A 3CX call from +420774852629 (a Prague PBX's source, test/support.ts). */
const threecx = (id: string, callerId = '420774852629') =>
  `{"Event":"incoming","Callerid":"${callerId}","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:08","Id":"${id}-1"}`;

describe('Freshsales recipe through a real relay', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  const closed = new WeakSet<Relay>();
  const closeRelay = async (relay: Relay): Promise<void> => {
    if (closed.has(relay)) return;
    closed.add(relay);
    await relay.close();
  };

  interface Options {
    port?: number;
    sources?: SourceSettingsMap;
    catchAll?: number;
    budget?: { requests: number; perSeconds: number };
    createContacts?: boolean;
    file?: string;
  }

  function writeConfig(crm: FakeFreshsales, o: Options = {}): string {
    const dir = tempDir();
    mkdirSync(join(dir, 'targets'));
    let recipe = RECIPE.replace(/^ {2}lagSec: 30$/m, '  lagSec: 0.2');
    expect(recipe).not.toBe(RECIPE);
    // The budget test sets the recipe's own; the others a wide one in relay.yaml.
    if (o.budget) {
      const before = recipe;
      recipe = recipe.replace(
        /^ {2}budget: \{ requests: 1000, perSeconds: 3600 \}$/m,
        `  budget: { requests: ${o.budget.requests}, perSeconds: ${o.budget.perSeconds} }`,
      );
      expect(recipe).not.toBe(before);
    }
    writeFileSync(join(dir, 'targets', 'freshsales.yaml'), recipe);
    const vars = ['alias: acme', `baseUrl: "${crm.url}"`];
    if (o.catchAll) vars.push(`unknownCallerContact: "${o.catchAll}"`);
    // Unless a test is about them, the fake's allowances and the relay's pace are wide.
    const budget = o.budget ? '' : `    budget: { requests: 100000, perSeconds: 3600 }\n`;
    return writeRelayYaml(dir, {
      ...(o.port ? { port: o.port } : {}),
      sources: o.sources,
      more:
        `targets:\n  - name: freshsales\n    type: rest\n    recipe: freshsales\n` +
        `    vars: { ${vars.join(', ')} }\n    auth: { apiKey: ${KEY} }\n` +
        `    settleSec: 0\n    retryForHours: 1\n` +
        `    rateLimit: { requests: 1000, perSeconds: 1 }\n${budget}` +
        (o.createContacts ? '    createContacts: true\n' : ''),
    });
  }

  async function open(crm: FakeFreshsales, o: Options = {}): Promise<Relay> {
    const relay = await startRelay(loadConfig(o.file ?? writeConfig(crm, o), {}), undefined, {
      delivery: { pollMs: 20, backoff: { baseMs: 30, maxMs: 200 } },
    });
    cleanup.push(() => closeRelay(relay));
    return relay;
  }

  async function fake(): Promise<FakeFreshsales> {
    const crm = await new FakeFreshsales().start();
    crm.addUser('relay@example.com', 'Relay', { apiKey: KEY });
    crm.notesLagMs = 100;
    crm.hourlyLimit = 1e9;
    crm.minuteLimit = 1e9;
    cleanup.push(() => crm.close());
    return crm;
  }

  /** Every sample flow into relays that share the fake; each call checked there. */
  async function everyFlow(faults: { failRate: number; lostRate: number }) {
    const crm = await fake();
    const cases = await Promise.all(
      goldenCases().map(async (c) => ({ ...c, records: await recordsOf(c) })),
    );
    const all = cases.flatMap((c) => c.records);
    // Callerdesk's callers are nobody's contacts: they go to the catch-all, as withheld ones do.
    const unknown = new Set(
      cases.filter((c) => c.adapter === 'callerdesk').flatMap((c) => c.records),
    );
    const contacts = new Map<string, number>();
    for (const r of all)
      if (r.externalE164 && !contacts.has(r.externalE164) && !unknown.has(r))
        contacts.set(r.externalE164, crm.seedNumber(r.externalE164));
    const catchAll = crm.addContact({ last_name: 'Unknown callers' });
    // Each relay (with its own store) takes flows whose call ids it has not seen yet.
    const batches = relayBatches(cases, (c) => c.records.map((r) => r.callId));
    crm.failRate = faults.failRate;
    crm.lostRate = faults.lostRate;
    const seen = new Set<string>();
    let withheld = 0;
    let strangers = 0;
    for (const batch of batches) {
      // Lost answers at random may spare a short run: two creates in each batch lose theirs.
      if (faults.lostRate)
        for (let i = 0; i < 2; i++)
          crm.faults.push({ match: 'POST /phone_calls', fault: { lose: true } });
      const relay = await open(crm, { catchAll, sources: casesSources(batch) });
      for (const c of batch)
        for (const req of c.flow.requests) {
          const res = await sendFlowRequest(relay.port, c.adapter, req);
          if (res) expect(res.status).toBe(200);
        }
      await settleDeliveries(relay, 60_000);
      for (const c of batch)
        for (const r of c.records) {
          const where = `${c.adapter}/${c.flow.name} ${r.callId}`;
          seen.add(`${r.source}/${r.callId}`);
          const made = callsOf(crm, r.source, r.callId);
          expect(made, where).toHaveLength(1);
          const call = made[0]!;
          expect(call.call_direction, where).toBe(r.direction === 'inbound');
          const who = r.externalE164 ? contacts.get(r.externalE164) : undefined;
          expect(call.targetable_id, where).toBe(who ?? catchAll);
          if (!r.externalNumber) withheld++;
          if (!who && r.externalE164) strangers++;
          const note = crm.notes.get(call.note_id)!.description;
          if (r.externalNumber) expect(note, where).toContain(`Number: ${r.externalNumber}`);
          else expect(note, where).not.toContain('Number:');
          // The documented fields only (H.4): user_id stays off unless vars.sendOwner.
          expect(Object.keys(call.sent).sort(), where).toEqual([
            'call_direction',
            'note',
            'targetable',
            'targetable_type',
          ]);
        }
      expect(crm.calls.size).toBe(batch.reduce((n, c) => n + c.records.length, 0));
      expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
      await closeRelay(relay);
      // The next batch repeats call ids (hence its own relay): its finds must not see these notes.
      crm.calls.clear();
      crm.notes.clear();
    }
    expect(seen.size).toBeGreaterThan(20);
    expect(withheld).toBeGreaterThan(0);
    expect(strangers).toBeGreaterThan(0);
    // Contacts came from /lookup, never a look-alike; nothing at the relay's pace was refused.
    expect(crm.log.filter((l) => l.path.endsWith('/lookup')).length).toBeGreaterThan(0);
    expect(crm.log.filter((l) => l.status === 429)).toEqual([]);
    return crm;
  }

  it('every sample flow: one phone call per call, on the right contact, direction and marker', async () => {
    const crm = await everyFlow({ failRate: 0, lostRate: 0 });
    expect(crm.log.filter((l) => l.path.includes('/contacts/'))).toEqual([]);
  }, 60_000);

  it('with 20% failures and 10% lost answers: still one per call, nothing dead, lost creates found', async () => {
    const crm = await everyFlow({ failRate: 0.2, lostRate: 0.1 });
    // Lost creates were looked for among the contact's notes, and found (one call each above).
    const finds = crm.requests.filter((r) => /\/contacts\/\d+$/.test(r.path));
    expect(finds.length).toBeGreaterThan(0);
    expect(finds.every((r) => r.query.include === 'notes')).toBe(true);
    expect(crm.log.some((l) => l.status === 500 || l.status === 503)).toBe(true);
  }, 120_000);

  it('the hourly budget: no 429, and the rest goes once the window frees', async () => {
    const CALLS = 10;
    const ALLOWANCE = 8;
    const WINDOW_SEC = 2;
    const crm = await fake();
    // The fake's hour passes in a little less than the relay's window (1.9 s for 2 s): the relay
    // counts a request when it sends it, the fake when it arrives a moment later.
    const t0 = Date.now();
    crm.now = () => t0 + (Date.now() - t0) * (3600 / (WINDOW_SEC * 0.95));
    crm.hourlyLimit = ALLOWANCE;
    const contact = crm.seedNumber('+420774852629');
    const relay = await open(crm, { budget: { requests: ALLOWANCE, perSeconds: WINDOW_SEC } });
    for (let i = 0; i < CALLS; i++) {
      const res = await sendFlowRequest(relay.port, '3cx', {
        method: 'POST',
        contentType: 'application/json',
        body: threecx(`261207100000_${i}`),
      });
      expect(res!.status).toBe(200);
    }
    await settleDeliveries(relay, 20_000);
    for (let i = 0; i < CALLS; i++) {
      const made = callsOf(crm, '3cx', `261207100000_${i}`);
      expect(made, `call ${i}`).toHaveLength(1);
      expect(made[0]!.targetable_id).toBe(contact);
    }
    // More requests than one window allows were sent, none refused: the relay waited for it.
    expect(crm.log.length).toBeGreaterThan(ALLOWANCE);
    expect(crm.log.filter((l) => l.status === 429)).toEqual([]);
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
  }, 30_000);

  it('a relay killed while its creates are in flight, restarted on its store: one per call', async () => {
    const CALLS = 12;
    const crm = await fake();
    crm.seedNumber('+420774852629');
    const port = await freePort();
    const file = writeConfig(crm, { port });
    // Every request takes a while, so that creates are in the fake's hands when the relay dies.
    crm.delayMs = 200;
    // Killed with creates in the fake's hands: they are made, their answers never arrive.
    const posted = () =>
      crm.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/phone_calls')).length;
    await killMidDelivery({
      config: file,
      port,
      calls: CALLS,
      children: { push: (c: ChildProcess) => cleanup.push(() => void c.kill('SIGKILL')) },
      body: (i) => threecx(`261207120000_${i}`),
      killWhen: () => posted() >= 3,
    });
    expect(posted()).toBeGreaterThanOrEqual(3);
    crm.delayMs = 0;
    expect(crm.calls.size).toBeLessThan(CALLS);
    // The creates in the fake's hands finish and their notes show before the relay comes back:
    // find.lagSec here (0.2 s) is shorter than the fake's delay and notes lag together, where the
    // shipped 30 s is not; a find before the note shows would make the call again (crm-notes H.5).
    await waitUntil(() => crm.calls.size === posted());
    await waitUntil(() =>
      [...crm.notes.values()].every((n) => n.createdAt <= Date.now() - crm.notesLagMs),
    );

    const relay = await open(crm, { file });
    await settleDeliveries(relay, 30_000);
    for (let i = 0; i < CALLS; i++)
      expect(callsOf(crm, '3cx', `261207120000_${i}`), `call ${i}`).toHaveLength(1);
    expect(crm.calls.size).toBe(CALLS);
    // Each call's delivery holds its own note's id: found by its marker, not another's note.
    const rows = await relay.store.listDeliveries({ limit: 50 });
    expect(rows).toHaveLength(CALLS);
    for (const d of rows)
      expect(d.remote.id, d.callId).toBe(String(callsOf(crm, '3cx', d.callId)[0]!.note_id));
    expect(crm.requests.some((r) => /\/contacts\/\d+$/.test(r.path))).toBe(true);
  }, 60_000);

  it('check --online: the key works, a refused one is named without the secret', async () => {
    const crm = await fake();
    // Not spawnSync: the fake answers from this process's event loop.
    const check = (file: string) =>
      new Promise<{ status: number; out: string }>((resolve) =>
        execFile(
          process.execPath,
          [MAIN, 'check', '--online', '--config', file],
          { encoding: 'utf8' },
          (err, stdout, stderr) =>
            resolve({
              status: err ? ((err as { code?: number }).code ?? 1) : 0,
              out: `${stdout}${stderr}`,
            }),
        ),
      );
    const good = await check(writeConfig(crm));
    expect(good.out).toContain(
      'ok  freshsales (rest): credentials accepted (Freshsales answered 200)',
    );
    expect(good.status).toBe(0);
    const wrong = 'fs-wrong-key-9876543210';
    const file = writeConfig(crm);
    writeFileSync(file, readFileSync(file, 'utf8').replace(KEY, wrong));
    const bad = await check(file);
    expect(bad.status).toBe(1);
    expect(bad.out).toMatch(/^freshsales \(rest\): checking the credentials: 401 /m);
    expect(bad.out).not.toContain(wrong);
  }, 30_000);

  it('createContacts: a caller no contact has gets one contact, by newContact, for all its calls', async () => {
    const crm = await fake();
    const relay = await open(crm, { createContacts: true });
    for (let i = 0; i < 3; i++)
      await sendFlowRequest(relay.port, '3cx', {
        method: 'POST',
        contentType: 'application/json',
        body: threecx(`261207130000_${i}`, '420608123456'),
      });
    await settleDeliveries(relay);
    const made = [...crm.contacts.values()];
    expect(made.map((c) => c.fields)).toEqual([
      expect.objectContaining({ last_name: '+420608123456', mobile_number: '+420608123456' }),
    ]);
    for (let i = 0; i < 3; i++)
      expect(callsOf(crm, '3cx', `261207130000_${i}`)[0]?.targetable_id, `call ${i}`).toBe(
        made[0]!.id,
      );
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
  });

  it('without a catch-all and createContacts off, a withheld number is skipped with its reason', async () => {
    const crm = await fake();
    const relay = await open(crm);
    const flow = goldenCases().find((c) => c.flow.name === 'twilio-inbound-withheld')!;
    for (const req of flow.flow.requests) await sendFlowRequest(relay.port, flow.adapter, req);
    await settleDeliveries(relay);
    const [d] = await relay.store.listDeliveries({ limit: 5 });
    expect(d!.lastError ?? null).toBeNull();
    expect(d!.state).toBe('done');
    expect(d!.remote.skipped).toBe(SKIP_REASON);
    const attempts = await relay.store.listAttempts({ deliveryId: d!.id, limit: 10 });
    expect(attempts.map((a) => a.error)).toContain(`skipped: ${SKIP_REASON}`);
    expect(crm.calls.size).toBe(0);
    expect(crm.requests.filter((r) => r.method === 'POST')).toEqual([]);
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
  });
});
