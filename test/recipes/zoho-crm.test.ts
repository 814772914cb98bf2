// The shipped Zoho CRM recipe (targets/zoho-crm.yaml) through a real relay into the Zoho fake
// (test/fakes/zoho.ts), OAuth included: every sample flow as exactly one Calls record with the
// right type, talk time, numbers, owner and contact (never a look-alike from another country);
// the same with failures and lost answers (lost creates found again by their marker); a token
// that expires mid-run; a token endpoint that says no with HTTP 200; a relay killed while its
// creates are in flight. The recipe is copied beside relay.yaml with a short find.lagSec (the
// shipped 60 s would make each lost create wait a minute); nothing else is changed.

import { parsePhoneNumber } from 'libphonenumber-js';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { CallRecord } from '../../src/domain/model.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { SHIPPED_RECIPES } from '../../src/targets/rest/recipe.js';
import { FakeZoho, type ZohoRecord } from '../fakes/zoho.js';
import { killMidDelivery, threecxCall } from './crash.js';
import {
  casesSources,
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

const CLIENT = {
  clientId: '1000.RELAYTESTCLIENT0123',
  clientSecret: 'zoho-test-secret-0123456789abcdef',
  refreshToken: '1000.zoho-test-refresh.0123456789abcdef',
};
const RECIPE = readFileSync(join(SHIPPED_RECIPES, 'zoho-crm.yaml'), 'utf8');

/** The Calls record whose Description ends with the call's marker (not a prefix of another's). */
const callsOf = (crm: FakeZoho, source: string, callId: string): ZohoRecord[] =>
  [...crm.calls.values()].filter(
    (c) => String(c.fields.Description).split('\n').at(-1) === `callrelay ${source}/${callId}`,
  );

const mmss = (s: number): string =>
  `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;

/** The flows' numbers as Zoho users type them: spaced, with a look-alike in another country. */
function seed(crm: FakeZoho, records: CallRecord[]): Map<string, string> {
  const contacts = new Map<string, string>();
  for (const r of records) {
    const e164 = r.externalE164;
    if (!e164 || contacts.has(e164)) continue;
    const parsed = parsePhoneNumber(e164);
    const cc = `+${parsed.countryCallingCode}`;
    const national = String(parsed.nationalNumber);
    // Made first, so the shared-number rule would pick it if the digits were not checked.
    const other = cc === '+44' ? '+49' : '+44';
    crm.addRecord(
      'Contacts',
      { Last_Name: 'Look-alike', Phone: `${other} ${national}` },
      Date.now() - 9e8,
    );
    crm.addRecord('Leads', { Last_Name: 'Lead', Company: 'Far', Mobile: `${other}${national}` });
    contacts.set(
      e164,
      crm.addRecord('Contacts', {
        First_Name: 'Dana',
        Last_Name: e164,
        Mobile: `${cc} ${national.slice(0, 3)} ${national.slice(3)}`,
      }),
    );
  }
  return contacts;
}

describe('Zoho CRM recipe through a real relay', () => {
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

  function writeConfig(
    crm: FakeZoho,
    o: {
      agents?: Record<string, string>;
      auth?: Partial<typeof CLIENT>;
      port?: number;
      sources?: SourceSettingsMap;
    } = {},
  ): string {
    const dir = tempDir();
    mkdirSync(join(dir, 'targets'));
    writeFileSync(
      join(dir, 'targets', 'zoho-crm.yaml'),
      RECIPE.replace(/^ {2}lagSec: 60$/m, '  lagSec: 0.2'),
    );
    const auth = { ...CLIENT, ...o.auth };
    const agents = Object.entries(o.agents ?? {})
      .map(([k, v]) => `"${k}": ${v}`)
      .join(', ');
    return writeRelayYaml(dir, {
      ...(o.port ? { port: o.port } : {}),
      sources: o.sources,
      more:
        `targets:\n  - name: zoho\n    type: rest\n    recipe: zoho-crm\n` +
        `    vars: { org: org20071234567, dataCentre: eu, accountsUrl: "${crm.url}" }\n` +
        `    auth: { clientId: "${auth.clientId}", clientSecret: "${auth.clientSecret}", refreshToken: "${auth.refreshToken}" }\n` +
        `    agents: { ${agents} }\n    settleSec: 0\n    retryForHours: 1\n` +
        // The recipe's pace (10 a second) is Zoho's; the fake takes more, and time is short.
        `    rateLimit: { requests: 200, perSeconds: 1 }\n    searchRateLimit: { requests: 200, perSeconds: 1 }\n`,
    });
  }

  async function open(
    crm: FakeZoho,
    o: {
      agents?: Record<string, string>;
      auth?: Partial<typeof CLIENT>;
      file?: string;
      sources?: SourceSettingsMap;
    } = {},
  ): Promise<Relay> {
    const relay = await startRelay(loadConfig(o.file ?? writeConfig(crm, o), {}), undefined, {
      delivery: { pollMs: 20, backoff: { baseMs: 30, maxMs: 200 } },
    });
    cleanup.push(() => closeRelay(relay));
    return relay;
  }

  async function fake(): Promise<FakeZoho> {
    const crm = await new FakeZoho(CLIENT).start();
    cleanup.push(() => crm.close());
    return crm;
  }

  /** Every sample flow into one relay; each call checked in the fake. */
  /** Every sample flow into relays that share the fake; each call checked there. */
  async function everyFlow(faults: { failRate: number; lostRate: number }): Promise<FakeZoho> {
    const crm = await fake();
    const cases = await Promise.all(
      goldenCases().map(async (c) => ({ ...c, records: await recordsOf(c) })),
    );
    const all = cases.flatMap((c) => c.records);
    const contacts = seed(crm, all);
    const agents: Record<string, string> = {};
    const users = new Map<string, string>();
    for (const r of all)
      if (r.agent && !users.has(r.agent)) {
        // An agent may be an extension or already an email (as some providers send it).
        const email = r.agent.includes('@')
          ? r.agent
          : `agent${r.agent.replace(/[^A-Za-z0-9]/g, '')}@example.com`;
        agents[r.agent] = email;
        users.set(r.agent, crm.addUser(email.replace(/\b[a-z]/g, (x) => x.toUpperCase())));
      }
    // Each relay (with its own store) takes flows whose call ids it has not seen yet.
    const batches = relayBatches(cases, (c) => c.records.map((r) => r.callId));
    crm.failRate = faults.failRate;
    crm.lostRate = faults.lostRate;
    const seen = new Set<string>();
    for (const batch of batches) {
      // Lost answers at random may spare a short run: two creates in each batch lose theirs.
      if (faults.lostRate)
        for (let i = 0; i < 2; i++)
          crm.faults.push({ match: 'POST /crm/v8/Calls', fault: { lose: true } });
      const relay = await open(crm, { agents, sources: casesSources(batch) });
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
          const f = made[0]!.fields;
          expect(f.Call_Type, where).toBe(
            r.direction === 'outbound'
              ? 'Outbound'
              : r.outcome === 'answered'
                ? 'Inbound'
                : 'Missed',
          );
          const talk = r.outcome === 'answered' ? (r.talkSec ?? r.durationSec ?? 0) : 0;
          expect(f.Call_Duration, where).toBe(mmss(talk));
          // The start as this relay folded it: where no event dates it, it is when the relay got
          // the first request, which the run in memory (its own receive times) cannot know.
          const [row] = await relay.store.getCalls(r.callId, r.source);
          expect(Date.parse(String(f.Call_Start_Time)), where).toBe(
            Math.floor(Date.parse(row!.record.startedAt) / 1000) * 1000,
          );
          // A withheld number (null) has no line.
          if (r.externalNumber)
            expect(String(f.Description), where).toContain(`Number: ${r.externalNumber}`);
          else expect(String(f.Description), where).not.toContain('Number:');
          if (r.agent)
            expect(String(f.Description), where).toMatch(new RegExp(`Agent: (.*\\()?${r.agent}`));
          expect(f.Owner ?? null, where).toEqual(
            r.agent ? expect.objectContaining({ id: users.get(r.agent) }) : null,
          );
          const who = r.externalE164 ? contacts.get(r.externalE164) : undefined;
          expect(f.Who_Id ?? null, where).toEqual(
            who ? expect.objectContaining({ id: who }) : null,
          );
          expect(f.What_Id ?? null, where).toBeNull();
        }
      expect(crm.calls.size).toBe(batch.reduce((n, c) => n + c.records.length, 0));
      expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
      await closeRelay(relay);
      crm.calls.clear();
    }
    expect(crm.tokenRequests.filter((t) => 'access_token' in t.answer)).toHaveLength(
      batches.length,
    );
    expect(seen.size).toBeGreaterThan(20);
    // Who_Id came from a contact search in both number forms; no 429 for the relay's pace.
    expect(crm.count('GET', '/crm/v8/Contacts/search')).toBeGreaterThan(0);
    expect(crm.tooManyRequests).toBe(0);
    return crm;
  }

  it('every sample flow: one Calls record per call, with type, talk time, owner and contact', async () => {
    await everyFlow({ failRate: 0, lostRate: 0 });
  }, 60_000);

  it('with 20% failures and 10% lost answers: still one per call, nothing dead, lost creates found', async () => {
    const crm = await everyFlow({ failRate: 0.2, lostRate: 0.1 });
    expect(crm.count('GET', '/crm/v8/Calls/search')).toBeGreaterThan(0);
    expect(crm.log.some((l) => l.status === 500)).toBe(true);
  }, 120_000);

  it('a token that expires mid-run is refreshed once and delivery goes on', async () => {
    const crm = await fake();
    const relay = await open(crm);
    const incoming = (i: number) => ({
      method: 'POST',
      contentType: 'application/json',
      body: `{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:08","Id":"261206100000_${i}-1"}`,
    });
    await sendFlowRequest(relay.port, '3cx', incoming(1));
    await settleDeliveries(relay);
    crm.expireTokens();
    await sendFlowRequest(relay.port, '3cx', incoming(2));
    await settleDeliveries(relay);
    expect(callsOf(crm, '3cx', '261206100000_1')).toHaveLength(1);
    expect(callsOf(crm, '3cx', '261206100000_2')).toHaveLength(1);
    expect(crm.log.filter((l) => l.status === 401)).toHaveLength(1);
    expect(crm.tokenRequests.filter((t) => 'access_token' in t.answer)).toHaveLength(2);
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
  });

  it('a token endpoint that refuses with HTTP 200 and no access_token: dead, naming the fix', async () => {
    const crm = await fake();
    const relay = await open(crm, { auth: { refreshToken: '1000.revoked-refresh-token-000' } });
    await sendFlowRequest(relay.port, '3cx', {
      method: 'POST',
      contentType: 'application/json',
      body: '{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:08","Id":"261206110000_1-1"}',
    });
    await settleDeliveries(relay);
    const [dead] = await relay.store.listDeliveries({ state: 'dead', limit: 5 });
    expect(crm.tokenRequests.at(-1)!.answer).toEqual({ error: 'invalid_code' });
    expect(dead?.lastError).toMatch(/invalid_code.*put the new refreshToken in targets\[zoho\]/);
    expect(dead?.lastError).not.toContain('revoked-refresh');
    expect(crm.calls.size).toBe(0);
  });

  it('a relay killed while its creates are in flight, restarted on its store: one per call', async () => {
    const CALLS = 12;
    const crm = await fake();
    const port = await freePort();
    const file = writeConfig(crm, { port });
    // Every request takes a while, so that creates are in the fake's hands when the relay dies.
    crm.delayMs = 200;
    // Killed with creates in the fake's hands: they are made, their answers never arrive.
    const posted = () => crm.requests.filter((r) => r.method === 'POST').length;
    await killMidDelivery({
      config: file,
      port,
      calls: CALLS,
      children: { push: (c: ChildProcess) => cleanup.push(() => void c.kill('SIGKILL')) },
      body: (i) => threecxCall(`261206120000_${i}`, `00:0${i % 10}`),
      killWhen: () => posted() >= 5,
    });
    expect(posted()).toBeGreaterThanOrEqual(5);
    expect(crm.calls.size).toBeLessThan(CALLS);
    crm.delayMs = 0;

    const relay = await open(crm, { file });
    await settleDeliveries(relay, 30_000);
    for (let i = 0; i < CALLS; i++)
      expect(callsOf(crm, '3cx', `261206120000_${i}`), `call ${i}`).toHaveLength(1);
    expect(crm.calls.size).toBe(CALLS);
    expect(crm.count('GET', '/crm/v8/Calls/search')).toBeGreaterThan(0);
  }, 60_000);
});
