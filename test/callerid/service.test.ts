// The caller-ID lookup (src/callerid/service.ts) against small CRM targets that count their
// searches and can be slow or fail: cache, one search per number, the answer budget, the order of
// targets, the echo of the asked number, and the wrong-country look-alike.

import type { CountryCode } from 'libphonenumber-js';
import { describe, expect, it, vi } from 'vitest';
import { Hono } from 'hono';
import { mountCallerRoutes } from '../../src/callerid/http.js';
import { CallerLookup, type CallerSource } from '../../src/callerid/service.js';
import { phoneE164 } from '../../src/domain/phone.js';
import { RelayError } from '../../src/domain/errors.js';
import { e164 as adapterE164 } from '../../src/ingest/helpers.js';
import { RelayMetrics } from '../../src/telemetry/metrics.js';
import { FakeCrm, gate, jana, lookAlike, type ContactTarget } from './fakes.js';

function world(
  targets: ContactTarget[],
  crm: Partial<NonNullable<CallerSource['crm']>> = {},
  source: Partial<CallerSource> = {},
) {
  const sources: CallerSource[] = [
    {
      name: 'pbx',
      defaultCountry: 'CZ',
      crm: { cacheSec: 300, answerWithinMs: 20_000, ...crm },
      ...source,
    },
    { name: 'plain' },
  ];
  const metrics = new RelayMetrics('test', { processMetrics: false });
  const lookup = new CallerLookup({ sources: () => sources, targets: () => targets, metrics });
  return { lookup, sources, metrics };
}

describe('phoneE164: what 3CX sends, read as a number', () => {
  it.each([
    ['+420774852629', 'CZ', '+420774852629'],
    ['00420774852629', 'CZ', '+420774852629'],
    [' 420774852629', 'CZ', '+420774852629'], // a "+" that arrived as a space
    ['420774852629', 'CZ', '+420774852629'], // digits without "+"
    ['420774852629', undefined, '+420774852629'],
    ['774852629', 'CZ', '+420774852629'], // national, the source's country
    ['+420 774 852 629', 'CZ', '+420774852629'],
    ['07400 123456', 'GB', '+447400123456'],
    ['abc', 'CZ', undefined],
    ['', 'CZ', undefined],
    ['12', 'CZ', undefined],
    // Possible but not valid: no E.164 at ring time, as none for the journaled call.
    ['+38199123456', 'CZ', undefined],
    ['38199123456', 'RS', undefined],
  ])("%j (%s) -> %s, as the adapters' $e164 reads it", (asked, country, e164) => {
    expect(phoneE164(asked, country)).toBe(e164);
    expect(adapterE164(asked, undefined, country as CountryCode | undefined)).toBe(e164);
  });
});

describe('CallerLookup by number', () => {
  it('asks the CRM once, then answers from the cache', async () => {
    const crm = new FakeCrm('hubspot', [jana]);
    const { lookup, metrics } = world([crm]);
    const first = await lookup.byNumber('pbx', '+420774852629');
    expect(first).toMatchObject({ result: 'hit', cached: false, target: 'hubspot' });
    expect(first.contacts[0]).toMatchObject({
      id: '101',
      firstName: 'Jana',
      lastName: 'Nováková',
      company: 'Acme s.r.o.',
      url: 'https://crm.example/contacts/101',
      entityType: 'Contacts',
      target: 'hubspot',
    });
    const again = await lookup.byNumber('pbx', '+420774852629');
    expect(again).toMatchObject({ result: 'hit', cached: true, target: 'hubspot' });
    expect(again.contacts).toEqual(first.contacts);
    // Nothing is asked.
    expect(crm.searches).toBe(1);
    const text = (await metrics.scrape()).body;
    expect(text).toContain(
      'callrelay_crm_lookups_total{source="pbx",kind="number",result="hit",cached="yes"} 1',
    );
    expect(text).toContain('callrelay_crm_lookup_seconds_count{source="pbx",kind="number"} 2');
  });

  it('makes one CRM search for 200 rings of the same number at once', async () => {
    const crm = new FakeCrm('hubspot', [jana]);
    const held = gate();
    crm.hold = held.wait;
    const { lookup } = world([crm]);
    const rings = Array.from({ length: 200 }, () => lookup.byNumber('pbx', '+420774852629'));
    held.open();
    const answers = await Promise.all(rings);
    expect(crm.searches).toBe(1);
    for (const a of answers) expect(a.contacts.map((c) => c.id)).toEqual(['101']);
  });

  it('answers "not found" when the CRM is too slow, and the late answer serves the next ring', async () => {
    const crm = new FakeCrm('hubspot', [jana]);
    const held = gate();
    crm.hold = held.wait;
    const { lookup } = world([crm], { answerWithinMs: 50 });
    const answered = crm.nextAnswer();
    const first = await lookup.byNumber('pbx', '+420774852629');
    expect(first).toMatchObject({ result: 'timeout', contacts: [], cached: false });
    held.open();
    await answered;
    const next = await lookup.byNumber('pbx', '+420774852629');
    expect(next).toMatchObject({ result: 'hit', cached: true });
    expect(next.contacts[0]?.id).toBe('101');
    expect(crm.searches).toBe(1);
  });

  it('answers "not found" when the CRM fails, and leaves it alone for a few seconds', async () => {
    const crm = new FakeCrm('hubspot', [jana]);
    crm.failWith = new Error('500 from the CRM');
    const { lookup } = world([crm]);
    expect(await lookup.byNumber('pbx', '+420774852629')).toMatchObject({
      result: 'error',
      contacts: [],
    });
    expect(await lookup.byNumber('pbx', '+420774852629')).toMatchObject({
      result: 'error',
      contacts: [],
      cached: true,
    });
    expect(crm.searches).toBe(1);
  });

  it('asks the targets in crm.lookup order until one knows; a failing one is passed over', async () => {
    const a = new FakeCrm('a', [{ ...jana, id: 'a-1' }]);
    const b = new FakeCrm('b', [{ ...jana, id: 'b-1' }]);
    const empty = new FakeCrm('empty');
    const broken = new FakeCrm('broken', [jana]);
    broken.failWith = new Error('down');
    const one = world([a, b, empty, broken], { lookup: ['b', 'a'] });
    expect((await one.lookup.byNumber('pbx', '+420774852629')).target).toBe('b');
    expect([a.searches, b.searches]).toEqual([0, 1]);
    const two = world([a, b, empty, broken], { lookup: ['empty', 'broken', 'a'] });
    const answer = await two.lookup.byNumber('pbx', '+420774852629');
    expect(answer).toMatchObject({ target: 'a', result: 'hit' });
    expect(answer.contacts[0]?.id).toBe('a-1');
    // Without crm.lookup: every target that can find contacts, in relay.yaml order.
    const three = world([empty, b, a]);
    expect((await three.lookup.byNumber('pbx', '+420774852629')).target).toBe('b');
  });

  it('puts the number as 3CX asked for it in the phone field that matched', async () => {
    const crm = new FakeCrm('pipedrive', [jana]);
    const { lookup } = world([crm]);
    const [c] = (await lookup.byNumber('pbx', '00420774852629')).contacts;
    expect(c).toMatchObject({
      phoneMobile: '00420774852629',
      phoneBusiness: '+420 222 000 320',
      phoneHome: '',
      phoneOther: '',
    });
    // The same caller asked differently: the cached card, echoed the new way.
    const [d] = (await lookup.byNumber('pbx', '774852629')).contacts;
    expect(d?.phoneMobile).toBe('774852629');
    // A "+" that arrived as a space is given back as the "+" 3CX sent.
    const [e] = (await lookup.byNumber('pbx', ' 420774852629')).contacts;
    expect(e?.phoneMobile).toBe('+420774852629');
    expect(crm.searches).toBe(1);
  });

  it('never answers with the look-alike from another country', async () => {
    const crm = new FakeCrm('hubspot', [lookAlike]);
    const { lookup } = world([crm]);
    expect(await lookup.byNumber('pbx', '+420774852629')).toMatchObject({
      result: 'miss',
      contacts: [],
    });
    // The look-alike's own number finds it.
    expect((await lookup.byNumber('pbx', '+48774852629')).contacts[0]?.id).toBe('202');
  });

  it('answers nothing for what is no number, and 404 for a source without crm:', async () => {
    const crm = new FakeCrm('hubspot', [jana]);
    const { lookup } = world([crm]);
    expect(await lookup.byNumber('pbx', 'anonymous')).toMatchObject({
      contacts: [],
      result: 'miss',
    });
    expect(crm.searches).toBe(0);
    await expect(lookup.byNumber('plain', '+420774852629')).rejects.toMatchObject({
      code: 'RELAY_ERR_CRM_NOT_CONFIGURED',
      status: 404,
    });
  });

  it('reads crm: at each question: a reload that changes the order asks again', async () => {
    const a = new FakeCrm('a', [{ ...jana, id: 'a-1' }]);
    const b = new FakeCrm('b', [{ ...jana, id: 'b-1' }]);
    const { lookup, sources } = world([a, b], { lookup: ['a'] });
    expect((await lookup.byNumber('pbx', '+420774852629')).target).toBe('a');
    sources[0]!.crm = { ...sources[0]!.crm!, lookup: ['b'] };
    expect((await lookup.byNumber('pbx', '+420774852629')).target).toBe('b');
  });
});

describe('CallerLookup search, email and create', () => {
  it('searches text of 2 characters or more; digits are also tried as a number', async () => {
    const crm = new FakeCrm('hubspot', [jana, lookAlike]);
    const { lookup } = world([crm]);
    expect((await lookup.search('pbx', 'j')).contacts).toEqual([]);
    expect(crm.searches).toBe(0);
    expect((await lookup.search('pbx', 'nová')).contacts.map((c) => c.id)).toEqual(['101']);
    const byDigits = await lookup.search('pbx', '774852629');
    expect(byDigits.contacts.map((c) => c.id)).toEqual(['101']);
    expect(byDigits.contacts[0]?.phoneMobile).toBe('774852629');
  });

  it('looks contacts up by email, whatever its case', async () => {
    const { lookup } = world([new FakeCrm('hubspot', [jana])]);
    expect((await lookup.byEmail('pbx', 'Jana@Acme.example')).contacts[0]?.id).toBe('101');
    expect((await lookup.byEmail('pbx', 'not-an-address')).contacts).toEqual([]);
  });

  it('creates only where crm.createIn says, and the new contact answers its number at once', async () => {
    const crm = new FakeCrm('hubspot');
    const off = world([crm]);
    const err = await off.lookup
      .create('pbx', { firstName: 'Eva', number: '+420777000111' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RelayError);
    expect(err).toMatchObject({ code: 'RELAY_ERR_CRM_CREATE_OFF' });
    expect((err as Error).message).toContain('crm.createIn');
    expect(crm.created).toEqual([]);

    const on = world([crm], { createIn: 'hubspot' });
    expect((await on.lookup.byNumber('pbx', '+420777000111')).result).toBe('miss');
    const made = await on.lookup.create('pbx', {
      firstName: 'Eva',
      lastName: 'Dvořáková',
      email: 'eva@example.com',
      number: '777000111',
    });
    expect(crm.created).toEqual([
      { firstName: 'Eva', lastName: 'Dvořáková', email: 'eva@example.com', e164: '+420777000111' },
    ]);
    expect(made.contacts[0]).toMatchObject({ firstName: 'Eva', phoneBusiness: '777000111' });
    // The cached miss is gone: the next ring asks the CRM, whose rule picks the one made first.
    const searches = crm.searches;
    const found = await on.lookup.byNumber('pbx', '+420777000111');
    expect(found).toMatchObject({ result: 'hit', cached: false });
    expect(found.contacts[0]?.phoneBusiness).toBe('+420777000111');
    expect(crm.searches).toBe(searches + 1);
  });

  it("leaves out a field 3CX sent as its unfilled variable, as the adapters' $given does", async () => {
    const crm = new FakeCrm('hubspot');
    const { lookup } = world([crm], { createIn: 'hubspot' });
    const app = new Hono();
    mountCallerRoutes(app, { lookup, tokenOf: () => 'source-token' });
    const res = await app.request('/hooks/pbx/crm/contacts', {
      method: 'POST',
      headers: { authorization: 'Bearer source-token', 'content-type': 'application/json' },
      body: JSON.stringify({
        firstName: 'Eva',
        lastName: '[Contact_LastName]',
        email: '[Contact::Email2]',
        number: '+420777000111',
      }),
    });
    expect(res.status).toBe(200);
    expect(crm.created).toEqual([{ firstName: 'Eva', e164: '+420777000111' }]);
  });

  it('makes no second contact for a number somebody has: that one is the answer', async () => {
    const crm = new FakeCrm('hubspot', [jana]);
    const { lookup } = world([crm], { createIn: 'hubspot', answerWithinMs: 50 });
    const answer = await lookup.create('pbx', { firstName: 'Jana B', number: '774852629' });
    expect(crm.created).toEqual([]);
    expect(answer).toMatchObject({ result: 'hit', target: 'hubspot' });
    expect(answer.contacts.map((c) => c.id)).toEqual(['101']);
    expect(answer.contacts[0]?.phoneMobile).toBe('774852629');
    const next = await lookup.byNumber('pbx', '+420774852629');
    expect(next.contacts.map((c) => c.id)).toEqual(['101']);
  });

  it('a search under way when a contact is made does not cache its miss over it', async () => {
    const crm = new FakeCrm('hubspot');
    const held = gate();
    crm.hold = held.wait;
    const { lookup } = world([crm], { createIn: 'hubspot', answerWithinMs: 20 });
    // The ring's search is held (a slow CRM): 3CX is told "not found" and offers "create".
    expect((await lookup.byNumber('pbx', '+420777000111')).result).toBe('timeout');
    crm.hold = undefined;
    await lookup.create('pbx', { firstName: 'Eva', number: '+420777000111' });
    expect(crm.created).toHaveLength(1);
    // The held search answers now, with the CRM as it was before the contact: "nobody".
    const answered = crm.nextAnswer();
    held.open();
    await answered;
    const next = await lookup.byNumber('pbx', '+420777000111');
    expect(next).toMatchObject({ result: 'hit' });
    expect(next.contacts[0]?.firstName).toBe('Eva');
  });

  it('a search for digits has one answer budget, the number lookup included', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const crm = new FakeCrm('hubspot', [jana]);
      crm.hold = gate().wait; // never answers
      const { lookup } = world([crm], { answerWithinMs: 1000 });
      let answer: Awaited<ReturnType<typeof lookup.search>> | undefined;
      void lookup.search('pbx', '774852629').then((a) => (answer = a));
      await vi.advanceTimersByTimeAsync(1000);
      await vi.advanceTimersByTimeAsync(10);
      // Both searches asked, and the answer given once the one budget is spent, not twice it.
      expect(crm.searches).toBe(2);
      expect(answer).toMatchObject({ result: 'timeout', contacts: [] });
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('CallerLookup for the agents’ page (anyNumber)', () => {
  it('asks the finding targets whatever the sources say, once, and answers from the cache', async () => {
    const slovak = new FakeCrm('pipedrive', [lookAlike]);
    const crm = new FakeCrm('hubspot', [jana]);
    // A relay whose sources have no crm: at all still names callers on the agents' page.
    const lookup = new CallerLookup({
      sources: () => [{ name: 'plain' }],
      targets: () => [slovak, crm],
    });
    const first = await lookup.anyNumber('+420774852629', 5000);
    expect(first.settled).toBe(true);
    expect(first.contact).toMatchObject({ firstName: 'Jana', target: 'hubspot' });
    expect(await lookup.anyNumber('+420774852629', 5000)).toEqual(first);
    expect(crm.searches).toBe(1);
    // The look-alike from another country is nobody.
    expect((await lookup.anyNumber('+48774852620', 5000)).contact).toBeUndefined();
  });

  it("reuses the contact 3CX's caller ID just found for the number: no second search", async () => {
    const crm = new FakeCrm('hubspot', [jana]);
    const { lookup } = world([crm]);
    const rang = await lookup.byNumber('pbx', '774852629');
    expect(rang).toMatchObject({ result: 'hit', target: 'hubspot' });
    const card = await lookup.anyNumber('+420774852629', 5000);
    expect(card).toMatchObject({
      settled: true,
      contact: { firstName: 'Jana', target: 'hubspot' },
    });
    expect(crm.searches).toBe(1);
  });

  it('answers "not yet" when the CRM is slow, and the contact once it has answered', async () => {
    const crm = new FakeCrm('hubspot', [jana]);
    const held = gate();
    crm.hold = held.wait;
    const lookup = new CallerLookup({ sources: () => [], targets: () => [crm] });
    expect(await lookup.anyNumber('+420774852629', 20)).toEqual({
      contact: undefined,
      settled: false,
    });
    const answered = crm.nextAnswer();
    held.open();
    await answered;
    crm.hold = undefined;
    expect((await lookup.anyNumber('+420774852629', 5000)).contact?.lastName).toBe('Nováková');
    expect(crm.searches).toBe(1);
  });
});
