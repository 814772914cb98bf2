// HubSpot contacts for a phone system's caller lookup, against the fake HubSpot over HTTP: the
// card of the contact with the number (and its record page), never a look-alike from another
// country, the contact made first first, text and email search, a contact made from the phone
// client, CRM errors thrown, and the search limit kept.

import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { silentLogger } from '../../telemetry/log.js';
import { runFlow } from '../../flows.js';
import { loadAdapterDir } from '../../ingest/adapter.js';
import { ADAPTERS, goldenCases, tempDir, writeRelayYaml } from '../../../test/support.js';
import type { DeliveryContext } from '../types.js';
import { DeliveryError } from '../kit/errors.js';
import type { Target } from '../types.js';
import { hubspotSpec } from './spec.js';
import { FakeHubspot } from './fake.js';
import { create } from './target.js';
import type { HubspotConfig } from './spec.js';

const TOKEN = 'pat-eu1-contacts-test-0000';
const SEARCH = '/crm/v3/objects/contacts/search';

describe('HubSpot contacts for caller lookups', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function open(extra = ''): Promise<{ hs: FakeHubspot; t: Target }> {
    const hs = await new FakeHubspot(TOKEN).start();
    cleanup.push(() => hs.close());
    const file = writeRelayYaml(tempDir(), {
      more: `targets:\n  - name: hubspot\n    type: hubspot\n    token: ${TOKEN}\n    baseUrl: ${hs.url}\n${extra}`,
    });
    const cfg = loadConfig(file, {}).targets.find((x) => x.name === 'hubspot')!;
    const t = create(cfg as unknown as HubspotConfig, { log: silentLogger, recordings: {} });
    cleanup.push(() => t.close());
    return { hs, t };
  }

  /** The caller, a look-alike from Slovenia with the same national digits, and a stranger. */
  function seed(hs: FakeHubspot): { caller: string; lookAlike: string } {
    const lookAlike = hs.addContact(
      { firstname: 'Ana', lastname: 'Novak', phone: '+386 62 975 9787', email: 'ana@example.si' },
      { createdAt: '2019-01-01T00:00:00.000Z' },
    );
    const caller = hs.addContact(
      {
        firstname: 'Marko',
        lastname: 'Petrović',
        company: 'Acme d.o.o.',
        email: 'marko@acme.rs',
        phone: '+381 62 975 9787',
        mobilephone: '+381 64 111 2222',
      },
      { createdAt: '2021-05-01T08:00:00.000Z' },
    );
    hs.addContact(
      {
        firstname: 'Jana',
        lastname: 'Dvořák',
        phone: '+420 774 852 629',
        email: 'jana@example.cz',
      },
      { createdAt: '2020-01-01T00:00:00.000Z' },
    );
    return { caller, lookAlike };
  }

  it('gives the card of the contact with the number, with its record page, never the look-alike', async () => {
    const { hs, t } = await open('    portalId: 139000\n    appUrl: https://app-eu1.hubspot.com\n');
    const { caller } = seed(hs);
    const cards = await t.findContacts!({ e164: '+381629759787', limit: 5 });
    expect(cards).toEqual([
      {
        id: caller,
        firstName: 'Marko',
        lastName: 'Petrović',
        company: 'Acme d.o.o.',
        email: 'marko@acme.rs',
        phones: [
          { kind: 'business', number: '+381 62 975 9787' },
          { kind: 'mobile', number: '+381 64 111 2222' },
        ],
        url: `https://app-eu1.hubspot.com/contacts/139000/record/0-1/${caller}`,
        entityType: 'contact',
        createdAt: '2021-05-01T08:00:00.000Z',
      },
    ]);
    // The search found the look-alike too (same calculated number): it was dropped by the check.
    expect(hs.count('POST', SEARCH)).toBe(1);
    // A mobile number finds its contact as well; a number nobody has finds nobody.
    expect((await t.findContacts!({ e164: '+381641112222', limit: 5 })).map((c) => c.id)).toEqual([
      caller,
    ]);
    expect(await t.findContacts!({ e164: '+38162975978', limit: 5 })).toEqual([]);
  });

  it('learns the account id once from the account-info API when relay.yaml has no portalId', async () => {
    const { hs, t } = await open();
    const { caller } = seed(hs);
    const [card] = await t.findContacts!({ e164: '+381629759787', limit: 5 });
    expect(card!.url).toBe(`https://app.hubspot.com/contacts/${hs.portalId}/record/0-1/${caller}`);
    await t.findContacts!({ email: 'marko@acme.rs', limit: 5 });
    expect(hs.count('GET', '/account-info/v3/details')).toBe(1);
  });

  it('answers without a link when the token may not read the account, and asks again later only', async () => {
    const { hs, t } = await open();
    hs.scopes.delete('oauth');
    seed(hs);
    const [card] = await t.findContacts!({ e164: '+381629759787', limit: 5 });
    expect(card!.url).toBeNull();
    await t.findContacts!({ e164: '+381629759787', limit: 5 });
    expect(hs.count('GET', '/account-info/v3/details')).toBe(1);
  });

  it('puts the contact made first first when several share the number', async () => {
    const { hs, t } = await open('    portalId: 139000\n');
    const later = hs.addContact(
      { firstname: 'Office', lastname: 'Reception', phone: '+420 774 852 629' },
      { createdAt: '2023-01-01T00:00:00.000Z' },
    );
    const first = hs.addContact(
      { firstname: 'Jana', lastname: 'Dvořák', mobilephone: '00420774852629' },
      { createdAt: '2018-01-01T00:00:00.000Z' },
    );
    const national = hs.addContact(
      { firstname: 'Petr', lastname: 'Malý', phone: '774 852 629' },
      { createdAt: '2020-06-01T00:00:00.000Z' },
    );
    const cards = await t.findContacts!({ e164: '+420774852629', limit: 5 });
    expect(cards.map((c) => c.id)).toEqual([first, national, later]);
    expect((await t.findContacts!({ e164: '+420774852629', limit: 1 })).map((c) => c.id)).toEqual([
      first,
    ]);
  });

  it('searches by text (the search query) and by email (exact)', async () => {
    const { hs, t } = await open('    portalId: 139000\n');
    const { caller } = seed(hs);
    expect((await t.findContacts!({ text: 'petrović', limit: 5 })).map((c) => c.id)).toEqual([
      caller,
    ]);
    expect((await t.findContacts!({ text: 'Acme', limit: 5 })).map((c) => c.id)).toEqual([caller]);
    expect(await t.findContacts!({ text: 'nobody here', limit: 5 })).toEqual([]);
    const [byEmail] = await t.findContacts!({ email: 'MARKO@acme.rs', limit: 5 });
    expect(byEmail).toMatchObject({ id: caller, firstName: 'Marko', email: 'marko@acme.rs' });
    expect(await t.findContacts!({ email: 'marko@acme.r', limit: 5 })).toEqual([]);
    expect(hs.count('POST', SEARCH)).toBe(5);
  });

  it('makes exactly one contact from the phone client, which a lookup then finds', async () => {
    const { hs, t } = await open('    portalId: 139000\n');
    const before = hs.contacts.size;
    const made = await t.addContact!({
      firstName: 'Nova',
      lastName: 'Stranka',
      email: 'nova@example.cz',
      e164: '+420601234567',
    });
    expect(hs.contacts.size).toBe(before + 1);
    expect(hs.contacts.get(made.id)!.properties).toMatchObject({
      firstname: 'Nova',
      lastname: 'Stranka',
      email: 'nova@example.cz',
      phone: '+420601234567',
    });
    expect(made).toMatchObject({
      firstName: 'Nova',
      lastName: 'Stranka',
      url: `https://app.hubspot.com/contacts/139000/record/0-1/${made.id}`,
      entityType: 'contact',
    });
    const found = await t.findContacts!({ e164: '+420601234567', limit: 5 });
    expect(found.map((c) => c.id)).toEqual([made.id]);
  });

  it("a contact made from the phone client is a later call's contact at once", async () => {
    const { hs, t } = await open('    portalId: 139000\n');
    const { e164, ctx } = await goldenCall();
    // Nobody has the number yet: the delivery remembers the miss.
    expect((await t.deliver(ctx())).contactId).toBeNull();
    const made = await t.addContact!({ firstName: 'Jana', e164 });
    // The next call's delivery finds the new contact instead of the remembered miss.
    expect((await t.deliver(ctx())).contactId).toBe(made.id);
    expect(hs.contacts.size).toBe(1);
  });

  it('throws when HubSpot fails (the caller answers "not found")', async () => {
    const { hs, t } = await open('    portalId: 139000\n');
    seed(hs);
    hs.scopes.delete('crm.objects.contacts.read');
    const err = await t.findContacts!({ e164: '+381629759787', limit: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeliveryError);
    expect((err as DeliveryError).status).toBe(403);
    hs.scopes.add('crm.objects.contacts.read');
    hs.failing = {
      status: 400,
      body: { status: 'error', message: 'bad', category: 'VALIDATION_ERROR' },
    };
    await expect(t.findContacts!({ text: 'Marko', limit: 5 })).rejects.toThrow(/bad/);
  });

  it("keeps HubSpot's search limit: a burst of lookups is paced, never answered 429", async () => {
    const { hs, t } = await open(
      '    portalId: 139000\n    searchRateLimit: { requests: 2, perSeconds: 1 }\n',
    );
    // The relay keeps a little under the limit: its clock and HubSpot's are not the same.
    hs.limit.searchSecondly = 3;
    seed(hs);
    const numbers = [
      '+381629759787',
      '+381641112222',
      '+420774852629',
      '+386629759787',
      '+4930123456',
    ];
    const answers = await Promise.all(numbers.map((e164) => t.findContacts!({ e164, limit: 5 })));
    expect(answers.map((a) => a.length)).toEqual([1, 1, 1, 1, 0]);
    expect(hs.count('POST', SEARCH)).toBe(5);
    expect(hs.tooManyRequests).toBe(0);
  });

  /** A journaled 3CX call, and a delivery context for it. */
  async function goldenCall(): Promise<{ e164: string; ctx: () => DeliveryContext }> {
    const golden = goldenCases().find((c) => c.flow.name === '3cx-v1-incoming-answered')!;
    const adapter = loadAdapterDir(ADAPTERS).get(golden.adapter)!;
    const [record] = (await runFlow(golden.flow, adapter, { defaultCountry: 'CZ' })).calls;
    const ctx = (): DeliveryContext => ({
      job: {
        id: 1,
        target: 'hubspot',
        source: golden.adapter,
        callId: record!.callId,
        rev: 1,
        attempts: 0,
        firstFailedAt: null,
        remote: {},
        record: record!,
      },
      save: () => Promise.resolve(),
      log: silentLogger,
    });
    return { e164: record!.externalE164!, ctx };
  }

  it("a ring's search serves the call's delivery: one search per caller", async () => {
    const { hs, t } = await open('    portalId: 139000\n');
    const { e164, ctx } = await goldenCall();
    const known = hs.addContact({ firstname: 'Jana', lastname: 'Dvořák', phone: e164 });
    const [card] = await t.findContacts!({ e164, limit: 1 });
    expect(card?.id).toBe(known);
    const searches = hs.count('POST', SEARCH);
    expect((await t.deliver(ctx())).contactId).toBe(known);
    expect(hs.count('POST', SEARCH)).toBe(searches);
  });

  it('fails a lookup at once that would wait long for a search slot', async () => {
    const { hs, t } = await open(
      '    portalId: 139000\n    searchRateLimit: { requests: 1, perSeconds: 30 }\n',
    );
    seed(hs);
    await t.findContacts!({ e164: '+381629759787', limit: 1 });
    const err = await t.findContacts!({ text: 'Marko', limit: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeliveryError);
    expect((err as DeliveryError).retryable).toBe(true);
    expect(hs.count('POST', SEARCH)).toBe(1);
  });

  it('says it can find and make contacts', () => {
    expect(hubspotSpec.contacts!({})).toEqual({ find: true, create: true });
  });
});
