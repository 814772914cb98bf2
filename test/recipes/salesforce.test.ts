// The shipped Salesforce recipe (targets/salesforce.yaml) through a real relay into the fake org
// (test/fakes/salesforce.ts), OAuth client credentials included: every sample flow as exactly one
// Task with the right call fields, owner and contact (look-alikes from other countries left
// alone); the same through 20% failures and 10% lost answers; a session that ends mid-run; and a
// relay process killed while creates are in flight.

import { parsePhoneNumber } from 'libphonenumber-js';
import type { ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { CallRecord } from '../../src/domain/model.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { FakeSalesforce, type SfRecord } from '../fakes/salesforce.js';
import { killMidDelivery, restartUntilDone, threecxCall } from './crash.js';
import {
  casesSources,
  freePort,
  goldenCases,
  recordsOf,
  expectedCallKeys,
  relayBatches,
  sendFlowRequest,
  settleDeliveries,
  tempDir,
  writeRelayYaml,
  type SourceSettingsMap,
} from '../support.js';

const CLIENT = { id: '3MVG9-callrelay-test', secret: 'sf-client-secret-0123456789' };
const TASK = 'POST /services/data/v62.0/sobjects/Task';
const DISPOSITION: Record<string, string> = {
  answered: 'Connected',
  missed: 'No answer',
  busy: 'Busy',
  failed: 'Failed',
};

type Case = ReturnType<typeof goldenCases>[number];

/** The fake org with a user per agent of the flows, half mapped by email, half by user id. */
function orgUsers(sf: FakeSalesforce): {
  agents: Record<string, string>;
  owner: Map<string, string>;
} {
  const agents: Record<string, string> = {};
  const owner = new Map<string, string>();
  const exts = ['102', '105', '117', '202', '204', '804', '820', '9289012345'];
  for (const [i, ext] of exts.entries()) {
    const email = `agent${ext}@example.com`;
    const id = sf.addUser({ Email: email, IsActive: true });
    agents[ext] = i % 2 ? id : email;
    owner.set(ext, id);
  }
  // Someone the org does not know: those calls go without an owner.
  return { agents, owner };
}

/** The caller, and look-alikes of other countries made earlier that SOSL also finds. */
function seedCaller(sf: FakeSalesforce, e164: string, n: number): string {
  const digits = e164.slice(1);
  const { countryCallingCode: cc, nationalNumber: national } = parsePhoneNumber(e164);
  // Other countries than the caller's, whichever that is.
  const [a, b] = [cc === '1' ? '7' : '1', cc === '44' ? '49' : '44'];
  sf.addContact(
    { LastName: `Look-alike A${n}`, Phone: `+${a} ${digits}` },
    '2019-01-01T00:00:00.000Z',
  );
  sf.addLead(
    { LastName: `Look-alike B${n}`, MobilePhone: `+${b} ${national}` },
    '2019-01-02T00:00:00.000Z',
  );
  // A Lead or a Contact, by the number (each flow's relay has its own org).
  return Number(e164.at(-1)) % 2
    ? sf.addLead({ LastName: `Caller ${n}`, MobilePhone: e164 }, '2022-01-01T00:00:00.000Z')
    : sf.addContact({ LastName: `Caller ${n}`, Phone: e164 }, '2022-01-01T00:00:00.000Z');
}

function relayYaml(
  sf: FakeSalesforce,
  agents: Record<string, string>,
  port?: number,
  sources?: SourceSettingsMap,
): string {
  const map = Object.entries(agents)
    .map(([k, v]) => `"${k}": "${v}"`)
    .join(', ');
  return writeRelayYaml(tempDir(), {
    ...(port ? { port } : {}),
    sources,
    more:
      `targets:\n  - name: salesforce\n    type: rest\n    recipe: salesforce\n` +
      `    vars: { domain: acme, loginUrl: "${sf.url}" }\n` +
      `    auth: { clientId: "${CLIENT.id}", clientSecret: "${CLIENT.secret}" }\n` +
      `    agents: { ${map} }\n` +
      `    rateLimit: { requests: 400, perSeconds: 1 }\n` +
      `    searchRateLimit: { requests: 400, perSeconds: 1 }\n`,
  });
}

const tasksOf = (sf: FakeSalesforce, key: string): SfRecord[] =>
  sf.tasks.filter((t) => t.CallObject === key);

/** Every expected call of `c` is one Task with the right fields, owner and contact. */
function expectTasks(
  sf: FakeSalesforce,
  c: Case,
  records: CallRecord[],
  owner: Map<string, string>,
  callers: Map<string, string>,
): void {
  for (const e of c.flow.expect!.calls) {
    const key = `callrelay:${c.adapter}:${String(e.callId)}`;
    const made = tasksOf(sf, key);
    expect(made, key).toHaveLength(1);
    const t = made[0]!;
    const rec = records.find((r) => r.callId === e.callId)!;
    expect(t).toMatchObject({
      TaskSubtype: 'Call',
      Status: 'Completed',
      CallType: e.direction === 'outbound' ? 'Outbound' : 'Inbound',
      CallDisposition: DISPOSITION[e.outcome as string],
    });
    const talk = e.outcome === 'answered' ? (e.talkSec ?? e.durationSec) : 0;
    if (typeof talk === 'number') expect(t.CallDurationInSeconds, key).toBe(Math.round(talk));
    // Both numbers: the caller's in the text, and the one the contact was found by.
    // (A withheld number, null, has no line; a case that leaves the number out checks nothing.)
    if (typeof e.externalNumber === 'string')
      expect(t.Description).toContain(`Number: ${e.externalNumber}`);
    else if (e.externalNumber === null) expect(t.Description).not.toContain('Number:');
    // Unmapped or no agent: Salesforce makes the API's run-as user the owner.
    const agent = rec.agent;
    expect(t.OwnerId, key).toBe(agent && owner.has(agent) ? owner.get(agent) : sf.runAsUserId);
    const who = rec.externalE164 ? callers.get(rec.externalE164) : undefined;
    expect(t.WhoId ?? undefined, key).toBe(who);
  }
}

describe('Salesforce recipe through a relay into the fake org', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  /** A fake org and a relay into it, its sources given `sources` (golden flows' `source`). */
  async function open(sources?: SourceSettingsMap): Promise<{
    sf: FakeSalesforce;
    relay: Relay;
    owner: Map<string, string>;
    seed: (records: CallRecord[]) => Map<string, string>;
  }> {
    const sf = await new FakeSalesforce(CLIENT).start();
    cleanup.push(() => sf.close());
    const { agents, owner } = orgUsers(sf);
    const relay = await startRelay(
      loadConfig(relayYaml(sf, agents, undefined, sources), {}),
      undefined,
      {
        delivery: { pollMs: 20, backoff: { baseMs: 50, maxMs: 400 } },
      },
    );
    cleanup.push(() => relay.close());
    const callers = new Map<string, string>();
    const seed = (records: CallRecord[]) => {
      for (const r of records)
        if (r.externalE164 && !callers.has(r.externalE164))
          callers.set(r.externalE164, seedCaller(sf, r.externalE164, callers.size));
      return callers;
    };
    return { sf, relay, owner, seed };
  }

  async function play(relay: Relay, c: Case): Promise<void> {
    for (const r of c.flow.requests) {
      const res = await sendFlowRequest(relay.port, c.adapter, r);
      if (res) expect(res.status).toBe(200);
    }
  }

  it.each(goldenCases().map((c) => [`${c.adapter}/${c.flow.name}`, c] as const))(
    '%s: one Task per call with direction, outcome, talk time, numbers, owner and contact',
    async (_n, c) => {
      const { sf, relay, owner, seed } = await open({ [c.adapter]: c.flow.source });
      const records = await recordsOf(c);
      const callers = seed(records);
      await play(relay, c);
      await settleDeliveries(relay);
      expect(sf.tasks).toHaveLength(c.flow.expect!.calls.length);
      expectTasks(sf, c, records, owner, callers);
      expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
      expect(sf.tokenRequests.map((t) => t.status)).toEqual([200]);
    },
  );

  it('keeps exactly one Task per call through 20% failures and 10% lost answers', async () => {
    // The flows that fit one relay: no call twice, source settings that agree.
    const [fit] = relayBatches(goldenCases(), expectedCallKeys);
    const cases = await Promise.all(fit!.map(async (c) => ({ c, records: await recordsOf(c) })));
    const { sf, relay, owner, seed } = await open(casesSources(cases.map((x) => x.c)));
    const callers = seed(cases.flatMap((x) => x.records));
    // The first create's answer lost for certain (so `find` runs), then chaos.
    sf.faults.push({ match: TASK, fault: { lostAnswer: true } });
    sf.failRate = 0.2;
    sf.lostRate = 0.1;
    for (const { c } of cases) await play(relay, c);
    await settleDeliveries(relay, 60_000);
    sf.failRate = 0;
    sf.lostRate = 0;
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
    for (const { c, records } of cases) expectTasks(sf, c, records, owner, callers);
    expect(sf.tasks).toHaveLength(fit!.flatMap(expectedCallKeys).length);
    expect(sf.faults).toEqual([]);
    const finds = sf.requests.filter((r) => /FROM Task WHERE/.test(r.query.q ?? ''));
    expect(finds.length).toBeGreaterThanOrEqual(1);
    expect(sf.requests.filter((r) => r.status === 503).length).toBeGreaterThan(3);
  });

  it('renews a session that ends mid-run once, and the delivery goes on', async () => {
    const { sf, relay, owner, seed } = await open();
    const [first, second] = ['3cx-v1-incoming-answered', '3cx-v2-outgoing-missed'].map((n) =>
      goldenCases().find((c) => c.flow.name === n)!,
    );
    const r1 = await recordsOf(first!);
    const r2 = await recordsOf(second!);
    const callers = seed([...r1, ...r2]);
    await play(relay, first!);
    await settleDeliveries(relay);
    sf.expireSessions();
    await play(relay, second!);
    await settleDeliveries(relay);
    expectTasks(sf, first!, r1, owner, callers);
    expectTasks(sf, second!, r2, owner, callers);
    expect(sf.tokenRequests.map((t) => t.status)).toEqual([200, 200]);
    expect(sf.requests.filter((r) => r.status === 401)).toHaveLength(1);
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
  });
});

describe('Salesforce recipe: crash mid-delivery', () => {
  const children: ChildProcess[] = [];
  let sf: FakeSalesforce | undefined;
  afterEach(async () => {
    children.forEach((c) => c.kill('SIGKILL'));
    await sf?.close();
  });

  it('a relay killed while creating Tasks, restarted on its store: one Task per call', async () => {
    const CALLS = 20;
    sf = await new FakeSalesforce(CLIENT).start();
    const org = sf;
    const { agents } = orgUsers(org);
    // Slow enough that creates are always in the fake's hands when the relay is killed.
    org.delayMs = 150;
    const port = await freePort();
    const config = relayYaml(org, agents, port);
    const creates = (): number =>
      org.requests.filter((r) => `${r.method} ${r.path}` === TASK).length;
    // Killed once some Tasks are made and at least one create is in the org's hands, unanswered.
    await killMidDelivery({
      config,
      port,
      calls: CALLS,
      children,
      body: (i) => threecxCall(`261201100000_${i}`),
      killWhen: () => creates() >= 6 && org.heldCreates > 0,
    });
    expect(creates()).toBeGreaterThanOrEqual(6);
    expect(org.tasks.length).toBeLessThan(CALLS); // killed mid-way

    org.delayMs = 0;
    // Until the restarted relay says every delivery is done (its admin API, on the same store).
    await restartUntilDone({ config, port, calls: CALLS, children });
    const keys = org.tasks.map((t) => t.CallObject as string);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.length).toBe(CALLS);
    for (const t of org.tasks) expect(t.CallDurationInSeconds).toBe(8);
    // The creates in flight at the kill were made but never answered: found, not repeated.
    const finds = org.requests.filter((r) => /FROM Task WHERE/.test(r.query.q ?? ''));
    expect(finds.length).toBeGreaterThanOrEqual(1);
  }, 60_000);
});
