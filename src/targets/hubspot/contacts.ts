// HubSpot contacts as a phone system's caller lookup sees them (callerid/): found by number (the
// delivery's search on the calculated phone properties, verified by sameNumber, the contact made
// first first), by free text (the search endpoint's `query`) or by email (an EQ filter), and made
// from the phone client's form. Every request goes through the target's client and limiters, so
// lookups share HubSpot's limits with deliveries: a lookup waits for a search slot at most
// LOOKUP_SLOT_WAIT_MS (3CX has long given up by then), and the search by number is the
// delivery's own (target.ts), so that one search per caller serves the ring and the call's
// delivery. The record page needs the account id: relay.yaml's portalId, else learnt once from
// the account-info API (scope `oauth`).

import { parsePhoneNumberFromString } from 'libphonenumber-js';
import type { CrmClient } from '../kit/client.js';
import type { Paced, WindowLimiter } from '../kit/limiter.js';
import { Cache, sameNumber, SingleFlight } from '../kit/lookup.js';
import { firstMade } from '../kit/phone-lookup.js';
import type { ContactCard, ContactQuery, NewContact } from '../types.js';

/** What a card shows, asked for by name (a search answers only the properties it is asked for). */
export const CARD_PROPERTIES = [
  'firstname',
  'lastname',
  'company',
  'email',
  'phone',
  'mobilephone',
  'createdate',
];

/** A contact as the search answers it. */
export interface Found {
  id: string;
  properties: Record<string, string | null | undefined>;
  createdAt?: string;
}

/**
 * The longest a lookup for a phone system waits for a search slot. Beyond it, it fails (the
 * caller caches the error briefly) instead of queueing for a minute ahead of deliveries' searches.
 */
export const LOOKUP_SLOT_WAIT_MS = 10_000;

/** A failed account-info read is asked again after this long, not on every lookup. */
const PORTAL_RETRY_MS = 60_000;

/**
 * The filter groups (OR) that find a number: the calculated properties hold the national number
 * (HubSpot drops the country code), the raw ones may hold E.164 as typed.
 */
export function phoneFilterGroups(e164: string): Record<string, string>[][] {
  const national = parsePhoneNumberFromString(e164)?.nationalNumber ?? e164.replace(/\D/g, '');
  return [
    [{ propertyName: 'hs_searchable_calculated_phone_number', operator: 'EQ', value: national }],
    [{ propertyName: 'hs_searchable_calculated_mobile_number', operator: 'EQ', value: national }],
    [{ propertyName: 'phone', operator: 'EQ', value: e164 }],
    [{ propertyName: 'mobilephone', operator: 'EQ', value: e164 }],
  ];
}

export class HubspotContacts {
  private portal: Promise<string | undefined> | undefined;
  private portalFailedAt = 0;
  /** Who has a number, as the delivery's PhoneLookup remembers it (a miss: a fifth as long). */
  private readonly numbers = new Cache<Found[]>(0);
  private readonly flights = new SingleFlight<Found[]>();

  constructor(
    private readonly http: CrmClient,
    private readonly searchLimiter: WindowLimiter,
    private readonly o: { portalId?: string | undefined; appUrl: string; cacheSec: number },
  ) {}

  /**
   * The contacts who really have this number (sameNumber), the one made first first. The
   * delivery's PhoneLookup (target.ts) and a phone system's lookup share it, and what it found, so
   * that one search serves both. `lookup`: a phone system asks, and waits for a search slot at
   * most LOOKUP_SLOT_WAIT_MS.
   */
  withNumber(e164: string, lookup = false): Promise<Found[]> {
    const hit = this.numbers.get(e164);
    if (hit) return Promise.resolve(hit.v);
    return this.flights.run(e164, async () => {
      // The oldest first, and more than needed: look-alikes of other countries take places too.
      const all = await this.search({
        filterGroups: phoneFilterGroups(e164).map((filters) => ({ filters })),
        sorts: [{ propertyName: 'createdate', direction: 'ASCENDING' }],
        limit: 50,
        what: 'looking up a caller by phone',
        lookup,
      });
      const found = all
        .filter((r) =>
          [r.properties.phone, r.properties.mobilephone].some((n) => sameNumber(n, e164)),
        )
        .map((r) => ({ r, c: { id: r.id, numbers: [], createdAt: createdOf(r) } }))
        .sort((a, b) => firstMade(a.c, b.c))
        .map((x) => x.r);
      const ttl = this.o.cacheSec * 1000;
      this.numbers.set(e164, found, found.length ? ttl : ttl / 5);
      return found;
    });
  }

  /** Forget who has this number (a contact was made for it). */
  forgetNumber(e164: string | null | undefined): void {
    if (e164) this.numbers.delete(e164);
  }

  /** A phone system's lookup: searches wait for a slot at most LOOKUP_SLOT_WAIT_MS. */
  async find(q: ContactQuery): Promise<ContactCard[]> {
    const limit = Math.max(1, Math.min(q.limit, 100));
    let found: Found[];
    if (q.e164) {
      found = await this.withNumber(q.e164, true);
    } else if (q.text !== undefined) {
      const text = q.text.trim();
      if (!text) return [];
      found = await this.search({
        query: text.slice(0, 3000),
        filterGroups: [],
        sorts: [{ propertyName: 'createdate', direction: 'ASCENDING' }],
        limit,
        what: 'searching contacts',
        lookup: true,
      });
    } else if (q.email !== undefined) {
      found = await this.search({
        filterGroups: [{ filters: [{ propertyName: 'email', operator: 'EQ', value: q.email }] }],
        sorts: [{ propertyName: 'createdate', direction: 'ASCENDING' }],
        limit,
        what: 'looking up a contact by email',
        lookup: true,
      });
    } else return [];
    const picked = found.slice(0, limit);
    if (!picked.length) return [];
    const portal = await this.portalId();
    return picked.map((r) => this.card(r, portal));
  }

  async add(c: NewContact): Promise<ContactCard> {
    const properties: Record<string, string> = {};
    if (c.firstName) properties.firstname = c.firstName;
    if (c.lastName) properties.lastname = c.lastName;
    if (c.email) properties.email = c.email;
    if (c.company) properties.company = c.company;
    if (c.e164) properties.phone = c.e164;
    // HubSpot needs one of email, firstname, lastname: a number alone is named by itself.
    if (!properties.email && !properties.firstname && !properties.lastname)
      properties.lastname = c.e164 ?? 'Unknown caller';
    const res = await this.http.call({
      method: 'POST',
      path: '/crm/v3/objects/contacts',
      json: { properties, associations: [] },
      idempotent: false,
      what: 'creating a contact from the phone client',
    });
    const body = res.body as {
      id?: string | number;
      properties?: Found['properties'];
      createdAt?: string;
    };
    if (body.id === undefined) throw new Error('HubSpot made the contact but did not say its id');
    const made: Found = {
      id: String(body.id),
      properties: { ...properties, ...body.properties },
      ...(body.createdAt ? { createdAt: body.createdAt } : {}),
    };
    return this.card(made, await this.portalId());
  }

  private async search(o: {
    filterGroups: unknown[];
    query?: string;
    sorts: unknown[];
    limit: number;
    what: string;
    lookup: boolean;
  }): Promise<Found[]> {
    const paced = o.lookup ? await this.slot() : undefined;
    const res = await this.http.call({
      method: 'POST',
      path: '/crm/v3/objects/contacts/search',
      json: {
        ...(o.query !== undefined ? { query: o.query } : {}),
        filterGroups: o.filterGroups,
        properties: CARD_PROPERTIES,
        sorts: o.sorts,
        limit: o.limit,
      },
      idempotent: true,
      limiter: this.searchLimiter,
      ...(paced ? { paced } : {}),
      what: o.what,
    });
    return (res.body as { results?: Found[] }).results ?? [];
  }

  /** A search slot for a phone system's lookup: it fails rather than wait long. */
  private async slot(): Promise<Paced> {
    const since = performance.now();
    return { since, answered: await this.searchLimiter.acquire(LOOKUP_SLOT_WAIT_MS) };
  }

  /** relay.yaml's portalId, else the account's, read once (a failure is asked again later). */
  private portalId(): Promise<string | undefined> {
    if (this.o.portalId) return Promise.resolve(this.o.portalId);
    if (!this.portal && Date.now() - this.portalFailedAt >= PORTAL_RETRY_MS) {
      this.portal = this.http
        .call({
          method: 'GET',
          path: '/account-info/v3/details',
          idempotent: true,
          what: 'reading the account id for contact links (scope oauth)',
        })
        .then((r) => {
          const id = (r.body as { portalId?: number | string }).portalId;
          if (id === undefined || !/^\d+$/.test(String(id))) throw new Error('no portalId');
          return String(id);
        })
        .catch(() => {
          // The cards go without links for now: the lookup itself still answers.
          this.portal = undefined;
          this.portalFailedAt = Date.now();
          return undefined;
        });
    }
    return this.portal ?? Promise.resolve(undefined);
  }

  private card(r: Found, portal: string | undefined): ContactCard {
    const p = r.properties;
    const s = (v: string | null | undefined): string | undefined => (v ? v : undefined);
    const phones: ContactCard['phones'] = [];
    if (p.phone) phones.push({ kind: 'business', number: p.phone });
    if (p.mobilephone) phones.push({ kind: 'mobile', number: p.mobilephone });
    const createdAt = createdOf(r);
    const card: ContactCard = {
      id: r.id,
      phones,
      url: portal
        ? `${this.o.appUrl.replace(/\/+$/, '')}/contacts/${portal}/record/0-1/${r.id}`
        : null,
      entityType: 'contact',
    };
    const first = s(p.firstname);
    const last = s(p.lastname);
    const company = s(p.company);
    const email = s(p.email);
    if (first) card.firstName = first;
    if (last) card.lastName = last;
    if (company) card.company = company;
    if (email) card.email = email;
    if (createdAt) card.createdAt = createdAt;
    return card;
  }
}

function createdOf(r: Found): string | undefined {
  return r.createdAt ?? r.properties.createdate ?? undefined;
}
