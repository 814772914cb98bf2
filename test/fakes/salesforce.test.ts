// The fake Salesforce itself, over HTTP, against the documented behaviours a recipe relies on
// (docs/crm-notes.md E), so that a recipe failing on it fails for a reason Salesforce would give.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeSalesforce } from './salesforce.js';

const CLIENT = { id: '3MVG9-test-client', secret: 'sf-secret-0000' };
const V = '/services/data/v62.0';

let sf: FakeSalesforce;
let token: string;

async function getToken(form: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await fetch(`${sf.url}/services/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, string> };
}

async function api(
  method: string,
  path: string,
  body?: unknown,
  auth = token,
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${sf.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${auth}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

const search = (sosl: string) => api('GET', `${V}/search/?q=${encodeURIComponent(sosl)}`);
const query = (soql: string) => api('GET', `${V}/query?q=${encodeURIComponent(soql)}`);
const RETURNING =
  'RETURNING Contact(Id,Name,Phone,MobilePhone,CreatedDate),Lead(Id,Name,Phone,MobilePhone,CreatedDate)';

beforeEach(async () => {
  sf = await new FakeSalesforce(CLIENT, {
    taskFields: {
      CallKey__c: {
        type: 'string',
        label: 'Call Key',
        length: 255,
        externalId: true,
        unique: true,
      },
      Ref__c: { type: 'string', label: 'Ref', length: 80, externalId: true },
      Note__c: { type: 'string', label: 'Note', length: 80 },
    },
  }).start();
  const t = await getToken({
    grant_type: 'client_credentials',
    client_id: CLIENT.id,
    client_secret: CLIENT.secret,
  });
  token = t.body.access_token!;
});
afterEach(() => sf.close());

describe('fake Salesforce: client credentials', () => {
  it('answers a token without expires_in, with the instance URL and the run-as user', async () => {
    const t = await getToken({
      grant_type: 'client_credentials',
      client_id: CLIENT.id,
      client_secret: CLIENT.secret,
    });
    expect(t.status).toBe(200);
    expect(Object.keys(t.body).sort()).toEqual(
      [
        'access_token',
        'id',
        'instance_url',
        'issued_at',
        'scope',
        'signature',
        'token_type',
      ].sort(),
    );
    expect(t.body.instance_url).toBe(sf.url);
    expect(t.body.token_type).toBe('Bearer');
    expect(t.body.id).toMatch(new RegExp(`/id/00D\\w+/${sf.runAsUserId}$`));
    expect(Number(t.body.issued_at)).toBeGreaterThan(0);
  });

  it('takes the client in a Basic header too, and refuses bad ones in the OAuth error shape', async () => {
    const basic = Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64');
    expect(
      (await getToken({ grant_type: 'client_credentials' }, { authorization: `Basic ${basic}` }))
        .status,
    ).toBe(200);
    const bad = await getToken({
      grant_type: 'client_credentials',
      client_id: CLIENT.id,
      client_secret: 'wrong',
    });
    expect(bad).toEqual({
      status: 400,
      body: { error: 'invalid_client', error_description: 'invalid client credentials' },
    });
    expect((await getToken({ grant_type: 'password' })).body.error).toBe('unsupported_grant_type');
    sf.clientCredentialsEnabled = false;
    const off = await getToken({
      grant_type: 'client_credentials',
      client_id: CLIENT.id,
      client_secret: CLIENT.secret,
    });
    expect(off.body).toEqual({
      error: 'invalid_grant',
      error_description: 'no client credentials user enabled',
    });
    // The log keeps who asked and the answer, never the secret.
    expect(JSON.stringify(sf.tokenRequests)).not.toContain(CLIENT.secret);
    expect(sf.tokenRequests.map((r) => r.status)).toEqual([200, 200, 400, 400, 400]);
  });

  it('answers 401 INVALID_SESSION_ID for no token, an unknown one and an expired session', async () => {
    const expired = [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }];
    expect(await api('GET', `${V}/sobjects/Task/00T000000000001`, undefined, 'nope')).toMatchObject(
      {
        status: 401,
        body: expired,
      },
    );
    expect((await query('SELECT Id FROM User')).status).toBe(200);
    sf.expireSessions();
    expect(await query('SELECT Id FROM User')).toMatchObject({ status: 401, body: expired });
    // By the org's timeout: a session older than it is refused.
    token = (
      await getToken({
        grant_type: 'client_credentials',
        client_id: CLIENT.id,
        client_secret: CLIENT.secret,
      })
    ).body.access_token!;
    sf.sessionSec = 0.001;
    const start = Date.now();
    while (Date.now() - start < 5) await new Promise((r) => setTimeout(r, 2));
    expect((await query('SELECT Id FROM User')).status).toBe(401);
  });
});

describe('fake Salesforce: Task', () => {
  const call = {
    Subject: 'Inbound call',
    Status: 'Completed',
    ActivityDate: '2026-03-11',
    TaskSubtype: 'Call',
    CallType: 'Inbound',
    CallDurationInSeconds: 185,
    CallDisposition: 'Connected',
    CallObject: 'callrelay:3cx:1',
  };

  it('creates with 201 {id, success, errors} and counts the request in Sforce-Limit-Info', async () => {
    const r = await api('POST', `${V}/sobjects/Task`, call);
    expect(r.status).toBe(201);
    expect(r.body).toEqual({ id: expect.stringMatching(/^00T\w{15}$/), success: true, errors: [] });
    expect(r.headers.get('sforce-limit-info')).toBe('api-usage=1/100000');
    expect(sf.tasks[0]).toMatchObject({ ...call, Id: r.body.id, OwnerId: sf.runAsUserId });
    expect(sf.tasks[0]!.IsClosed).toBe(true);
    const read = await api('GET', `${V}/sobjects/Task/${r.body.id}`);
    expect(read.body).toMatchObject({
      attributes: { type: 'Task' },
      CallObject: 'callrelay:3cx:1',
    });
    expect(read.headers.get('sforce-limit-info')).toBe('api-usage=2/100000');
  });

  it('refuses what the API refuses, with its error array, code and fields', async () => {
    const contact = sf.addContact({ LastName: 'Ada', Phone: '+4930123456' });
    const lead = sf.addLead({ LastName: 'Lee', Phone: '+4930123456' });
    const inactive = sf.addUser({ Email: 'gone@example.com', IsActive: false });
    const cases: [Record<string, unknown>, string, string[] | undefined, RegExp?][] = [
      [
        { Foo__c: 'x' },
        'INVALID_FIELD',
        undefined,
        /^No such column 'Foo__c' on sobject of type Task$/,
      ],
      [{ Id: '00T000000000001' }, 'INVALID_FIELD', undefined, /Id field should not be specified/],
      [{ CallDurationInSeconds: 'abc' }, 'JSON_PARSER_ERROR', undefined, /instance of int/],
      [{ CallDurationInSeconds: 12.5 }, 'JSON_PARSER_ERROR', undefined],
      [{ ActivityDate: '2026-03-11T10:00:00Z' }, 'JSON_PARSER_ERROR', undefined, /date/],
      [{ Subject: 'x'.repeat(256) }, 'STRING_TOO_LONG', ['Subject'], /max length=255/],
      [{ CallObject: 'x'.repeat(256) }, 'STRING_TOO_LONG', ['CallObject']],
      [{ Description: 'x'.repeat(32001) }, 'STRING_TOO_LONG', ['Description']],
      [{ CallType: 'INBOUND' }, 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', ['CallType']],
      [{ TaskSubtype: 'Phone' }, 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', ['TaskSubtype']],
      [{ WhoId: '12345' }, 'MALFORMED_ID', ['WhoId']],
      [{ WhoId: sf.runAsUserId }, 'FIELD_INTEGRITY_EXCEPTION', ['WhoId']],
      [{ WhoId: '0035g00000ZZZZZAAA' }, 'MALFORMED_ID', ['WhoId']],
      [{ WhoId: `${contact.slice(0, 14)}9` }, 'INVALID_CROSS_REFERENCE_KEY', ['WhoId']],
      [{ WhoId: lead, WhatId: '0015g00000AbCdE' }, 'FIELD_INTEGRITY_EXCEPTION', ['WhatId']],
      [{ OwnerId: inactive }, 'INACTIVE_OWNER_OR_USER', ['OwnerId']],
      [{ Status: null }, 'REQUIRED_FIELD_MISSING', ['Status']],
      [{ IsClosed: true }, 'INVALID_FIELD_FOR_INSERT_UPDATE', ['IsClosed']],
    ];
    for (const [body, errorCode, fields, message] of cases) {
      const r = await api('POST', `${V}/sobjects/Task`, body);
      expect(r.status, JSON.stringify(body).slice(0, 60)).toBe(400);
      expect(r.body).toHaveLength(1);
      expect(r.body[0].errorCode, JSON.stringify(body).slice(0, 60)).toBe(errorCode);
      if (fields) expect(r.body[0].fields).toEqual(fields);
      if (message) expect(r.body[0].message).toMatch(message);
    }
    expect(sf.tasks).toHaveLength(0);
    // The right shapes go through: a contact or a lead as WhoId, a 15-character id, a digit string.
    for (const who of [contact, lead, contact.slice(0, 15)])
      expect(
        (await api('POST', `${V}/sobjects/Task`, { WhoId: who, CallDurationInSeconds: '7' }))
          .status,
      ).toBe(201);
    expect(sf.tasks.map((t) => t.WhoId)).toEqual([contact, lead, contact]);
    expect(sf.tasks[0]!.CallDurationInSeconds).toBe(7);
  });

  it('updates with 204, refuses TaskSubtype (create only) and answers 404 for an unknown id', async () => {
    const { body } = await api('POST', `${V}/sobjects/Task`, call);
    const r = await api('PATCH', `${V}/sobjects/Task/${body.id}`, { CallDurationInSeconds: 200 });
    expect(r).toMatchObject({ status: 204, body: undefined });
    expect(sf.tasks[0]!.CallDurationInSeconds).toBe(200);
    const sub = await api('PATCH', `${V}/sobjects/Task/${body.id}`, { TaskSubtype: 'Call' });
    expect(sub.status).toBe(400);
    expect(sub.body[0]).toMatchObject({
      errorCode: 'INVALID_FIELD_FOR_INSERT_UPDATE',
      fields: ['TaskSubtype'],
    });
    expect(
      (await api('PATCH', `${V}/sobjects/Task/00T5g000009ZZZZ`, { Subject: 'x' })).body,
    ).toEqual([{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);
  });

  it('upserts by an External ID field: 201 created, 200 created:false, 204 before v46, 300, 404', async () => {
    const path = `${V}/sobjects/Task/CallKey__c/${encodeURIComponent('callrelay:3cx:1')}`;
    const first = await api('PATCH', path, call);
    expect(first).toMatchObject({
      status: 201,
      body: { success: true, errors: [], created: true },
    });
    expect(sf.tasks[0]!.CallKey__c).toBe('callrelay:3cx:1');
    const { TaskSubtype: _subtype, ...later } = call;
    const again = await api('PATCH', path, { ...later, CallDurationInSeconds: 190 });
    expect(again).toMatchObject({ status: 200, body: { id: first.body.id, created: false } });
    expect(sf.tasks).toHaveLength(1);
    // Upserting the same body again updates: the create-only TaskSubtype is refused then.
    expect((await api('PATCH', path, call)).body[0].errorCode).toBe(
      'INVALID_FIELD_FOR_INSERT_UPDATE',
    );
    const old = await api('PATCH', path.replace('v62.0', 'v45.0'), { Subject: 'old API' });
    expect(old).toMatchObject({ status: 204, body: undefined });
    // Not an external id: 404 naming the field.
    const notExt = await api('PATCH', `${V}/sobjects/Task/Note__c/x`, later);
    expect(notExt.status).toBe(404);
    expect(notExt.body[0]).toMatchObject({ errorCode: 'NOT_FOUND' });
    expect(notExt.body[0].message).toContain('Note__c');
    expect((await api('PATCH', `${V}/sobjects/Task/CallObject/x`, later)).status).toBe(404);
    // Several records with the value (a non-unique external id): 300 and the list, nothing made.
    await api('POST', `${V}/sobjects/Task`, { Ref__c: 'dup' });
    await api('POST', `${V}/sobjects/Task`, { Ref__c: 'DUP' });
    const many = await api('PATCH', `${V}/sobjects/Task/Ref__c/dup`, { Subject: 'x' });
    expect(many.status).toBe(300);
    expect(many.body).toHaveLength(2);
    // A unique one refuses a second record with the value on create.
    const dup = await api('POST', `${V}/sobjects/Task`, { CallKey__c: 'CALLRELAY:3CX:1' });
    expect(dup.body[0]).toMatchObject({ errorCode: 'DUPLICATE_VALUE', fields: ['CallKey__c'] });
  });
});

describe('fake Salesforce: SOSL phone search', () => {
  it('finds a contact and a lead with one number, in any stored format, and look-alikes', async () => {
    const contact = sf.addContact({ FirstName: 'Ada', LastName: 'L', Phone: '+386 62 975 9787' });
    const lead = sf.addLead({ LastName: 'Lee', MobilePhone: '062/975-9787' });
    const serbia = sf.addContact({ LastName: 'Look-alike', Phone: '+381629759787' });
    sf.addContact({ LastName: 'Other', Phone: '+386 62 975 9788' });

    const national = await search(`FIND {629759787} IN PHONE FIELDS ${RETURNING}`);
    expect(national.status).toBe(200);
    const ids = national.body.searchRecords.map((r: any) => r.Id);
    expect(ids.sort()).toEqual([contact, lead, serbia].sort());
    const rec = national.body.searchRecords.find((r: any) => r.Id === lead);
    expect(rec).toEqual({
      attributes: { type: 'Lead', url: `${V}/sobjects/Lead/${lead}` },
      Id: lead,
      Name: 'Lee',
      Phone: null,
      MobilePhone: '062/975-9787',
      CreatedDate: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$/),
    });

    // E.164, with its + escaped: the number's own country only (a nationally stored 062... is
    // not found by it, which is why a recipe searches the national form too).
    const e164 = await search(`FIND {\\+386629759787} IN PHONE FIELDS ${RETURNING}`);
    expect(e164.body.searchRecords.map((r: any) => r.Id)).toEqual([contact]);

    // A US number as the UI stores it with a US locale, without its country code: the national
    // term finds it, and so does E.164, whose tail it is (no trunk 0 in between).
    const us = sf.addContact({ LastName: 'US', Phone: '(555) 555-0100' });
    for (const term of ['\\+15555550100', '5555550100']) {
      const found = await search(`FIND {${term}} IN PHONE FIELDS ${RETURNING}`);
      expect(found.body.searchRecords.map((r: any) => r.Id)).toEqual([us]);
    }
  });

  it('refuses unescaped reserved characters, one-character terms and unknown fields', async () => {
    const plus = await search(`FIND {+386629759787} IN PHONE FIELDS ${RETURNING}`);
    expect(plus.status).toBe(400);
    expect(plus.body[0].errorCode).toBe('MALFORMED_SEARCH');
    expect((await search(`FIND {4-5} IN PHONE FIELDS ${RETURNING}`)).status).toBe(400);
    expect((await search(`FIND {7} IN PHONE FIELDS ${RETURNING}`)).body[0].message).toBe(
      'search term must be longer than one character',
    );
    const field = await search('FIND {12345678} IN PHONE FIELDS RETURNING Contact(Id,Phon)');
    expect(field.body[0]).toMatchObject({ errorCode: 'INVALID_FIELD' });
    expect(field.body[0].message).toMatch(/^No such column 'Phon' on entity 'Contact'/);
  });

  it('lags behind new records (the search index), while SOQL does not', async () => {
    sf.searchLagMs = 60_000;
    sf.addContact({ LastName: 'New', Phone: '+4930123456' });
    expect(
      (await search(`FIND {30123456} IN PHONE FIELDS ${RETURNING}`)).body.searchRecords,
    ).toEqual([]);
    expect((await query("SELECT Id FROM Contact WHERE LastName = 'new'")).body.totalSize).toBe(1);
  });
});

describe('fake Salesforce: SOQL', () => {
  it('finds active users by email, case-insensitively, and tasks by CallObject', async () => {
    const alice = sf.addUser({ Email: 'alice@example.com', IsActive: true });
    sf.addUser({ Email: 'bob@example.com', IsActive: false });
    const users = await query(
      "SELECT Id FROM User WHERE Email = 'Alice@Example.com' AND IsActive = true",
    );
    expect(users.body).toEqual({
      totalSize: 1,
      done: true,
      records: [{ attributes: { type: 'User', url: `${V}/sobjects/User/${alice}` }, Id: alice }],
    });
    expect(
      (await query("SELECT Id FROM User WHERE Email = 'bob@example.com' AND IsActive = true")).body
        .totalSize,
    ).toBe(0);
    await api('POST', `${V}/sobjects/Task`, { CallObject: "callrelay:x:it's" });
    const t = await query("SELECT Id FROM Task WHERE CallObject = 'callrelay:x:it\\'s'");
    expect(t.body.records).toHaveLength(1);
  });

  it('refuses an unescaped quote, unknown fields and objects', async () => {
    const r = await query("SELECT Id FROM Task WHERE CallObject = 'it's'");
    expect(r.status).toBe(400);
    expect(r.body[0].errorCode).toBe('MALFORMED_QUERY');
    expect((await query('SELECT Idd FROM Task')).body[0].errorCode).toBe('INVALID_FIELD');
    expect((await query('SELECT Id FROM Tasks')).body[0].errorCode).toBe('INVALID_TYPE');
  });
});

describe('fake Salesforce: limits and faults', () => {
  it('answers REQUEST_LIMIT_EXCEEDED 403 when the allocation is spent, and when forced', async () => {
    sf.api.used = sf.api.limit;
    const r = await query('SELECT Id FROM User');
    expect(r.status).toBe(403);
    expect(r.body).toEqual([
      { message: 'TotalRequests Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' },
    ]);
    expect(r.headers.get('sforce-limit-info')).toBe('api-usage=100000/100000');
    sf.api.used = 0;
    sf.forceRateLimit(1, 'concurrent');
    const c = await query('SELECT Id FROM User');
    expect(c.status).toBe(403);
    expect(c.body[0].message).toMatch(/^ConcurrentPerOrgLongTxn/);
    expect((await query('SELECT Id FROM User')).status).toBe(200);
  });

  it('fails with 503 before acting, loses answers after acting, and plays scripted faults', async () => {
    sf.failRate = 1;
    const r = await api('POST', `${V}/sobjects/Task`, { Subject: 'a' });
    expect(r.status).toBe(503);
    expect(r.body[0].errorCode).toBe('SERVER_UNAVAILABLE');
    expect(sf.tasks).toHaveLength(0);
    sf.failRate = 0;
    sf.lostRate = 1;
    await expect(api('POST', `${V}/sobjects/Task`, { Subject: 'b' })).rejects.toThrow();
    expect(sf.tasks.map((t) => t.Subject)).toEqual(['b']);
    // Reads are never lost (only writes, whose loss is the ambiguous case).
    expect((await query('SELECT Id FROM Task')).body.totalSize).toBe(1);
    sf.lostRate = 0;
    sf.faults.push({ match: 'PATCH', fault: { lostAnswer: true } });
    await expect(
      api('PATCH', `${V}/sobjects/Task/${sf.tasks[0]!.Id}`, { Subject: 'c' }),
    ).rejects.toThrow();
    expect(sf.tasks[0]!.Subject).toBe('c');
    expect(sf.requests.map((q) => `${q.method} ${q.status}`)).toEqual([
      'POST 503',
      'POST 0',
      'GET 200',
      'PATCH 0',
    ]);
  });

  it('answers 404 for an API version it does not have', async () => {
    expect((await api('GET', '/services/data/v99.0/query?q=SELECT+Id+FROM+User')).status).toBe(404);
  });
});
