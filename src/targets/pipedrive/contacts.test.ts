// Pipedrive persons for a phone system's caller lookup, against the fake Pipedrive over HTTP: the
// card of the person with the number (and its page), never a look-alike from another country,
// the person made first first, text and email search, a person made from the phone client, CRM
// errors thrown, and the search window kept.

import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { silentLogger } from '../../telemetry/log.js';
import { tempDir, writeRelayYaml } from '../../../test/support.js';
import { DeliveryError } from '../kit/errors.js';
import type { PhoneLookup } from '../kit/phone-lookup.js';
import type { Target } from '../types.js';
import { FakePipedrive } from './fake.js';
import { pipedriveSpec, type PipedriveConfig } from './spec.js';
import { create } from './target.js';

const TOKEN = 'pd-contacts-test-token-0000';

describe('Pipedrive persons for caller lookups', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function open(extra = ''): Promise<{ pd: FakePipedrive; t: Target }> {
    const pd = await new FakePipedrive(TOKEN).start();
    cleanup.push(() => pd.close());
    const file = writeRelayYaml(tempDir(), {
      more: `targets:\n  - name: pipedrive\n    type: pipedrive\n    token: ${TOKEN}\n    baseUrl: ${pd.url}\n${extra}`,
    });
    const cfg = loadConfig(file, {}).targets.find((x) => x.name === 'pipedrive')!;
    const t = create(cfg as unknown as PipedriveConfig, { log: silentLogger, recordings: {} });
    cleanup.push(() => t.close());
    return { pd, t };
  }

  /** The caller, an older look-alike from Slovakia with the same national digits, a stranger. */
  function seed(pd: FakePipedrive): { caller: number; lookAlike: number } {
    const lookAlike = pd.addPerson('Zuzana Kováčová', ['+421 774 852 629'], {
      emails: ['zuzana@example.sk'],
      addTime: '2019-01-01T00:00:00Z',
    });
    const caller = pd.addPerson('Jana Dvořák', ['+420 774 852 629', '+420 601 111 222'], {
      labels: ['work', 'mobile'],
      emails: ['jana@acme.cz', 'jana.private@example.cz'],
      org: 'Acme s.r.o.',
      addTime: '2021-05-01T08:00:00Z',
    });
    pd.addPerson('Petr Malý', ['+420 602 333 444'], { emails: ['petr@example.cz'] });
    return { caller, lookAlike };
  }

  it('gives the card of the person with the number, with its page, never the look-alike', async () => {
    const { pd, t } = await open('    companyDomain: acme-sales\n');
    const { caller } = seed(pd);
    const cards = await t.findContacts!({ e164: '+420774852629', limit: 5 });
    expect(cards).toEqual([
      {
        id: String(caller),
        firstName: 'Jana',
        lastName: 'Dvořák',
        company: 'Acme s.r.o.',
        email: 'jana@acme.cz',
        phones: [
          { kind: 'business', number: '+420 774 852 629' },
          { kind: 'mobile', number: '+420 601 111 222' },
        ],
        url: `https://acme-sales.pipedrive.com/person/${caller}`,
        entityType: 'person',
        createdAt: '2021-05-01T08:00:00Z',
      },
    ]);
    // One exact search per number form (E.164, national, digits), and one read of the person.
    expect(pd.personSearches).toBe(3);
    expect(pd.count('GET', `/api/v2/persons/${caller}`)).toBe(1);
    // The Slovak number finds its own person only.
    const sk = await t.findContacts!({ e164: '+421774852629', limit: 5 });
    expect(sk.map((c) => c.lastName)).toEqual(['Kováčová']);
    expect(await t.findContacts!({ e164: '+420774852628', limit: 5 })).toEqual([]);
  });

  it("learns the company domain from the token's user when relay.yaml has none", async () => {
    const { pd, t } = await open();
    const { caller } = seed(pd);
    const [card] = await t.findContacts!({ e164: '+420774852629', limit: 5 });
    expect(card!.url).toBe(`https://acme.pipedrive.com/person/${caller}`);
    await t.findContacts!({ email: 'jana@acme.cz', limit: 5 });
    expect(pd.count('GET', '/api/v1/users/me')).toBe(1);
  });

  it('puts the person made first first when several share the number', async () => {
    const { pd, t } = await open('    companyDomain: acme\n');
    const founder = pd.addPerson('Eva Founder', ['774 852 629']);
    const reception = pd.addPerson('Reception', ['+420 774 852 629']);
    pd.addPerson('Look-alike', ['+421 774 852 629']);
    const sales = pd.addPerson('Petr Sales', ['420774852629']);
    const cards = await t.findContacts!({ e164: '+420774852629', limit: 5 });
    expect(cards.map((c) => c.id)).toEqual([founder, reception, sales].map(String));
    expect(cards[0]).toMatchObject({ firstName: 'Eva', lastName: 'Founder' });
    // The others come from the search alone: the whole name, the numbers as stored.
    expect(cards[1]).toMatchObject({ lastName: 'Reception', phones: [{ kind: 'other' }] });
    const one = await t.findContacts!({ e164: '+420774852629', limit: 1 });
    expect(one.map((c) => c.id)).toEqual([String(founder)]);
  });

  it('searches by text (name, email, phone) and by email (exact)', async () => {
    const { pd, t } = await open('    companyDomain: acme\n');
    const { caller } = seed(pd);
    const byName = await t.findContacts!({ text: 'dvořák', limit: 5 });
    expect(byName.map((c) => c.id)).toEqual([String(caller)]);
    expect(byName[0]).toMatchObject({ lastName: 'Jana Dvořák', company: 'Acme s.r.o.' });
    expect((await t.findContacts!({ text: '601 111', limit: 5 })).map((c) => c.id)).toEqual([
      String(caller),
    ]);
    expect(await t.findContacts!({ text: 'j', limit: 5 })).toEqual([]);
    const [byEmail] = await t.findContacts!({ email: 'Jana.Private@example.cz', limit: 5 });
    expect(byEmail).toMatchObject({ id: String(caller), email: 'jana@acme.cz' });
    expect(await t.findContacts!({ email: 'jana@acme.c', limit: 5 })).toEqual([]);
    // The one-character text asked nothing of Pipedrive.
    expect(pd.personSearches).toBe(4);
  });

  it('makes exactly one person from the phone client, which a lookup then finds', async () => {
    const { pd, t } = await open('    companyDomain: acme\n');
    const made = await t.addContact!({
      firstName: 'Nova',
      lastName: 'Stranka',
      email: 'nova@example.cz',
      e164: '+420601234567',
    });
    expect(pd.persons.size).toBe(1);
    expect(pd.persons.get(Number(made.id))).toMatchObject({
      name: 'Nova Stranka',
      phones: ['+420601234567'],
      emails: ['nova@example.cz'],
    });
    expect(made).toMatchObject({
      firstName: 'Nova',
      lastName: 'Stranka',
      email: 'nova@example.cz',
      url: `https://acme.pipedrive.com/person/${made.id}`,
      entityType: 'person',
    });
    const found = await t.findContacts!({ e164: '+420601234567', limit: 5 });
    expect(found.map((c) => c.id)).toEqual([made.id]);
  });

  it('throws when Pipedrive fails (the caller answers "not found")', async () => {
    const { pd, t } = await open('    companyDomain: acme\n');
    seed(pd);
    pd.faults.push({
      match: 'GET /api/v2/persons/search',
      fault: { status: 400, body: { success: false, error: 'bad search' } },
    });
    const err = await t.findContacts!({ e164: '+420774852629', limit: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeliveryError);
    expect((err as DeliveryError).message).toMatch(/bad search/);
  });

  it("keeps Pipedrive's search window: a burst of lookups is paced, never answered 429", async () => {
    const { pd, t } = await open(
      '    companyDomain: acme\n    searchRateLimit: { requests: 5, perSeconds: 2 }\n',
    );
    // The relay keeps a little under the limit: its clock and Pipedrive's are not the same.
    pd.searchLimit = 6;
    seed(pd);
    const numbers = ['+420774852629', '+421774852629', '+420601111222', '+420602333444'];
    const answers = await Promise.all(numbers.map((e164) => t.findContacts!({ e164, limit: 5 })));
    expect(answers.map((a) => a.length)).toEqual([1, 1, 1, 1]);
    expect(pd.personSearches).toBe(12);
    expect(pd.tooManyRequests).toBe(0);
  });

  it("answers the search's card when reading the chosen person fails", async () => {
    const { pd, t } = await open('    companyDomain: acme\n');
    const { caller } = seed(pd);
    pd.faults.push({
      match: `GET /api/v2/persons/${caller}`,
      fault: { status: 404, body: { success: false, error: 'Person not found' } },
    });
    const cards = await t.findContacts!({ e164: '+420774852629', limit: 5 });
    expect(cards).toHaveLength(1);
    expect(cards[0]).toMatchObject({
      id: String(caller),
      lastName: 'Jana Dvořák',
      company: 'Acme s.r.o.',
      url: `https://acme.pipedrive.com/person/${caller}`,
    });
    expect(pd.count('GET', `/api/v2/persons/${caller}`)).toBe(1);
  });

  it("a ring's search serves the call's delivery: one search per caller", async () => {
    const { pd, t } = await open('    companyDomain: acme\n');
    const { caller } = seed(pd);
    await t.findContacts!({ e164: '+420774852629', limit: 1 });
    const searches = pd.personSearches;
    // The lookup a delivery makes for the call's person (target.ts).
    const delivery = (t as unknown as { persons: PhoneLookup<number> }).persons;
    expect(await delivery.find('+420774852629')).toEqual({ id: caller, others: [] });
    expect(pd.personSearches).toBe(searches);
    // And the other way round: a number a delivery looked up first costs the ring nothing.
    expect((await delivery.find('+420602333444'))?.id).toBeDefined();
    const after = pd.personSearches;
    expect(await t.findContacts!({ e164: '+420602333444', limit: 1 })).toHaveLength(1);
    expect(pd.personSearches).toBe(after);
    // A person made from the phone client is found at once, by both.
    const made = await t.addContact!({ firstName: 'Nova', e164: '+420601234567' });
    expect((await delivery.find('+420601234567'))?.id).toBe(Number(made.id));
  });

  it("fails a lookup at once that would wait long for a search slot, and leaves deliveries' alone", async () => {
    const { pd, t } = await open(
      '    companyDomain: acme\n    searchRateLimit: { requests: 3, perSeconds: 30 }\n',
    );
    seed(pd);
    // The window's searches: a delivery's (one per form of the number).
    const delivery = (t as unknown as { persons: PhoneLookup<number> }).persons;
    await delivery.find('+420602333444');
    const err = await t.findContacts!({ text: 'dvořák', limit: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeliveryError);
    expect((err as DeliveryError).retryable).toBe(true);
    expect(pd.count('GET', '/api/v2/persons/search')).toBe(3);
  });

  it('says it can find and make persons', () => {
    expect(pipedriveSpec.contacts!({})).toEqual({ find: true, create: true });
  });
});
