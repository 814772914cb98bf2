// The shipped Salesforce and Zoho CRM recipes as a phone system's caller lookup asks them
// (lookups.contact.card), against their fakes over HTTP with OAuth: the card of the record with
// the number and its page, never a look-alike from another country, the record made first first,
// a CRM error thrown, the search window kept; Freshsales' search ends at the first number form
// that finds the caller (untilFound: each request counts against its hourly allowance); and what
// contacts(config) says of a recipe.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { SHIPPED_RECIPES } from '../../src/targets/rest/recipe.js';
import { restSpec } from '../../src/targets/rest/spec.js';
import { create } from '../../src/targets/rest/target.js';
import type { RestConfig } from '../../src/targets/rest/spec.js';
import { DeliveryError } from '../../src/targets/kit/errors.js';
import type { Target } from '../../src/targets/types.js';
import { silentLogger } from '../../src/telemetry/log.js';
import { FakeFreshsales } from '../fakes/freshsales.js';
import { FakeSalesforce } from '../fakes/salesforce.js';
import { FakeZoho } from '../fakes/zoho.js';
import { tempDir, writeRelayYaml } from '../support.js';

const SF_CLIENT = { id: '3MVG9-callrelay-test', secret: 'sf-client-secret-0123456789' };
const ZOHO_CLIENT = {
  clientId: '1000.RELAYTESTCLIENT0123',
  clientSecret: 'zoho-test-secret-0123456789abcdef',
  refreshToken: '1000.zoho-test-refresh.0123456789abcdef',
};
const SF_SEARCH = '/services/data/v62.0/search';

describe('recipe targets answer caller lookups', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  function target(entry: string): { t: Target; cfg: RestConfig } {
    const file = writeRelayYaml(tempDir(), { more: `targets:\n${entry}` });
    const cfg = loadConfig(file, {}).targets[0] as unknown as RestConfig;
    const t = create(cfg, { log: silentLogger, recordings: {} });
    cleanup.push(() => t.close());
    return { t, cfg };
  }

  async function salesforce(rate = '400'): Promise<{ sf: FakeSalesforce; t: Target }> {
    const sf = await new FakeSalesforce(SF_CLIENT).start();
    cleanup.push(() => sf.close());
    const { t } = target(
      `  - name: salesforce\n    type: rest\n    recipe: salesforce\n` +
        `    vars: { domain: acme, loginUrl: "${sf.url}" }\n` +
        `    auth: { clientId: "${SF_CLIENT.id}", clientSecret: "${SF_CLIENT.secret}" }\n` +
        `    searchRateLimit: { requests: ${rate}, perSeconds: 1 }\n`,
    );
    return { sf, t };
  }

  async function zoho(): Promise<{ crm: FakeZoho; t: Target }> {
    const crm = await new FakeZoho(ZOHO_CLIENT).start();
    cleanup.push(() => crm.close());
    const { t } = target(
      `  - name: zoho\n    type: rest\n    recipe: zoho-crm\n` +
        `    vars: { org: org20071234567, dataCentre: eu, accountsUrl: "${crm.url}" }\n` +
        `    auth: { clientId: "${ZOHO_CLIENT.clientId}", clientSecret: "${ZOHO_CLIENT.clientSecret}", refreshToken: "${ZOHO_CLIENT.refreshToken}" }\n` +
        `    searchRateLimit: { requests: 200, perSeconds: 1 }\n`,
    );
    return { crm, t };
  }

  it('Salesforce: the card of the Contact or Lead with the number, with its page, never a look-alike', async () => {
    const { sf, t } = await salesforce();
    // Older look-alikes of other countries that the national-number search also finds.
    sf.addContact(
      { FirstName: 'Ana', LastName: 'Novak', Phone: '+386 62 975 9787' },
      '2019-01-01T00:00:00.000Z',
    );
    sf.addLead({ LastName: 'Far', MobilePhone: '+44 62 975 9787' }, '2019-01-02T00:00:00.000Z');
    const contact = sf.addContact(
      {
        FirstName: 'Marko',
        LastName: 'Petrović',
        Email: 'marko@acme.rs',
        Phone: '+381 62 975 9787',
        MobilePhone: '+381 64 111 2222',
      },
      '2021-05-01T08:00:00.000Z',
    );
    const lead = sf.addLead(
      {
        FirstName: 'Mila',
        LastName: 'Jović',
        Company: 'Jović d.o.o.',
        MobilePhone: '062 975 9787',
      },
      '2022-01-01T00:00:00.000Z',
    );
    const cards = await t.findContacts!({ e164: '+381629759787', limit: 5 });
    expect(cards.map((c) => c.id)).toEqual([contact, lead]);
    expect(cards[0]).toMatchObject({
      firstName: 'Marko',
      lastName: 'Petrović',
      email: 'marko@acme.rs',
      phones: [
        { kind: 'business', number: '+381 62 975 9787' },
        { kind: 'mobile', number: '+381 64 111 2222' },
      ],
      url: `https://acme.lightning.force.com/lightning/r/Contact/${contact}/view`,
      entityType: 'Contact',
    });
    expect(cards[0]!.createdAt).toMatch(/^2021-05-01T08:00:00/);
    expect(cards[1]).toMatchObject({
      firstName: 'Mila',
      company: 'Jović d.o.o.',
      url: `https://acme.lightning.force.com/lightning/r/Lead/${lead}/view`,
      entityType: 'Lead',
    });
    // E.164 and the national number: one SOSL search each.
    expect(sf.count('GET', SF_SEARCH)).toBe(2);
    expect((await t.findContacts!({ e164: '+381629759787', limit: 1 })).map((c) => c.id)).toEqual([
      contact,
    ]);
    expect(await t.findContacts!({ e164: '+38163000111', limit: 5 })).toEqual([]);
    // The phone client's search: names (a Lead's company too), and email, exact.
    expect((await t.findContacts!({ text: 'petrov', limit: 5 })).map((c) => c.id)).toEqual([
      contact,
    ]);
    expect((await t.findContacts!({ text: 'Jović d.o.o.', limit: 5 })).map((c) => c.id)).toEqual([
      lead,
    ]);
    const [byEmail] = await t.findContacts!({ email: 'Marko@Acme.rs', limit: 5 });
    expect(byEmail).toMatchObject({ id: contact, firstName: 'Marko', entityType: 'Contact' });
    expect(await t.findContacts!({ email: 'marko@acme', limit: 5 })).toEqual([]);
    expect(await t.findContacts!({ text: 'nobody', limit: 5 })).toEqual([]);
    // SOSL's email fields include custom ones the recipe does not read: a record found by one
    // shows no email, or another, and is not the contact asked about.
    sf.addLead({ LastName: 'Plain', Company: 'Acme', Private_Email__c: 'marko@acme.rs' });
    sf.addContact({ LastName: 'Other', Email: 'o@acme.rs', Private_Email__c: 'marko@acme.rs' });
    expect((await t.findContacts!({ email: 'marko@acme.rs', limit: 5 })).map((c) => c.id)).toEqual([
      contact,
    ]);
  });

  it('Zoho CRM: the card of the Contact or Lead with the number, never a look-alike', async () => {
    const { crm, t } = await zoho();
    const at = (iso: string): number => Date.parse(iso);
    crm.addRecord(
      'Contacts',
      { Last_Name: 'Novak', Phone: '+386 62 975 9787' },
      at('2019-01-01T00:00:00Z'),
    );
    const lead = crm.addRecord(
      'Leads',
      { First_Name: 'Mila', Last_Name: 'Jović', Company: 'Jović d.o.o.', Mobile: '+381629759787' },
      at('2022-01-01T00:00:00Z'),
    );
    const contact = crm.addRecord(
      'Contacts',
      {
        First_Name: 'Marko',
        Last_Name: 'Petrović',
        Email: 'marko@acme.rs',
        Account_Name: { name: 'Acme d.o.o.', id: '4150868000000224005' },
        Phone: '+381 62 975 9787',
        Mobile: '+381 64 111 2222',
      },
      at('2021-05-01T08:00:00Z'),
    );
    const cards = await t.findContacts!({ e164: '+381629759787', limit: 5 });
    expect(cards.map((c) => c.id)).toEqual([contact, lead]);
    expect(cards[0]).toMatchObject({
      firstName: 'Marko',
      lastName: 'Petrović',
      company: 'Acme d.o.o.',
      email: 'marko@acme.rs',
      phones: [
        { kind: 'business', number: '+381 62 975 9787' },
        { kind: 'mobile', number: '+381 64 111 2222' },
      ],
      url: `https://crm.zoho.eu/crm/org20071234567/tab/Contacts/${contact}`,
      entityType: 'Contact',
    });
    expect(cards[1]).toMatchObject({
      firstName: 'Mila',
      company: 'Jović d.o.o.',
      url: `https://crm.zoho.eu/crm/org20071234567/tab/Leads/${lead}`,
      entityType: 'Lead',
    });
    // Contacts and Leads, each in E.164 and national digits.
    expect(
      crm.count('GET', '/crm/v8/Contacts/search') + crm.count('GET', '/crm/v8/Leads/search'),
    ).toBe(4);
  });

  it('throws when the CRM fails (the caller answers "not found")', async () => {
    const { sf, t } = await salesforce();
    sf.addContact({ LastName: 'Petrović', Phone: '+381 62 975 9787' });
    sf.faults.push({
      match: `GET ${SF_SEARCH}`,
      fault: { status: 400, body: [{ errorCode: 'INVALID_FIELD', message: 'boom' }] },
    });
    const err = await t.findContacts!({ e164: '+381629759787', limit: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeliveryError);
    expect((err as DeliveryError).message).toMatch(/boom/);
  });

  it('keeps the search window: a burst of lookups is paced', async () => {
    const { sf, t } = await salesforce('2');
    sf.addContact({ LastName: 'Petrović', Phone: '+381 62 975 9787' });
    const started = Date.now();
    const numbers = ['+381629759787', '+381629759788', '+381629759789'];
    await Promise.all(numbers.map((e164) => t.findContacts!({ e164, limit: 5 })));
    // Six searches at two a second: the last waits for the third window.
    expect(sf.count('GET', SF_SEARCH)).toBe(6);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
  });

  it('Salesforce: makes exactly one Contact from the phone client, which a lookup then finds', async () => {
    const { sf, t } = await salesforce();
    const contacts = (): number => sf.records.Contact.size;
    const before = contacts();
    const made = await t.addContact!({
      firstName: 'Nova',
      lastName: 'Stranka',
      email: 'nova@example.cz',
      e164: '+420601234567',
    });
    expect(contacts()).toBe(before + 1);
    expect(sf.records.Contact.get(made.id)).toMatchObject({
      FirstName: 'Nova',
      LastName: 'Stranka',
      Email: 'nova@example.cz',
      Phone: '+420601234567',
    });
    expect(made).toMatchObject({
      firstName: 'Nova',
      lastName: 'Stranka',
      email: 'nova@example.cz',
      phones: [{ kind: 'business', number: '+420601234567' }],
      url: `https://acme.lightning.force.com/lightning/r/Contact/${made.id}/view`,
      entityType: 'Contact',
    });
    const found = await t.findContacts!({ e164: '+420601234567', limit: 5 });
    expect(found.map((c) => c.id)).toEqual([made.id]);
    // A number alone: Salesforce needs a LastName, and the number stands in for it.
    const bare = await t.addContact!({ e164: '+420601234568' });
    expect(sf.records.Contact.get(bare.id)).toMatchObject({ LastName: '+420601234568' });
  });

  it('Freshsales: the search ends at the first number form that finds the caller (untilFound)', async () => {
    const crm = await new FakeFreshsales().start();
    cleanup.push(() => crm.close());
    crm.addUser('relay@example.com', 'Relay', { apiKey: 'fs-key-0123456789' });
    const inMobile = crm.addContact({ first_name: 'Mia', mobile_number: '+33612345678' });
    const inWork = crm.addContact({ first_name: 'Wim', work_number: '0612345679' });
    // The shipped recipe, and a copy of it without untilFound (every form of every field asked).
    const dir = tempDir();
    const all = join(dir, 'freshsales-all.yaml');
    const shipped = readFileSync(join(SHIPPED_RECIPES, 'freshsales.yaml'), 'utf8');
    expect(shipped).toMatch(/^ {4}untilFound: true\n/m);
    writeFileSync(
      all,
      shipped
        .replace(/^name: freshsales$/m, 'name: freshsales-all')
        .replace(/^ {4}untilFound: true\n/m, ''),
    );
    const lookups = async (recipe: string, e164: string): Promise<[string[], number]> => {
      const { t } = target(
        `  - name: fs\n    type: rest\n    recipe: ${recipe}\n` +
          `    vars: { alias: acme, baseUrl: "${crm.url}" }\n    auth: { apiKey: fs-key-0123456789 }\n`,
      );
      const before = crm.requests.filter((r) => r.path.endsWith('/lookup')).length;
      const ids = (await t.findContacts!({ e164, limit: 5 })).map((c) => c.id);
      return [ids, crm.requests.filter((r) => r.path.endsWith('/lookup')).length - before];
    };
    // In E.164 in mobile_number: the first request finds it.
    expect(await lookups('freshsales', '+33612345678')).toEqual([[String(inMobile)], 1]);
    // With its trunk 0 in work_number: E.164 in both fields, then the trunk-0 form twice.
    expect(await lookups('freshsales', '+33612345679')).toEqual([[String(inWork)], 4]);
    // Nobody: every form of both fields.
    expect(await lookups('freshsales', '+33612345670')).toEqual([[], 6]);
    // Without untilFound the same card costs all six.
    expect(await lookups(all, '+33612345678')).toEqual([[String(inMobile)], 6]);
  });

  it('says which recipes can answer lookups', () => {
    const { cfg } = target(
      `  - name: salesforce\n    type: rest\n    recipe: salesforce\n    dryRun: true\n    vars: { domain: acme }\n`,
    );
    expect(restSpec.contacts!(cfg as unknown as Record<string, unknown>)).toEqual({
      find: true,
      create: true,
    });
    const zohoCfg = target(
      `  - name: zoho\n    type: rest\n    recipe: zoho-crm\n    dryRun: true\n    vars: { org: org1 }\n`,
    ).cfg;
    expect(restSpec.contacts!(zohoCfg as unknown as Record<string, unknown>)).toEqual({
      find: true,
      create: false,
    });
  });
});
