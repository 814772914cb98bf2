// The fake Dataverse environment and Entra token endpoint held to the documented behaviours a
// recipe relies on (docs/crm-notes.md G), over real HTTP, so that a recipe test failing on it
// means the recipe is wrong, not the fake.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { API, FakeDynamics, parseFilter } from './dynamics.js';

let dv: FakeDynamics;
beforeEach(async () => {
  dv = await new FakeDynamics().start();
});
afterEach(() => dv.close());

async function token(form: Record<string, string> = {}, url = dv.tokenUrl, type?: string) {
  const body = new URLSearchParams({
    grant_type: 'client_credentials',
    client_id: dv.client.clientId,
    client_secret: dv.client.clientSecret,
    scope: `${dv.environmentUrl}/.default`,
    ...form,
  }).toString();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': type ?? 'application/x-www-form-urlencoded' },
    body,
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

let tok = '';
const login = async (): Promise<void> => {
  tok = (await token()).body.access_token as string;
};

async function api(
  method: string,
  path: string,
  o: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const res = await fetch(`${dv.url}${API}/${path}`, {
    method,
    headers: {
      ...(o.token === '' ? {} : { authorization: `Bearer ${o.token ?? tok}` }),
      ...(o.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...o.headers,
    },
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: (text ? JSON.parse(text) : undefined) as Record<string, any>,
  };
}

const ID = '3f2a6d1c-8b4e-5a7f-9c0d-1e2f3a4b5c6d';
const CALL = {
  subject: 'Inbound call from +4930123456',
  phonenumber: '+4930123456',
  directioncode: false,
  actualstart: '2026-03-11T19:00:00Z',
  actualend: '2026-03-11T19:03:05Z',
  actualdurationminutes: 3,
  description: 'Talk time: 185 s\ncallrelay 3cx/abc_1',
};
const create = (body: unknown = CALL, id = ID) =>
  api('PATCH', `phonecalls(${id})`, { body, headers: { 'If-None-Match': '*' } });

describe('Entra token endpoint (client credentials)', () => {
  it('answers a Bearer token for the form, with a lifetime of 60 to 90 minutes', async () => {
    const lives = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const t = await token();
      expect(t.status).toBe(200);
      expect(t.body.token_type).toBe('Bearer');
      expect(t.body.expires_in).toBeGreaterThanOrEqual(3600);
      expect(t.body.expires_in).toBeLessThanOrEqual(5400);
      lives.add(t.body.expires_in as number);
    }
    expect(lives.size).toBeGreaterThan(1);
  });

  it('refuses a JSON body, another grant, client, secret, tenant or scope', async () => {
    const json = await token({}, dv.tokenUrl, 'application/json');
    expect(json.status).toBe(400);
    expect((await token({ grant_type: 'password' })).body.error).toBe('unsupported_grant_type');
    const client = await token({ client_id: 'someone-else' });
    expect(client.status).toBe(400);
    expect(client.body.error_description).toMatch(/^AADSTS700016/);
    const secret = await token({ client_secret: 'wrong' });
    expect(secret.status).toBe(401);
    expect(secret.body).toMatchObject({ error: 'invalid_client' });
    expect(secret.body.error_description).toMatch(/^AADSTS7000215/);
    expect(secret.body.error_description).not.toContain('wrong');
    const tenant = await token({}, `${dv.url}/other-tenant/oauth2/v2.0/token`);
    expect(tenant.body.error_description).toMatch(/^AADSTS90002/);
    for (const scope of [
      `${dv.environmentUrl}/user_impersonation`,
      'https://x.crm.dynamics.com/.default',
    ]) {
      const s = await token({ scope });
      expect(s.status).toBe(400);
      expect(s.body.error).toBe('invalid_scope');
    }
    expect(dv.tokens.size).toBe(0);
  });
});

describe('Web API auth', () => {
  it('answers 401 with a Bearer challenge to no token, an unknown one and an expired one', async () => {
    await login();
    expect((await api('GET', 'contacts')).status).toBe(200);
    for (const t of ['', 'made-up']) {
      const r = await api('GET', 'contacts', { token: t });
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer authorization_uri=/);
    }
    dv.expireTokens();
    expect((await api('GET', 'contacts')).status).toBe(401);
  });
});

describe('queries: contacts, leads, systemusers', () => {
  beforeEach(login);

  it('answers WhoAmI with the application user', async () => {
    const r = await api('GET', 'WhoAmI');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ UserId: dv.applicationUserId });
    expect((await api('GET', 'WhoAmI', { token: '' })).status).toBe(401);
  });

  it('matches $filter eq on the exact stored text, with or, $select and $top', async () => {
    const a = dv.addContact({ lastname: 'A', telephone1: '+4930123456' });
    const b = dv.addContact({ lastname: 'B', mobilephone: '030123456' });
    dv.addContact({ lastname: 'Spaced', telephone1: '+49 30 123456' });
    dv.addContact({ lastname: 'Other', telephone1: '+4430123456' });
    const q = (f: string, more = '') =>
      api(
        'GET',
        `contacts?$select=contactid,fullname,telephone1&$filter=${encodeURIComponent(f)}${more}`,
      );
    const one = await q("telephone1 eq '+4930123456' or mobilephone eq '+4930123456'");
    expect(one.status).toBe(200);
    expect(one.body['@odata.context']).toContain('$metadata#contacts');
    expect(one.body.value.map((r: any) => r.contactid)).toEqual([a]);
    expect(Object.keys(one.body.value[0]).sort()).toEqual(
      ['@odata.etag', 'contactid', 'fullname', 'telephone1'].sort(),
    );
    const both = await q(
      "telephone1 eq '+4930123456' or mobilephone eq '+4930123456' or " +
        "telephone1 eq '030123456' or mobilephone eq '030123456'",
    );
    expect(both.body.value.map((r: any) => r.contactid).sort()).toEqual([a, b].sort());
    expect(
      (await q("telephone1 eq '+4930123456' or mobilephone eq '030123456'", '&$top=1')).body.value,
    ).toHaveLength(1);
    expect((await q("telephone1 eq '30123456'")).body.value).toEqual([]);
    // An unencoded + is a space by the time it arrives: nothing matches.
    const plus = await api('GET', "contacts?$filter=telephone1 eq '+4930123456'");
    expect(plus.body.value).toEqual([]);
  });

  it('answers 400 for an unknown column in $select or $filter, and for bad syntax', async () => {
    const s = await api('GET', 'contacts?$select=contactid,phone');
    expect(s.status).toBe(400);
    expect(s.body.error.message).toBe(
      "Could not find a property named 'phone' on type 'Microsoft.Dynamics.CRM.contact'.",
    );
    const f = await api('GET', `contacts?$filter=${encodeURIComponent("phone eq '1'")}`);
    expect(f.status).toBe(400);
    expect(
      (await api('GET', `contacts?$filter=${encodeURIComponent("telephone1 = '1'")}`)).status,
    ).toBe(400);
    expect((await api('GET', 'contacts?$top=-1')).status).toBe(400);
  });

  it('finds a user by internalemailaddress with isdisabled', async () => {
    const u = dv.addUser('ada@example.com', 'Ada');
    dv.addUser('bob@example.com', 'Bob', true);
    const r = await api(
      'GET',
      `systemusers?$select=systemuserid,isdisabled&$filter=${encodeURIComponent("internalemailaddress eq 'ada@example.com'")}`,
    );
    expect(r.body.value).toMatchObject([{ systemuserid: u, isdisabled: false }]);
  });

  it('has leads with Sales, and answers 404 for the segment without', async () => {
    const l = dv.addLead({ lastname: 'L', companyname: 'X', mobilephone: '+4930123456' });
    const r = await api(
      'GET',
      `leads?$filter=${encodeURIComponent("mobilephone eq '+4930123456'")}`,
    );
    expect(r.body.value.map((x: any) => x.leadid)).toEqual([l]);
    const bare = await new FakeDynamics({ leads: false }).start();
    try {
      const t = await fetch(bare.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: bare.client.clientId,
          client_secret: bare.client.clientSecret,
          scope: `${bare.environmentUrl}/.default`,
        }),
      });
      const access = ((await t.json()) as { access_token: string }).access_token;
      const res = await fetch(`${bare.url}${API}/leads`, {
        headers: { authorization: `Bearer ${access}` },
      });
      expect(res.status).toBe(404);
      expect(((await res.json()) as any).error.message).toBe(
        "Resource not found for the segment 'leads'.",
      );
      expect(() => bare.addLead({ lastname: 'x' })).toThrow();
    } finally {
      await bare.close();
    }
  });

  it('seeds callers in mixed forms with look-alikes from another country', () => {
    const made = dv.seedCallers(['+4930123456', '+441632960001', '+4930123456'], { spaced: true });
    expect(made.size).toBe(2);
    const stored = [...dv.contacts.values()].map((c) => c.telephone1 ?? c.mobilephone);
    expect(stored).toContain('+4430123456');
    expect(stored).toContain('+491632960001');
    expect(dv.leads.size).toBe(2);
  });
});

describe('phonecalls: PATCH upsert on a chosen id', () => {
  let contact = '';
  let user = '';
  beforeEach(async () => {
    await login();
    contact = dv.addContact({ lastname: 'C', telephone1: '+4930123456' });
    user = dv.addUser('ada@example.com');
  });

  it('creates with If-None-Match: * (204 and OData-EntityId), then answers 412', async () => {
    const r = await create({
      ...CALL,
      'regardingobjectid_contact_phonecall@odata.bind': `/contacts(${contact})`,
      'ownerid@odata.bind': `/systemusers(${user})`,
      phonecall_activity_parties: [
        { 'partyid_contact@odata.bind': `/contacts(${contact})`, participationtypemask: 1 },
        { 'partyid_systemuser@odata.bind': `/systemusers(${user})`, participationtypemask: 2 },
      ],
    });
    expect(r.status).toBe(204);
    expect(r.headers.get('odata-entityid')).toBe(`${dv.url}${API}/phonecalls(${ID})`);
    expect(dv.phonecalls.get(ID)).toMatchObject({
      statecode: 0,
      statuscode: 1,
      _regardingobjectid_value: contact,
      _ownerid_value: user,
    });
    const again = await create();
    expect(again.status).toBe(412);
    expect(again.body.error.message).toBe('A record with matching key values already exists.');
    expect(dv.phonecalls.size).toBe(1);
  });

  it('updates only with If-Match: * (404 when absent), and upserts without a header', async () => {
    const missing = await api('PATCH', `phonecalls(${ID})`, {
      body: { subject: 'x' },
      headers: { 'If-Match': '*' },
    });
    expect(missing.status).toBe(404);
    expect(missing.body.error.message).toBe(`phonecall With Id = ${ID} Does Not Exist`);
    expect((await api('PATCH', `phonecalls(${ID})`, { body: CALL })).status).toBe(204);
    const upd = await api('PATCH', `phonecalls(${ID})`, {
      body: { description: 'later' },
      headers: { 'If-Match': '*' },
    });
    expect(upd.status).toBe(204);
    expect(dv.phonecalls.get(ID)!.description).toBe('later');
  });

  it('answers 201 and 200 with the record for Prefer: return=representation', async () => {
    const prefer = { Prefer: 'return=representation' };
    const c = await api('PATCH', `phonecalls(${ID})?$select=activityid,subject`, {
      body: CALL,
      headers: { ...prefer, 'If-None-Match': '*' },
    });
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({ activityid: ID, subject: CALL.subject });
    const u = await api('PATCH', `phonecalls(${ID})`, { body: { subject: 'S' }, headers: prefer });
    expect(u.status).toBe(200);
  });

  it('reads a call back by id, and answers 404 for an unknown one', async () => {
    await create();
    const r = await api('GET', `phonecalls(${ID})?$select=activityid,statecode`);
    expect(r.body).toMatchObject({ activityid: ID, statecode: 0 });
    const other = '11111111-2222-5333-8444-555555555555';
    expect((await api('GET', `phonecalls(${other})`)).status).toBe(404);
    expect((await api('GET', 'phonecalls(not-a-guid)')).status).toBe(400);
  });

  it('validates every column: required subject, lengths, types, unknown properties', async () => {
    const bad = async (body: Record<string, unknown>, status = 400) => {
      const r = await create(body);
      expect(r.status, JSON.stringify(body).slice(0, 80)).toBe(status);
      expect(r.body.error.message).toBeTruthy();
    };
    const { subject: _s, ...noSubject } = CALL;
    void _s;
    await bad(noSubject);
    await bad({ ...CALL, subject: 'x'.repeat(201) });
    await bad({ ...CALL, description: 'x'.repeat(2001) });
    await bad({ ...CALL, phonenumber: 'x'.repeat(201) });
    await bad({ ...CALL, directioncode: 'Outgoing' });
    await bad({ ...CALL, actualdurationminutes: 3.5 });
    await bad({ ...CALL, actualdurationminutes: -1 });
    await bad({ ...CALL, actualdurationminutes: '3' });
    await bad({ ...CALL, actualstart: '2026-03-11 19:00' });
    await bad({ ...CALL, duration: 185 });
    await bad({ ...CALL, statecode: 1, statuscode: 4 });
    expect((await create({ ...CALL, description: 'x'.repeat(2000) })).status).toBe(204);
  });

  it('checks binds: the phonecall navigation property, existing rows, enabled owners', async () => {
    const other = '11111111-2222-5333-8444-555555555555';
    const short = await create({
      ...CALL,
      'regardingobjectid_contact@odata.bind': `/contacts(${contact})`,
    });
    expect(short.status).toBe(400);
    const gone = await create({
      ...CALL,
      'regardingobjectid_contact_phonecall@odata.bind': `/contacts(${other})`,
    });
    expect(gone.status).toBe(404);
    expect(gone.body.error.message).toBe(`contact With Id = ${other} Does Not Exist`);
    expect((await create({ ...CALL, 'ownerid@odata.bind': `/contacts(${contact})` })).status).toBe(
      400,
    );
    const off = dv.addUser('off@example.com', 'Off', true);
    expect((await create({ ...CALL, 'ownerid@odata.bind': `/systemusers(${off})` })).status).toBe(
      400,
    );
    const party = await create({
      ...CALL,
      phonecall_activity_parties: [
        { 'partyid_contact@odata.bind': `/contacts(${contact})`, participationtypemask: 3 },
      ],
    });
    expect(party.status).toBe(400);
    expect(dv.phonecalls.size).toBe(0);
    expect(
      (
        await create({
          ...CALL,
          'ownerid@odata.bind': `${dv.url}${API}/systemusers(${user})`,
        })
      ).status,
    ).toBe(204);
  });

  it('can be told to refuse activity parties in a PATCH (unverified point)', async () => {
    dv.partiesInPatch = false;
    const r = await create({
      ...CALL,
      phonecall_activity_parties: [
        { 'partyid_contact@odata.bind': `/contacts(${contact})`, participationtypemask: 1 },
      ],
    });
    expect(r.status).toBe(400);
  });

  it('completes with a statecode/statuscode pair; a completed call takes state changes only', async () => {
    await create();
    const patch = (body: Record<string, unknown>) =>
      api('PATCH', `phonecalls(${ID})`, { body, headers: { 'If-Match': '*' } });
    expect((await patch({ statecode: 1, statuscode: 1 })).status).toBe(400); // Open's status
    expect((await patch({ statecode: 0, statuscode: 4 })).status).toBe(400);
    expect((await patch({ statecode: 1, statuscode: 4 })).status).toBe(204);
    expect(dv.phonecalls.get(ID)).toMatchObject({ statecode: 1, statuscode: 4 });
    const ro = await patch({ description: 'a recording' });
    expect(ro.status).toBe(400);
    expect(ro.body.error.message).toBe('Cannot update Closed or Cancelled Activity');
    expect((await patch({ statecode: 0, statuscode: 1, description: 'x' })).status).toBe(400);
    // Reopen, change, complete again.
    expect((await patch({ statecode: 0, statuscode: 1 })).status).toBe(204);
    expect((await patch({ description: 'a recording' })).status).toBe(204);
    expect((await patch({ statecode: 1, statuscode: 2 })).status).toBe(204);
    expect(dv.phonecalls.get(ID)).toMatchObject({ statuscode: 2, description: 'a recording' });
    // statecode alone takes the state's default status.
    expect((await patch({ statecode: 0 })).status).toBe(204);
    expect(dv.phonecalls.get(ID)!.statuscode).toBe(1);
  });

  it('applies a change to the same state as a no-op, or refuses it when told', async () => {
    await create();
    const patch = (body: Record<string, unknown>) =>
      api('PATCH', `phonecalls(${ID})`, { body, headers: { 'If-Match': '*' } });
    expect((await patch({ statecode: 1, statuscode: 2 })).status).toBe(204);
    expect((await patch({ statecode: 1, statuscode: 2 })).status).toBe(204);
    dv.sameStateChange = 'refuse';
    expect((await patch({ statecode: 1, statuscode: 2 })).status).toBe(400);
    expect((await patch({ statecode: 0, statuscode: 1 })).status).toBe(204);
    expect((await patch({ statecode: 0, statuscode: 1 })).status).toBe(400);
  });
});

describe("a recipe's sequence (create, complete; update = reopen, write, complete)", () => {
  beforeEach(login);
  const patch = (body: Record<string, unknown>, match: 'If-None-Match' | 'If-Match') =>
    api('PATCH', `phonecalls(${ID})`, { body, headers: { [match]: '*' } });

  for (const mode of ['ok', 'refuse'] as const) {
    it(`ends in one completed call after a lost create and a lost complete (same state: ${mode})`, async () => {
      dv.sameStateChange = mode;
      dv.faults.push({ match: 'PATCH /api/data/v9.2/phonecalls', fault: { lose: true } });
      await expect(patch(CALL, 'If-None-Match')).rejects.toThrow();
      expect((await patch(CALL, 'If-None-Match')).status).toBe(412); // read as done
      dv.faults.push({ match: 'PATCH /api/data/v9.2/phonecalls', fault: { lose: true } });
      await expect(patch({ statecode: 1, statuscode: 4 }, 'If-Match')).rejects.toThrow();
      // The retry of the complete sets the state the call already has.
      const again = await patch({ statecode: 1, statuscode: 4 }, 'If-Match');
      expect(again.status).toBe(mode === 'ok' ? 204 : 400);
      // The update path brings it to the same end either way.
      expect((await patch({ statecode: 0, statuscode: 1 }, 'If-Match')).status).toBe(204);
      expect((await patch({ ...CALL, description: 'with a recording' }, 'If-Match')).status).toBe(
        204,
      );
      expect((await patch({ statecode: 1, statuscode: 4 }, 'If-Match')).status).toBe(204);
      expect([...dv.phonecalls.values()]).toMatchObject([
        { activityid: ID, statecode: 1, statuscode: 4, description: 'with a recording' },
      ]);
    });
  }
});

describe('service protection and faults', () => {
  beforeEach(login);

  it('answers 429 0x80072322 with Retry-After over the request window', async () => {
    dv.window = { requests: 3, seconds: 300 };
    dv.retryAfterSec = 7;
    for (let i = 0; i < 3; i++) expect((await api('GET', 'contacts')).status).toBe(200);
    const r = await api('GET', 'contacts');
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('7');
    expect(r.body.error.code).toBe('0x80072322');
    expect(dv.tooManyRequests).toBe(1);
  });

  it('answers 429 0x80072326 at once over the concurrency cap', async () => {
    dv.concurrency = 2;
    let open!: () => void;
    dv.gate = new Promise<void>((r) => (open = r));
    const held = [api('GET', 'contacts'), api('GET', 'contacts')];
    // Wait until both are admitted (in flight), not for a fixed time.
    // (a request is counted in flight in the same turn as it is recorded)
    while (dv.requests.length < 2) await new Promise((r) => setTimeout(r, 5));
    const over = await api('GET', 'contacts');
    expect(over.status).toBe(429);
    expect(over.body.error.code).toBe('0x80072326');
    expect(over.headers.get('retry-after')).toBeTruthy();
    open();
    expect((await Promise.all(held)).map((r) => r.status)).toEqual([200, 200]);
  });

  it('forces 429s, fails a share with 500/503 repeatably, loses answers after committing', async () => {
    dv.rateLimitNext = 1;
    expect((await api('GET', 'contacts')).status).toBe(429);
    const run = async (seed: number) => {
      const f = await new FakeDynamics({ seed }).start();
      f.failRate = 0.5;
      const t = (
        (await (
          await fetch(f.tokenUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({
              grant_type: 'client_credentials',
              client_id: f.client.clientId,
              client_secret: f.client.clientSecret,
              scope: `${f.environmentUrl}/.default`,
            }),
          })
        ).json()) as { access_token: string }
      ).access_token;
      const out: number[] = [];
      for (let i = 0; i < 20; i++)
        out.push(
          (await fetch(`${f.url}${API}/contacts`, { headers: { authorization: `Bearer ${t}` } }))
            .status,
        );
      await f.close();
      return out;
    };
    const a = await run(5);
    expect(a).toEqual(await run(5));
    expect(a.some((s) => s === 500 || s === 503)).toBe(true);
    expect(a).toContain(200);

    dv.faults.push({ match: 'PATCH /api/data/v9.2/phonecalls', fault: { lose: true } });
    await expect(create()).rejects.toThrow();
    expect(dv.phonecalls.has(ID)).toBe(true); // done, though the answer was lost
    expect((await create()).status).toBe(412);
    expect(dv.count('PATCH', `${API}/phonecalls`)).toBe(1); // the lost one has no answer logged
  });
});

describe('parseFilter', () => {
  it('reads quoted literals with doubled quotes, booleans, and one kind of join', () => {
    const f = parseFilter("(lastname eq 'O''Brien' and isdisabled eq false)");
    expect(typeof f).toBe('object');
    if (typeof f === 'string') return;
    expect(f.columns).toEqual(['lastname', 'isdisabled']);
    expect(f.test({ lastname: "O'Brien", isdisabled: false })).toBe(true);
    expect(typeof parseFilter("a eq '1' or b eq '2' and c eq '3'")).toBe('string');
    expect(typeof parseFilter("a eq 'open")).toBe('string');
  });
});
