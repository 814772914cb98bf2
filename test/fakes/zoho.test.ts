// The fake Zoho CRM held to the documented behaviours a recipe relies on (docs/crm-notes.md F),
// over real HTTP, so that a recipe test failing on it means the recipe is wrong, not the fake.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeZoho } from './zoho.js';

const CLIENT = { clientId: '1000.CLIENT', clientSecret: 'secret', refreshToken: '1000.refresh' };

let zoho: FakeZoho;
beforeEach(async () => {
  zoho = await new FakeZoho(CLIENT).start();
});
afterEach(() => zoho.close());

async function token(params: Record<string, string> = {}, asForm = false) {
  const p = {
    grant_type: 'refresh_token',
    client_id: CLIENT.clientId,
    client_secret: CLIENT.clientSecret,
    refresh_token: CLIENT.refreshToken,
    ...params,
  };
  const q = new URLSearchParams(p).toString();
  const res = asForm
    ? await fetch(`${zoho.url}/oauth/v2/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: q,
      })
    : await fetch(`${zoho.url}/oauth/v2/token?${q}`, { method: 'POST' });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function api(
  method: string,
  path: string,
  o: { token?: string; body?: unknown; query?: Record<string, string> } = {},
) {
  const q = o.query ? `?${new URLSearchParams(o.query)}` : '';
  const res = await fetch(`${zoho.url}${path}${q}`, {
    method,
    headers: {
      ...(o.token === '' ? {} : { authorization: `Zoho-oauthtoken ${o.token ?? tok}` }),
      ...(o.body === undefined ? {} : { 'content-type': 'application/json' }),
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

let tok = '';
const login = async (): Promise<void> => {
  tok = (await token()).body.access_token as string;
};

const CALL = {
  Subject: 'Inbound call from +4930123456',
  Call_Type: 'Inbound',
  Call_Start_Time: '2026-03-11T20:00:00+01:00',
  Call_Duration: '03:05',
  Description: 'Talk time: 185 s\ncallrelay 3cx/abc_1',
};

describe('OAuth (Self Client refresh token)', () => {
  it('answers an access token for query or form parameters, with the API domain', async () => {
    for (const asForm of [false, true]) {
      const t = await token({}, asForm);
      expect(t.status).toBe(200);
      expect(t.body).toMatchObject({
        api_domain: zoho.url,
        token_type: 'Bearer',
        expires_in: 3600,
      });
      expect(t.body.access_token).toMatch(/^1000\./);
    }
    expect(zoho.tokenRequests).toHaveLength(2);
  });

  it('says what is wrong in the body of an HTTP 200, with no access token', async () => {
    expect(await token({ refresh_token: 'nope' })).toEqual({
      status: 200,
      body: { error: 'invalid_code' },
    });
    expect((await token({ client_id: 'x' })).body).toEqual({ error: 'invalid_client' });
    expect((await token({ client_secret: 'x' })).body).toEqual({
      error: 'invalid_client_secret',
    });
    expect((await token({ grant_type: 'client_credentials' })).body.access_token).toBeUndefined();
  });

  it('refuses a burst of token requests for one refresh token', async () => {
    zoho.tokenRequestsPer10Min = 2;
    await token();
    await token();
    const third = await token();
    expect(third.status).toBe(400);
    expect(third.body).toMatchObject({ error: 'Access Denied', status: 'failure' });
  });

  it('wants the Zoho-oauthtoken scheme, and an expired token is INVALID_TOKEN 401', async () => {
    await login();
    expect((await api('GET', '/crm/v8/users', { query: { type: 'ActiveUsers' } })).status).toBe(
      204,
    );
    const noAuth = await api('GET', '/crm/v8/users', { token: '' });
    expect(noAuth.status).toBe(401);
    expect(noAuth.body.code).toBe('AUTHENTICATION_FAILURE');
    zoho.expireTokens();
    const expired = await api('GET', '/crm/v8/users');
    expect(expired).toMatchObject({
      status: 401,
      body: { code: 'INVALID_TOKEN', details: {}, message: 'invalid oauth token', status: 'error' },
    });
    // A fresh token works again.
    await login();
    expect((await api('GET', '/crm/v8/users')).status).toBe(204);
  });
});

describe('search by phone', () => {
  beforeEach(login);

  it('finds every phone field by its trailing digits, so national digits also find look-alikes', async () => {
    const berlin = zoho.addRecord('Contacts', { Last_Name: 'Berlin', Phone: '+49 30 123456' });
    const vienna = zoho.addRecord('Contacts', { Last_Name: 'Vienna', Mobile: '+43 30 123456' });
    const local = zoho.addRecord('Contacts', { Last_Name: 'Local', Home_Phone: '030 123456' });
    const ids = async (phone: string) =>
      ((await api('GET', '/crm/v8/Contacts/search', { query: { phone } })).body?.data ?? []).map(
        (r: { id: string }) => r.id,
      );
    expect(await ids('+4930123456')).toEqual([berlin]);
    expect((await ids('30123456')).sort()).toEqual([berlin, vienna, local].sort());
    expect(await ids('+4930999999')).toEqual([]);
  });

  it('answers 204 with no body when nothing matches', async () => {
    const r = await api('GET', '/crm/v8/Contacts/search', { query: { phone: '+4930999' } });
    expect(r.status).toBe(204);
    expect(r.body).toBeUndefined();
  });

  it('keeps contacts and leads apart: one number, one answer per module', async () => {
    const c = zoho.addRecord('Contacts', { Last_Name: 'C', Phone: '+4930123456' });
    const l = zoho.addRecord('Leads', { Last_Name: 'L', Company: 'X', Phone: '+4930123456' });
    zoho.addRecord('Leads', {
      Last_Name: 'Converted',
      Company: 'X',
      Phone: '+4930123456',
      $converted: true,
    });
    const contacts = await api('GET', '/crm/v8/Contacts/search', {
      query: { phone: '+4930123456' },
    });
    const leads = await api('GET', '/crm/v8/Leads/search', { query: { phone: '+4930123456' } });
    expect(contacts.body.data.map((r: { id: string }) => r.id)).toEqual([c]);
    expect(leads.body.data.map((r: { id: string }) => r.id)).toEqual([l]);
    expect(leads.body.data[0]).toMatchObject({ Full_Name: 'L', Created_Time: expect.any(String) });
    // Every field of the module comes back, null where empty: contacts have no Company.
    expect(leads.body.data[0]).toMatchObject({ Company: 'X', Mobile: null });
    expect(contacts.body.data[0]).toMatchObject({ Mobile: null, Home_Phone: null });
    expect(contacts.body.data[0]).not.toHaveProperty('Company');
  });

  it('pages with per_page (at most 200) and info.more_records', async () => {
    for (let i = 0; i < 3; i++)
      zoho.addRecord('Contacts', { Last_Name: `N${i}`, Phone: '+4930123456' });
    const p1 = await api('GET', '/crm/v8/Contacts/search', {
      query: { phone: '+4930123456', per_page: '2' },
    });
    expect(p1.body.info).toEqual({ per_page: 2, count: 2, page: 1, more_records: true });
    const p2 = await api('GET', '/crm/v8/Contacts/search', {
      query: { phone: '+4930123456', per_page: '2', page: '2' },
    });
    expect(p2.body.info).toMatchObject({ count: 1, page: 2, more_records: false });
    const tooMany = await api('GET', '/crm/v8/Contacts/search', {
      query: { phone: '+4930123456', per_page: '201' },
    });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.code).toBe('INVALID_DATA');
  });

  it('wants exactly one of criteria, email, phone or word; criteria takes equals/starts_with', async () => {
    const none = await api('GET', '/crm/v8/Contacts/search');
    expect(none.status).toBe(400);
    expect(none.body.code).toBe('REQUIRED_PARAM_MISSING');
    const id = zoho.addRecord('Contacts', { Last_Name: 'Boyle (Jr)', Phone: '1' });
    const crit = await api('GET', '/crm/v8/Contacts/search', {
      query: { criteria: '(Last_Name:equals:Boyle \\(Jr\\))' },
    });
    expect(crit.body.data[0].id).toBe(id);
    const bad = await api('GET', '/crm/v8/Contacts/search', { query: { criteria: 'Last_Name=x' } });
    expect(bad.body.code).toBe('INVALID_QUERY');
  });
});

describe('users', () => {
  beforeEach(login);

  it('lists active users with their ids and emails', async () => {
    const a = zoho.addUser('alice@example.com', 'Alice');
    zoho.addUser('old@example.com', 'Old', 'inactive');
    const r = await api('GET', '/crm/v8/users', { query: { type: 'ActiveUsers' } });
    expect(r.body.users).toEqual([
      { id: a, email: 'alice@example.com', full_name: 'Alice', status: 'active' },
    ]);
    expect(r.body.info.more_records).toBe(false);
  });
});

describe('Calls', () => {
  beforeEach(login);

  it('inserts a call: 201 with the id and times in details', async () => {
    const c = zoho.addRecord('Contacts', { Last_Name: 'C', Phone: '+4930123456' });
    const owner = zoho.addUser('alice@example.com');
    const r = await api('POST', '/crm/v8/Calls', {
      body: { data: [{ ...CALL, Who_Id: { id: c }, Owner: { id: owner } }] },
    });
    expect(r.status).toBe(201);
    expect(r.body.data[0]).toMatchObject({
      code: 'SUCCESS',
      message: 'record added',
      status: 'success',
      details: { id: expect.stringMatching(/^\d+$/), Created_Time: expect.any(String) },
    });
    const stored = zoho.calls.get(r.body.data[0].details.id)!;
    expect(stored.fields).toMatchObject({ Who_Id: { id: c, name: 'C' }, Call_Duration: '03:05' });
  });

  it('puts a per-record error in the data array: unknown field, wrong type, too long, read-only', async () => {
    const cases: [Record<string, unknown>, string, Record<string, unknown>][] = [
      [{ Call_Direction: 'in' }, 'INVALID_DATA', { api_name: 'Call_Direction' }],
      [{ Call_Duration: 185 }, 'INVALID_DATA', { api_name: 'Call_Duration' }],
      [{ Call_Duration: '185' }, 'INVALID_DATA', { api_name: 'Call_Duration' }],
      [{ Subject: 'x'.repeat(256) }, 'INVALID_DATA', { api_name: 'Subject', maximum_length: 255 }],
      [
        { Call_Start_Time: '2026-03-11T19:00:00.000Z' },
        'INVALID_DATA',
        { api_name: 'Call_Start_Time' },
      ],
      [{ Call_Type: 'Incoming' }, 'INVALID_DATA', { api_name: 'Call_Type' }],
      [{ Dialled_Number: '+4930' }, 'INVALID_DATA', { api_name: 'Dialled_Number' }],
      [{ Subject: undefined }, 'MANDATORY_NOT_FOUND', { api_name: 'Subject' }],
      [{ Call_Duration: undefined }, 'MANDATORY_NOT_FOUND', { api_name: 'Call_Duration' }],
    ];
    for (const [change, code, details] of cases) {
      const r = await api('POST', '/crm/v8/Calls', { body: { data: [{ ...CALL, ...change }] } });
      expect(r.status, JSON.stringify(change)).toBe(400);
      expect(r.body.data[0], JSON.stringify(change)).toMatchObject({
        code,
        status: 'error',
        details: { ...details, json_path: expect.stringMatching(/^\$\.data\[0\]/) },
      });
    }
    expect(zoho.calls.size).toBe(0);
    // A missed call needs no duration.
    const missed = { ...CALL, Call_Type: 'Missed', Call_Duration: undefined };
    expect((await api('POST', '/crm/v8/Calls', { body: { data: [missed] } })).status).toBe(201);
  });

  it('links a lead through What_Id with $se_module, never through Who_Id', async () => {
    const lead = zoho.addRecord('Leads', { Last_Name: 'L', Company: 'X', Phone: '+4930123456' });
    const asWho = await api('POST', '/crm/v8/Calls', {
      body: { data: [{ ...CALL, Who_Id: { id: lead } }] },
    });
    expect(asWho.body.data[0].details).toMatchObject({ api_name: 'Who_Id' });
    const noModule = await api('POST', '/crm/v8/Calls', {
      body: { data: [{ ...CALL, What_Id: { id: lead } }] },
    });
    expect(noModule.body.data[0]).toMatchObject({
      code: 'MANDATORY_NOT_FOUND',
      details: { api_name: '$se_module' },
    });
    const ok = await api('POST', '/crm/v8/Calls', {
      body: { data: [{ ...CALL, What_Id: { id: lead }, $se_module: 'Leads' }] },
    });
    expect(ok.status).toBe(201);
  });

  it('refuses an owner who is not an active user', async () => {
    const gone = zoho.addUser('old@example.com', 'Old', 'inactive');
    const r = await api('POST', '/crm/v8/Calls', {
      body: { data: [{ ...CALL, Owner: { id: gone } }] },
    });
    expect(r.body.data[0]).toMatchObject({ code: 'INVALID_DATA', details: { api_name: 'Owner' } });
  });

  it('has no upsert for Calls', async () => {
    const r = await api('POST', '/crm/v8/Calls/upsert', { body: { data: [CALL] } });
    expect(r.status).toBe(404);
    expect(zoho.calls.size).toBe(0);
  });

  it("updates by id; Call_Type and a completed call's owner cannot change", async () => {
    const owner = zoho.addUser('alice@example.com');
    const made = await api('POST', '/crm/v8/Calls', { body: { data: [CALL] } });
    const id = made.body.data[0].details.id as string;
    const up = await api('PUT', `/crm/v8/Calls/${id}`, {
      body: { data: [{ Call_Duration: '04:00', Description: 'later' }] },
    });
    expect(up.status).toBe(200);
    expect(up.body.data[0]).toMatchObject({
      code: 'SUCCESS',
      message: 'record updated',
      details: { id },
    });
    expect(zoho.calls.get(id)!.fields.Call_Duration).toBe('04:00');
    const type = await api('PUT', `/crm/v8/Calls/${id}`, {
      body: { data: [{ Call_Type: 'Inbound' }] },
    });
    expect(type.body.data[0]).toMatchObject({
      code: 'INVALID_DATA',
      details: { api_name: 'Call_Type' },
    });
    const own = await api('PUT', `/crm/v8/Calls/${id}`, {
      body: { data: [{ Owner: { id: owner } }] },
    });
    expect(own.body.data[0]).toMatchObject({
      code: 'INVALID_DATA',
      details: { api_name: 'Owner' },
    });
    const missing = await api('PUT', '/crm/v8/Calls/5725767000000000001', {
      body: { data: [{ Description: 'x' }] },
    });
    expect(missing.status).toBe(400);
    expect(missing.body.data[0].code).toBe('INVALID_DATA');
  });

  it('finds a call by a word in its Description, containment only, after the search lag', async () => {
    await api('POST', '/crm/v8/Calls', { body: { data: [CALL] } });
    await api('POST', '/crm/v8/Calls', {
      body: { data: [{ ...CALL, Description: 'x\ncallrelay 3cx/abc_10' }] },
    });
    const hits = await api('GET', '/crm/v8/Calls/search', {
      query: { word: 'callrelay 3cx/abc_1' },
    });
    // Containment: call _10 is found too; telling them apart is the reader's work.
    expect(hits.body.data).toHaveLength(2);
    zoho.searchLagMs = 60_000;
    await api('POST', '/crm/v8/Calls', {
      body: { data: [{ ...CALL, Description: 'x\ncallrelay 3cx/new' }] },
    });
    expect(
      (await api('GET', '/crm/v8/Calls/search', { query: { word: 'callrelay 3cx/new' } })).status,
    ).toBe(204);
  });

  it('finds calls by start time with criteria, comparing instants whatever the offset', async () => {
    await api('POST', '/crm/v8/Calls', { body: { data: [CALL] } });
    const at = (t: string) =>
      api('GET', '/crm/v8/Calls/search', { query: { criteria: `(Call_Start_Time:equals:${t})` } });
    expect((await at('2026-03-11T19:00:00+00:00')).body.data).toHaveLength(1);
    expect((await at('2026-03-11T20:00:00+01:00')).body.data).toHaveLength(1);
    expect((await at('2026-03-11T20:00:01+01:00')).status).toBe(204);
  });
});

describe('limits and faults', () => {
  beforeEach(login);

  it('answers TOO_MANY_REQUESTS 429 when forced, with the headers a test sets', async () => {
    zoho.rateLimitNext = 1;
    zoho.rateLimitHeaders = { 'retry-after': '2' };
    const r = await api('GET', '/crm/v8/users');
    expect(r.status).toBe(429);
    expect(r.body).toEqual({
      code: 'TOO_MANY_REQUESTS',
      details: {},
      message: expect.any(String),
      status: 'error',
    });
    expect(r.headers.get('retry-after')).toBe('2');
    expect((await api('GET', '/crm/v8/users')).status).toBe(204);
  });

  it('answers 429 beyond the concurrency cap', async () => {
    zoho.concurrency = 2;
    let open!: () => void;
    zoho.gate = new Promise((r) => (open = r));
    const all = Promise.all([1, 2, 3, 4].map(() => api('GET', '/crm/v8/users')));
    // Two are held in flight; the other two are turned away while they are.
    await expect.poll(() => zoho.tooManyRequests, { timeout: 10_000 }).toBe(2);
    zoho.gate = undefined;
    open();
    expect((await all).map((r) => r.status).sort()).toEqual([204, 204, 429, 429]);
  });

  it('fails a share of requests with 500 INTERNAL_ERROR, repeatably for a seed', async () => {
    zoho.failRate = 0.5;
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await api('GET', '/crm/v8/users')).status);
    expect(statuses.filter((s) => s === 500).length).toBeGreaterThan(3);
    expect(statuses.filter((s) => s === 204).length).toBeGreaterThan(3);
  });

  it('loses answers: the call is made, the connection is destroyed', async () => {
    zoho.faults.push({ match: 'POST /crm/v8/Calls', fault: { lose: true } });
    await expect(api('POST', '/crm/v8/Calls', { body: { data: [CALL] } })).rejects.toThrow();
    expect(zoho.calls.size).toBe(1);
    zoho.lostRate = 1;
    await expect(api('POST', '/crm/v8/Calls', { body: { data: [CALL] } })).rejects.toThrow();
    expect(zoho.calls.size).toBe(2);
    expect(zoho.requests.filter((r) => r.method === 'POST')).toHaveLength(2);
  });
});
