// The fake Freshsales held to the behaviours a recipe relies on (docs/crm-notes.md H), over real
// HTTP, so that a recipe test failing on it means the recipe is wrong, not the fake.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeFreshsales } from './freshsales.js';

const KEY = 'sfg999666t673t7t82';

let fs: FakeFreshsales;
let me: number;
beforeEach(async () => {
  fs = await new FakeFreshsales().start();
  me = fs.addUser('alice@example.com', 'Alice', { apiKey: KEY });
});
afterEach(() => fs.close());

async function api(
  method: string,
  path: string,
  o: { auth?: string; body?: unknown; query?: Record<string, string> } = {},
) {
  const q = o.query ? `?${new URLSearchParams(o.query)}` : '';
  const res = await fetch(`${fs.url}${path}${q}`, {
    method,
    headers: {
      ...(o.auth === '' ? {} : { authorization: o.auth ?? `Token token=${KEY}` }),
      ...(o.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: JSON.parse(text) as any };
}

const call = (contact: number | string, change: Record<string, unknown> = {}) => ({
  phone_call: {
    call_direction: true,
    targetable_type: 'contact',
    targetable: { id: String(contact) },
    note: { description: 'Inbound call, 185 s\ncallrelay 3cx/abc_1' },
    ...change,
  },
});

describe('auth', () => {
  it('serves under /crm/sales/api/ and wants exactly "Token token=<key>"', async () => {
    expect(fs.url).toMatch(/\/crm\/sales\/api$/);
    expect((await api('GET', '/selector/owners')).status).toBe(200);
    for (const auth of ['', `Bearer ${KEY}`, `Token ${KEY}`, 'Token token=nope']) {
      const r = await api('GET', '/selector/owners', { auth });
      expect(r.status, auth).toBe(401);
    }
    expect(fs.used).toBe(1); // refused requests do not count
  });
});

describe('contacts by phone', () => {
  it('/lookup matches the stored text of field f exactly, answering contacts.contacts', async () => {
    const spaced = fs.addContact({ last_name: 'Spaced', mobile_number: '+49 30 1234567' });
    const national = fs.addContact({ last_name: 'National', work_number: '030 1234567' });
    const ids = async (q: string, f: string) =>
      (
        await api('GET', '/lookup', { query: { q, f, entities: 'contact' } })
      ).body.contacts.contacts.map((c: { id: number }) => c.id);
    expect(await ids('+49 30 1234567', 'mobile_number')).toEqual([spaced]);
    expect(await ids('+49301234567', 'mobile_number')).toEqual([]);
    expect(await ids('030 1234567', 'mobile_number')).toEqual([]);
    expect(await ids('030 1234567', 'work_number')).toEqual([national]);
    const r = await api('GET', '/lookup', {
      query: { q: '030 1234567', f: 'work_number', entities: 'contact' },
    });
    expect(r.body.contacts.contacts[0]).toMatchObject({
      id: national,
      display_name: 'National',
      mobile_number: null,
      created_at: expect.stringMatching(/Z$/),
    });
  });

  it('/lookup wants q, f and entities', async () => {
    const queries: Record<string, string>[] = [
      { f: 'email', entities: 'contact' },
      { q: 'x', entities: 'contact' },
      { q: 'x', f: 'email' },
      { q: 'x', f: 'phone', entities: 'contact' },
    ];
    for (const query of queries) {
      const r = await api('GET', '/lookup', { query });
      expect(r.status, JSON.stringify(query)).toBe(400);
      expect(r.body.errors).toMatchObject({ code: 400, message: [expect.any(String)] });
    }
  });

  it('/search is fuzzy and answers a bare array of typed items', async () => {
    const id = fs.addContact({ first_name: 'Dana', last_name: 'Berg', work_number: '030 1234567' });
    const byName = await api('GET', '/search', { query: { q: 'dan', include: 'contact' } });
    expect(byName.body).toEqual([expect.objectContaining({ id: String(id), type: 'contact' })]);
    const byDigits = await api('GET', '/search', { query: { q: '1234567', include: 'contact' } });
    expect(byDigits.body).toHaveLength(1);
    expect((await api('GET', '/search', { query: { q: 'zz', include: 'contact' } })).body).toEqual(
      [],
    );
  });

  it('seeds a flow number in mixed fields and forms with an older look-alike abroad', async () => {
    const a = fs.seedNumber('+4930901820');
    const b = fs.seedNumber('+4989123456');
    expect(fs.contacts.get(a)!.fields.mobile_number).toBe('+4930901820');
    expect(fs.contacts.get(b)!.fields.work_number).toBe('089123456');
    const alike = [...fs.contacts.values()].filter((c) => c.fields.last_name === 'Alike');
    expect(alike.map((c) => c.fields.mobile_number)).toEqual(['+44 30901820', '+44 89123456']);
    expect(alike.every((c) => c.createdAt < fs.contacts.get(a)!.createdAt)).toBe(true);
  });
});

describe('users', () => {
  it('/selector/owners lists users with ids and emails', async () => {
    const r = await api('GET', '/selector/owners');
    expect(r.body.users).toEqual([
      expect.objectContaining({ id: me, email: 'alice@example.com', is_active: true }),
    ]);
  });
});

describe('phone_calls', () => {
  it('logs a call: 201 with phone_call.id, and its note on the contact', async () => {
    const c = fs.addContact({ last_name: 'C', mobile_number: '+49 30 1234567' });
    const r = await api('POST', '/phone_calls', { body: call(c) });
    expect(r.status).toBe(201);
    expect(r.body.phone_call).toMatchObject({
      id: expect.any(Number),
      call_direction: true,
      note_id: expect.any(Number),
      user_id: me,
    });
    expect(r.body.notes[0]).toMatchObject({
      id: r.body.phone_call.note_id,
      description: 'Inbound call, 185 s\ncallrelay 3cx/abc_1',
      targetable_id: c,
    });
    expect(r.body.contacts).toEqual([{ id: c, partial: true }]);
    expect(fs.callsWith('callrelay 3cx/abc_1')).toHaveLength(1);
  });

  it('refuses a call without the wrapper, direction, contact type, known contact or note', async () => {
    const c = fs.addContact({ last_name: 'C' });
    const cases: [unknown, number][] = [
      [call(c).phone_call, 400],
      [call(c, { call_direction: 'incoming' }), 400],
      [call(c, { call_direction: undefined }), 400],
      [call(c, { targetable_type: 'Deal' }), 400],
      [call(c, { targetable: {} }), 400],
      [call(c, { note: {} }), 400],
      [call(c, { note: { description: ' ' } }), 400],
      [call(c, { call_duration: 185 }), 400],
      [call(c, { user_id: 1 }), 400],
      [call(99), 404],
    ];
    for (const [body, status] of cases) {
      const r = await api('POST', '/phone_calls', { body });
      expect(r.status, JSON.stringify(body)).toBe(status);
      expect(r.body.errors).toMatchObject({ code: status, message: [expect.any(String)] });
    }
    expect(fs.calls.size).toBe(0);
    expect(fs.notes.size).toBe(0);
  });

  it('has no read, list or update for phone_calls', async () => {
    const c = fs.addContact({ last_name: 'C' });
    const id = (await api('POST', '/phone_calls', { body: call(c) })).body.phone_call.id;
    expect((await api('GET', '/phone_calls')).status).toBe(404);
    expect((await api('GET', `/phone_calls/${id}`)).status).toBe(404);
    expect((await api('PUT', `/phone_calls/${id}`, { body: call(c) })).status).toBe(404);
    expect((await api('GET', `/contacts/${c}/activities`)).status).toBe(404);
  });

  it("finds a call's note on the contact with include=notes, after the lag", async () => {
    const c = fs.addContact({ last_name: 'C' });
    let clock = Date.now();
    fs.now = () => clock;
    fs.notesLagMs = 5000;
    await api('POST', '/phone_calls', { body: call(c) });
    const notes = async () =>
      (await api('GET', `/contacts/${c}`, { query: { include: 'notes' } })).body.notes;
    expect(await notes()).toEqual([]);
    clock += 5000;
    expect(await notes()).toEqual([
      expect.objectContaining({ description: expect.stringContaining('callrelay 3cx/abc_1') }),
    ]);
    expect((await api('GET', `/contacts/${c}`)).body.notes).toBeUndefined();
    expect((await api('GET', '/contacts/42', { query: { include: 'notes' } })).status).toBe(404);
  });
});

describe('contacts', () => {
  it('makes a contact from {contact}, answering {contact} with its id', async () => {
    const r = await api('POST', '/contacts', {
      body: { contact: { last_name: 'Unknown caller', mobile_number: '+4930901820' } },
    });
    expect(r.status).toBe(200);
    expect(r.body.contact).toMatchObject({ id: expect.any(Number), mobile_number: '+4930901820' });
    const found = await api('GET', '/lookup', {
      query: { q: '+4930901820', f: 'mobile_number', entities: 'contact' },
    });
    expect(found.body.contacts.contacts[0].id).toBe(r.body.contact.id);
    for (const body of [{ last_name: 'x' }, { contact: {} }, { contact: { nick: 'x' } }])
      expect((await api('POST', '/contacts', { body })).status, JSON.stringify(body)).toBe(400);
  });
});

describe('limits and faults', () => {
  it('allows 400 a minute and the hourly allowance for the whole account, then 429', async () => {
    let clock = Date.now();
    fs.now = () => clock;
    fs.addUser('bob@example.com', 'Bob', { apiKey: 'bobs-key' });
    fs.minuteLimit = 3;
    fs.hourlyLimit = 5;
    const statuses: number[] = [];
    for (const auth of ['a', 'b', 'a', 'b'])
      statuses.push(
        (
          await api('GET', '/selector/owners', {
            auth: `Token token=${auth === 'a' ? KEY : 'bobs-key'}`,
          })
        ).status,
      );
    expect(statuses).toEqual([200, 200, 200, 429]);
    clock += 61_000;
    expect((await api('GET', '/selector/owners')).status).toBe(200);
    expect((await api('GET', '/selector/owners')).status).toBe(200);
    const over = await api('GET', '/selector/owners');
    expect(over.status).toBe(429); // the hour's 5 are used
    expect(over.headers.get('retry-after')).toBeNull();
    expect(over.body.errors.code).toBe(429);
    clock += 3_600_000;
    expect((await api('GET', '/selector/owners')).status).toBe(200);
    expect(fs.tooManyRequests).toBe(2);
  });

  it('fails a share of requests with 500 or 503, repeatably for a seed', async () => {
    fs.failRate = 0.5;
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await api('GET', '/selector/owners')).status);
    expect(statuses.filter((s) => s === 500 || s === 503).length).toBeGreaterThan(5);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(5);
  });

  it('loses answers: the call and its note are made, the connection is destroyed', async () => {
    const c = fs.addContact({ last_name: 'C' });
    fs.faults.push({ match: 'POST /phone_calls', fault: { lose: true } });
    await expect(api('POST', '/phone_calls', { body: call(c) })).rejects.toThrow();
    expect(fs.calls.size).toBe(1);
    expect(fs.notes.size).toBe(1);
    fs.lostRate = 1;
    await expect(api('POST', '/phone_calls', { body: call(c) })).rejects.toThrow();
    expect(fs.calls.size).toBe(2);
    expect(fs.count('POST', '/crm/sales/api/phone_calls')).toBe(0); // no answer was sent
    expect(fs.requests.filter((r) => r.method === 'POST')).toHaveLength(2);
  });
});
