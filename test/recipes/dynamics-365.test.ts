// The shipped Dynamics 365 recipe (targets/dynamics-365.yaml) through a real relay into the fake
// Dataverse environment and its Entra token endpoint (test/fakes/dynamics.ts): every sample flow as
// exactly one completed Phone Call with the right direction, status, minutes, number, owner and
// regarding contact (never a look-alike from another country); the same through 20% failures and
// 10% lost answers; a token that expires mid-run; a 429 whose Retry-After is waited out; a relay
// killed while its creates are in flight; a recording that arrives after the call was completed
// (reopened, written, completed again). The shipped recipe is used as it is: no timing setting of
// it needs shortening (find has no lag, and Retry-After comes from the fake); relay.yaml only
// raises the rate limits.

import { parsePhoneNumber } from 'libphonenumber-js';
import { execFile, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { CallRecord } from '../../src/domain/model.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { API, dvError, FakeDynamics, type Row } from '../fakes/dynamics.js';
import { killMidDelivery, restartUntilDone, threecxCall } from './crash.js';
import {
  casesSources,
  freePort,
  goldenCases,
  MAIN,
  recordsOf,
  expectedCallKeys,
  relayBatches,
  sendFlowRequest,
  settleDeliveries,
  tempDir,
  writeRelayYaml,
  type SourceSettingsMap,
} from '../support.js';

const CLIENT = {
  clientId: '6a1d3c5e-7f92-4b08-8e41-2d9c0b7a5f13',
  clientSecret: 'dv~relay-test-secret-0123456789abcdef',
};
const CALLS = `${API}/phonecalls(`;
const create = (r: FakeDynamics['requests'][number]): boolean =>
  r.method === 'PATCH' && r.path.startsWith(CALLS) && r.headers['if-none-match'] === '*';

type Case = ReturnType<typeof goldenCases>[number];

/** A systemuser per agent of the flows, half mapped by email, half by their id as is. */
function orgUsers(dv: FakeDynamics): {
  agents: Record<string, string>;
  owner: Map<string, string>;
} {
  const agents: Record<string, string> = {};
  const owner = new Map<string, string>();
  const exts = ['102', '105', '117', '202', '204', '804', '820', '9289012345', 'alice'];
  for (const [i, ext] of exts.entries()) {
    const email = `agent${ext}@example.com`;
    const id = dv.addUser(email);
    agents[ext] = i % 2 ? id : email;
    owner.set(ext, id);
  }
  return { agents, owner };
}

/**
 * A caller as people type numbers into Dataverse, in the forms the recipe asks for (E.164 in
 * either phone column, or the national number with its trunk 0 where the country dials one), made
 * after a look-alike in another country (same national digits) and before a lead with the same
 * number. Answers the contact the recipe should find.
 */
function seedCaller(dv: FakeDynamics, e164: string, n: number): string {
  const p = parsePhoneNumber(e164);
  const national = String(p.nationalNumber);
  const other = p.countryCallingCode === '44' ? '+49' : '+44';
  dv.addContact(
    { lastname: `Look-alike ${n}`, telephone1: `${other}${national}` },
    Date.now() - 9e8,
  );
  const forms: Row[] = [{ telephone1: e164 }, { mobilephone: e164 }];
  // North America's trunk prefix is 1, not 0: nobody types 0 and a US number.
  if (p.countryCallingCode !== '1') forms.push({ telephone1: `0${national}` });
  const id = dv.addContact(
    { firstname: 'Dana', lastname: e164, ...forms[n % forms.length] },
    Date.now() - 1e6,
  );
  dv.addLead({ lastname: 'Lead', companyname: 'Far', mobilephone: e164 });
  return id;
}

function relayYaml(
  dv: FakeDynamics,
  agents: Record<string, string>,
  o: { port?: number; sources?: SourceSettingsMap } = {},
): string {
  const map = Object.entries(agents)
    .map(([k, v]) => `"${k}": "${v}"`)
    .join(', ');
  return writeRelayYaml(tempDir(), {
    ...(o.port ? { port: o.port } : {}),
    sources: o.sources,
    more:
      `targets:\n  - name: dynamics\n    type: rest\n    recipe: dynamics-365\n` +
      `    vars: { environmentUrl: "${dv.environmentUrl}", tenant: "${dv.tenant}", ` +
      `loginUrl: "${dv.url}", searchLeads: true }\n` +
      `    auth: { clientId: "${CLIENT.clientId}", clientSecret: "${CLIENT.clientSecret}" }\n` +
      `    agents: { ${map} }\n` +
      `    rateLimit: { requests: 400, perSeconds: 1 }\n` +
      `    searchRateLimit: { requests: 400, perSeconds: 1 }\n`,
  });
}

/** The phone calls whose description ends with the call's marker (not a prefix of another's). */
const callsOf = (dv: FakeDynamics, source: string, callId: string): Row[] =>
  [...dv.phonecalls.values()].filter(
    (c) => String(c.description).split('\n').at(-1) === `callrelay ${source}/${callId}`,
  );

/** Every expected call of `c` is one completed phone call with the right fields. */
function expectCalls(
  dv: FakeDynamics,
  c: Case,
  records: CallRecord[],
  owner: Map<string, string>,
  callers: Map<string, string>,
): void {
  for (const e of c.flow.expect!.calls) {
    const where = `${c.adapter}/${String(e.callId)}`;
    const made = callsOf(dv, c.adapter, String(e.callId));
    expect(made, where).toHaveLength(1);
    const pc = made[0]!;
    const rec = records.find((r) => r.callId === e.callId)!;
    const out = e.direction === 'outbound';
    expect(pc, where).toMatchObject({ directioncode: out, statecode: 1, statuscode: out ? 2 : 4 });
    const talk = e.outcome === 'answered' ? (e.talkSec ?? e.durationSec) : 0;
    if (typeof talk === 'number')
      expect(pc.actualdurationminutes, where).toBe(Math.ceil(talk / 60));
    expect(pc.phonenumber ?? '', where).toBe(rec.externalE164 ?? rec.externalNumber ?? '');
    expect(String(pc.description).length).toBeLessThanOrEqual(2000);
    // Unmapped, unknown or disabled: no owner sent (Dataverse makes the application user it).
    const agent = rec.agent;
    expect(pc._ownerid_value, where).toBe(agent && owner.has(agent) ? owner.get(agent) : undefined);
    const who = rec.externalE164 ? callers.get(rec.externalE164) : undefined;
    expect(pc._regardingobjectid_value, where).toBe(who);
    if (who)
      expect(pc.parties, where).toContainEqual({
        set: 'contacts',
        id: who,
        participationtypemask: out ? 2 : 1,
      });
  }
}

describe('Dynamics 365 recipe through a relay into the fake environment', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  /** A fake environment and a relay into it, its sources given `sources`. */
  async function open(sources?: SourceSettingsMap): Promise<{
    dv: FakeDynamics;
    relay: Relay;
    owner: Map<string, string>;
    seed: (records: CallRecord[]) => Map<string, string>;
  }> {
    const dv = await new FakeDynamics(CLIENT).start();
    cleanup.push(() => dv.close());
    const { agents, owner } = orgUsers(dv);
    const relay = await startRelay(loadConfig(relayYaml(dv, agents, { sources }), {}), undefined, {
      delivery: { pollMs: 20, backoff: { baseMs: 50, maxMs: 400 } },
    });
    cleanup.push(() => relay.close());
    const callers = new Map<string, string>();
    const seed = (records: CallRecord[]) => {
      for (const r of records)
        if (r.externalE164 && !callers.has(r.externalE164))
          callers.set(r.externalE164, seedCaller(dv, r.externalE164, callers.size));
      return callers;
    };
    return { dv, relay, owner, seed };
  }

  async function play(relay: Relay, c: Case, requests = c.flow.requests): Promise<void> {
    for (const r of requests) {
      const res = await sendFlowRequest(relay.port, c.adapter, r);
      if (res) expect(res.status).toBe(200);
    }
  }

  const byName = (n: string): Case => goldenCases().find((c) => c.flow.name === n)!;

  // The sample flows in as few relays as they fit: no call twice, source settings that agree.
  const groups = relayBatches(goldenCases(), expectedCallKeys);
  it.each(groups.map((g, i) => [i + 1, groups.length, g.length, g] as const))(
    'sample flows, relay %i of %i (%i flows): one completed phone call per call, with direction, status, minutes, number, owner and contact',
    async (_i, _n, _len, cases) => {
      const { dv, relay, owner, seed } = await open(casesSources(cases));
      const all = await Promise.all(cases.map(async (c) => ({ c, records: await recordsOf(c) })));
      const callers = seed(all.flatMap((x) => x.records));
      for (const c of cases) await play(relay, c);
      await settleDeliveries(relay, 20_000);
      for (const { c, records } of all) expectCalls(dv, c, records, owner, callers);
      const calls = cases.reduce((n, c) => n + c.flow.expect!.calls.length, 0);
      expect(dv.phonecalls.size).toBe(calls);
      expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
      expect(dv.tokenRequests.map((t) => t.status)).toEqual([200]);
    },
  );

  it('keeps exactly one phone call per call through 20% failures and 10% lost answers', async () => {
    // The flows that fit one relay: no call twice, source settings that agree.
    const [fit] = relayBatches(goldenCases(), expectedCallKeys);
    const cases = await Promise.all(fit!.map(async (c) => ({ c, records: await recordsOf(c) })));
    const { dv, relay, owner, seed } = await open(casesSources(cases.map((x) => x.c)));
    const callers = seed(cases.flatMap((x) => x.records));
    // The first write's answer lost for certain (a create, so `find` runs), then chaos.
    dv.faults.push({ match: `PATCH ${CALLS}`, fault: { lose: true } });
    dv.failRate = 0.2;
    dv.lostRate = 0.1;
    for (const { c } of cases) await play(relay, c);
    await settleDeliveries(relay, 60_000);
    dv.failRate = 0;
    dv.lostRate = 0;
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
    for (const { c, records } of cases) expectCalls(dv, c, records, owner, callers);
    expect(dv.phonecalls.size).toBe(fit!.flatMap(expectedCallKeys).length);
    expect(dv.faults).toEqual([]);
    const finds = dv.requests.filter((r) => r.method === 'GET' && r.path.startsWith(CALLS));
    expect(finds.length).toBeGreaterThanOrEqual(1);
    expect(dv.log.filter((l) => l.status >= 500).length).toBeGreaterThan(3);
  }, 60_000);

  it('renews a token that expires mid-run once, and the delivery goes on', async () => {
    const { dv, relay, owner, seed } = await open();
    const [first, second] = ['3cx-v1-incoming-answered', '3cx-v2-outgoing-missed'].map(byName);
    const r1 = await recordsOf(first!);
    const r2 = await recordsOf(second!);
    const callers = seed([...r1, ...r2]);
    await play(relay, first!);
    await settleDeliveries(relay);
    dv.expireTokens();
    await play(relay, second!);
    await settleDeliveries(relay);
    expectCalls(dv, first!, r1, owner, callers);
    expectCalls(dv, second!, r2, owner, callers);
    expect(dv.tokenRequests.map((t) => t.status)).toEqual([200, 200]);
    expect(dv.log.filter((l) => l.status === 401)).toHaveLength(1);
    // The secret went in the token request's form only.
    expect(dv.tokenRequests[1]!.form.scope).toBe(`${dv.environmentUrl}/.default`);
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
  });

  it("waits out a 429's Retry-After before it writes again, then succeeds", async () => {
    const { dv, relay, owner, seed } = await open();
    const c = byName('3cx-v2-outgoing-missed');
    const records = await recordsOf(c);
    const callers = seed(records);
    const retryAfterSec = 1;
    dv.faults.push({
      match: `PATCH ${CALLS}`,
      fault: {
        status: 429,
        body: dvError('0x80072322', 'Number of requests exceeded the limit of 6000.'),
        headers: { 'Retry-After': String(retryAfterSec) },
      },
    });
    await play(relay, c);
    await settleDeliveries(relay, 15_000);
    expectCalls(dv, c, records, owner, callers);
    expect(dv.tooManyRequests).toBe(1);
    const writes = dv.requests.filter((r) => r.method === 'PATCH' && r.path.startsWith(CALLS));
    // The refused create, then the create again no sooner than Retry-After, then the complete.
    expect(writes.map(create)).toEqual([true, true, false]);
    expect(writes[1]!.at - writes[0]!.at).toBeGreaterThanOrEqual(retryAfterSec * 1000);
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
  });

  it('reopens, writes and completes again the call a later recording belongs to', async () => {
    const { dv, relay, owner, seed } = await open();
    const c = byName('twilio-recording-after-end');
    const records = await recordsOf(c);
    const callers = seed(records);
    const recording = String((c.flow.expect!.calls[0]!.recordings as string[])[0]);
    await play(relay, c, c.flow.requests.slice(0, -1));
    await settleDeliveries(relay);
    const [before] = callsOf(dv, c.adapter, String(c.flow.expect!.calls[0]!.callId));
    expect(before).toMatchObject({ statecode: 1, statuscode: 4 });
    expect(String(before!.description)).not.toContain(recording);
    const id = before!.activityid as string;
    const sent = dv.requests.length;

    await play(relay, c, c.flow.requests.slice(-1));
    await settleDeliveries(relay);
    expect(dv.phonecalls.size).toBe(1);
    expectCalls(dv, c, records, owner, callers);
    expect(String(dv.phonecalls.get(id)!.description)).toContain(recording);
    // Reopened alone, written, completed again: each If-Match (never a second create).
    const later = dv.requests.slice(sent).filter((r) => r.method === 'PATCH');
    expect(later.map((r) => [r.path, r.headers['if-match']])).toEqual(
      Array(3).fill([`${CALLS}${id})`, '*']),
    );
    expect(later[0]!.body).toEqual({ statecode: 0, statuscode: 1 });
    expect(later[1]!.body).toMatchObject({ description: expect.stringContaining(recording) });
    expect(later[2]!.body).toEqual({ statecode: 1, statuscode: 4 });
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
  });
});

describe('Dynamics 365 recipe: crash mid-delivery', () => {
  const children: ChildProcess[] = [];
  let dv: FakeDynamics | undefined;
  afterEach(async () => {
    children.forEach((c) => c.kill('SIGKILL'));
    await dv?.close();
  });

  it('a relay killed while creating phone calls, restarted on its store: one per call, all completed', async () => {
    const N = 20;
    dv = await new FakeDynamics(CLIENT).start();
    const env = dv;
    const { agents } = orgUsers(env);
    // Slow enough that creates are always in the environment's hands when the relay is killed.
    env.delayMs = 150;
    const port = await freePort();
    const config = relayYaml(env, agents, { port });
    const creates = () => env.requests.filter(create);
    // Killed once some calls are made and a create is in the environment's hands, unanswered.
    const held = () => Date.now() - (creates().at(-1)?.at ?? 0) < env.delayMs / 2;
    await killMidDelivery({
      config,
      port,
      calls: N,
      children,
      body: (i) => threecxCall(`261201100000_${i}`),
      killWhen: () => creates().length >= 6 && held(),
    });
    expect(creates().length).toBeGreaterThanOrEqual(6);
    const afterKill = creates().length;
    expect(afterKill).toBeLessThan(N); // killed mid-way

    env.delayMs = 0;
    // Until the restarted relay says every delivery is done (its admin API, on the same store).
    await restartUntilDone({ config, port, calls: N, children });
    const calls = [...env.phonecalls.values()];
    expect(calls).toHaveLength(N);
    const markers = calls.map((c) => String(c.description).split('\n').at(-1));
    expect(new Set(markers).size).toBe(N);
    for (const c of calls)
      expect(c).toMatchObject({ statecode: 1, statuscode: 4, actualdurationminutes: 1 });
    // The create in flight at the kill was made but never answered: found (or refused as there
    // already), not made twice.
    const again = env.requests.filter((r) => r.method === 'GET' && r.path.startsWith(CALLS)).length;
    expect(again + env.log.filter((l) => l.status === 412).length).toBeGreaterThanOrEqual(1);
  }, 60_000);
});

describe('Dynamics 365 recipe: check --online', () => {
  const fakes: FakeDynamics[] = [];
  afterEach(async () => {
    for (const f of fakes.splice(0)) await f.close();
  });

  // Not spawnSync: the fake answers from this process's event loop.
  const check = (config: string): Promise<{ status: number; out: string }> =>
    new Promise((resolve) => {
      execFile(
        process.execPath,
        [MAIN, 'check', '--online', '--config', config],
        { encoding: 'utf8' },
        (err, stdout, stderr) =>
          resolve({
            status: err ? ((err as { code?: number }).code ?? 1) : 0,
            out: `${stdout}${stderr}`,
          }),
      );
    });

  it("asks WhoAmI with a token, names unknown agents; a refused secret is named by Entra's reason, never shown", async () => {
    const good = await new FakeDynamics(CLIENT).start();
    // An environment whose app has another secret than relay.yaml's.
    const other = await new FakeDynamics({ ...CLIENT, clientSecret: 'dv~another-secret' }).start();
    fakes.push(good, other);
    const alice = good.addUser('alice@example.com');
    // Both at once: each is a process start.
    const [works, refused] = await Promise.all([
      check(
        relayYaml(good, { '101': 'alice@example.com', '102': alice, '103': 'nobody@example.com' }),
      ),
      check(relayYaml(other, {})),
    ]);
    expect(works.out).toContain(
      'ok  dynamics (rest): credentials accepted (Microsoft Dynamics 365 answered 200)',
    );
    expect(works.out).toContain(
      'agent 103 -> nobody@example.com: no Microsoft Dynamics 365 user has this email',
    );
    expect(works.out).not.toMatch(/agent 10[12]/);
    expect(good.requests.filter((q) => q.path === `${API}/WhoAmI`)).toHaveLength(1);
    expect(good.tokenRequests.map((t) => t.status)).toEqual([200]);

    expect(refused.status).toBe(1);
    expect(refused.out).toMatch(
      /dynamics \(rest\): fetching an access token .*401 invalid_client \(AADSTS7000215: Invalid client secret provided/,
    );
    expect(refused.out).toContain('check clientId and clientSecret in targets[dynamics].auth');
    expect(refused.out).not.toContain(CLIENT.clientSecret);
    expect(other.requests).toEqual([]);
  });
});
