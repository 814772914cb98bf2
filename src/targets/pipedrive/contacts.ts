// Pipedrive persons as a phone system's caller lookup sees them (callerid/): found by number (the
// delivery's v2 person search, exact, in each of the number's forms; only persons that really
// have it; the one made first first), by free text (name, email, phone) or by email (exact), and
// made from the phone client's form (v2). The search answers name, phones, emails and the
// organization; the person chosen for a ring gets one GET more for its first and last name and
// when it was made (if that read fails, the search's card). Every request goes through the
// target's client and limiters (searches through Pipedrive's tighter search window), so lookups
// share the limits with deliveries: a lookup waits for a search slot at most LOOKUP_SLOT_WAIT_MS
// (3CX has long given up by then), and the search by number is the delivery's own (target.ts), so
// that one search per caller serves the ring and the call's delivery.

import { parsePhoneNumberFromString } from 'libphonenumber-js';
import { silentLogger, type Logger } from '../../telemetry/log.js';
import type { CrmClient } from '../kit/client.js';
import type { Paced, WindowLimiter } from '../kit/limiter.js';
import { Cache, sameNumber, SingleFlight } from '../kit/lookup.js';
import { firstMade } from '../kit/phone-lookup.js';
import type { ContactCard, ContactQuery, NewContact } from '../types.js';

/**
 * The longest a lookup for a phone system waits for a search slot. Beyond it, it fails (the
 * caller caches the error briefly) instead of queueing for a minute ahead of deliveries' searches.
 */
export const LOOKUP_SLOT_WAIT_MS = 10_000;

/** The person search matches exactly, and people store numbers in any of these forms. */
export const phoneForms = (e164: string): string[] => [
  ...new Set(
    [e164, parsePhoneNumberFromString(e164)?.nationalNumber, e164.replace(/\D/g, '')].filter(
      (t): t is string => !!t,
    ),
  ),
];

/** A person as the v2 search answers it. */
export interface SearchItem {
  id: number;
  name?: string;
  phones?: string[];
  emails?: string[];
  organization?: { id?: number; name?: string } | null;
}

interface Labelled {
  value?: string;
  label?: string;
  primary?: boolean;
}

/** A person as v2 GET /persons/{id} and POST /persons answer it (the fields a card needs). */
interface Person {
  id: number;
  name?: string;
  first_name?: string | null;
  last_name?: string | null;
  org_id?: number | null;
  add_time?: string;
  phones?: Labelled[];
  emails?: Labelled[];
}

const KINDS: Record<string, ContactCard['phones'][number]['kind']> = {
  work: 'business',
  mobile: 'mobile',
  home: 'home',
};

export class PipedriveContacts {
  private domain: Promise<string | undefined> | undefined;
  /** Who has a number, as the delivery's PhoneLookup remembers it (a miss: a fifth as long). */
  private readonly numbers = new Cache<SearchItem[]>(0);
  private readonly flights = new SingleFlight<SearchItem[]>();
  private readonly log: Logger;

  constructor(
    private readonly http: CrmClient,
    private readonly searchLimiter: WindowLimiter,
    private readonly o: { companyDomain?: string | undefined; cacheSec: number; log?: Logger },
  ) {
    this.log = o.log ?? silentLogger;
  }

  /** A phone system's lookup: searches wait for a slot at most LOOKUP_SLOT_WAIT_MS. */
  async find(q: ContactQuery): Promise<ContactCard[]> {
    const limit = Math.max(1, Math.min(q.limit, 100));
    if (q.e164) return this.byNumber(q.e164, limit);
    let items: SearchItem[];
    if (q.text !== undefined) {
      const term = q.text.trim();
      // Pipedrive needs 2 characters for a search that is not exact.
      if (term.length < 2) return [];
      items = await this.search(term, 'name,email,phone', false, limit, 'searching persons', true);
    } else if (q.email !== undefined) {
      const email = q.email.trim().toLowerCase();
      if (!email) return [];
      items = (
        await this.search(email, 'email', true, limit, 'looking up a person by email', true)
      ).filter((i) => (i.emails ?? []).some((e) => e.toLowerCase() === email));
    } else return [];
    const domain = await this.companyDomain();
    return items.slice(0, limit).map((i) => fromSearch(i, domain));
  }

  async add(c: NewContact): Promise<ContactCard> {
    const name =
      [c.firstName, c.lastName].filter(Boolean).join(' ').trim() ||
      c.email ||
      c.e164 ||
      'Unknown caller';
    const res = await this.http.call({
      method: 'POST',
      path: '/api/v2/persons',
      json: {
        name,
        ...(c.email ? { emails: [{ value: c.email, primary: true, label: 'work' }] } : {}),
        ...(c.e164 ? { phones: [{ value: c.e164, primary: true, label: 'work' }] } : {}),
      },
      idempotent: false,
      what: 'creating a person from the phone client',
    });
    const p = (res.body as { data?: Person }).data;
    if (!p || typeof p.id !== 'number')
      throw new Error('Pipedrive made the person but did not say its id');
    return fromPerson(p, undefined, await this.companyDomain());
  }

  /**
   * The persons who really have this number (sameNumber), the one made first first: an exact
   * search in each of the number's forms. The delivery's PhoneLookup (target.ts) and a phone
   * system's lookup share it, and what it found, so that one search serves both. `lookup`: a
   * phone system asks, and waits for a search slot at most LOOKUP_SLOT_WAIT_MS.
   */
  withNumber(e164: string, lookup = false): Promise<SearchItem[]> {
    const hit = this.numbers.get(e164);
    if (hit) return Promise.resolve(hit.v);
    return this.flights.run(e164, async () => {
      const seen = new Map<number, SearchItem>();
      for (const term of phoneForms(e164))
        for (const i of await this.search(
          term,
          'phone',
          true,
          100,
          'looking up a caller by phone',
          lookup,
        ))
          if (!seen.has(i.id) && (i.phones ?? []).some((n) => sameNumber(n, e164)))
            seen.set(i.id, i);
      // The search says nothing of when a person was made: ids count up (kit/phone-lookup.ts).
      const found = [...seen.values()]
        .map((i) => ({ i, c: { id: i.id, numbers: [] } }))
        .sort((a, b) => firstMade(a.c, b.c))
        .map((x) => x.i);
      const ttl = this.o.cacheSec * 1000;
      this.numbers.set(e164, found, found.length ? ttl : ttl / 5);
      return found;
    });
  }

  /** Forget who has this number (a person was made for it). */
  forgetNumber(e164: string | null | undefined): void {
    if (e164) this.numbers.delete(e164);
  }

  private async byNumber(e164: string, limit: number): Promise<ContactCard[]> {
    const ordered = (await this.withNumber(e164, true)).slice(0, limit);
    if (!ordered.length) return [];
    const domain = await this.companyDomain();
    const [chosen, ...others] = ordered;
    let first: ContactCard;
    try {
      const res = await this.http.call({
        method: 'GET',
        path: `/api/v2/persons/${chosen!.id}`,
        idempotent: true,
        what: 'reading the caller',
      });
      const person = (res.body as { data?: Person }).data;
      first = person ? fromPerson(person, chosen, domain) : fromSearch(chosen!, domain);
    } catch (err) {
      // The search found the caller: its card (the whole name) beats showing nothing.
      this.log.warn(
        { person: chosen!.id, err: err instanceof Error ? err.message : String(err) },
        'reading the caller from Pipedrive failed: answering with the search result',
      );
      first = fromSearch(chosen!, domain);
    }
    return [first, ...others.map((i) => fromSearch(i, domain))];
  }

  private async search(
    term: string,
    fields: string,
    exact: boolean,
    limit: number,
    what: string,
    lookup: boolean,
  ): Promise<SearchItem[]> {
    const q = new URLSearchParams({ term, fields, limit: String(limit) });
    if (exact) q.set('exact_match', 'true');
    const res = await this.http.call({
      method: 'GET',
      path: `/api/v2/persons/search?${q.toString()}`,
      idempotent: true,
      limiter: this.searchLimiter,
      ...(lookup ? { paced: await this.slot() } : {}),
      what,
    });
    const items = (res.body as { data?: { items?: { item?: SearchItem }[] } }).data?.items ?? [];
    return items
      .map((x) => x.item)
      .filter((i): i is SearchItem => typeof i?.id === 'number')
      .map((i) => ({
        ...i,
        // Phones as strings, whichever way the answer gives them.
        phones: ((i.phones ?? []) as (string | { value?: string })[])
          .map((p) => (typeof p === 'string' ? p : (p.value ?? '')))
          .filter(Boolean),
      }));
  }

  /** A search slot for a phone system's lookup: it fails rather than wait long. */
  private async slot(): Promise<Paced> {
    const since = performance.now();
    return { since, answered: await this.searchLimiter.acquire(LOOKUP_SLOT_WAIT_MS) };
  }

  /** relay.yaml's companyDomain, else the token user's company's, read once. */
  private companyDomain(): Promise<string | undefined> {
    if (this.o.companyDomain) return Promise.resolve(this.o.companyDomain);
    this.domain ??= this.http
      .call({
        method: 'GET',
        path: '/api/v1/users/me',
        idempotent: true,
        what: "reading the company's domain for person links",
      })
      .then((r) => {
        const d = (r.body as { data?: { company_domain?: string } }).data?.company_domain;
        return d && /^[a-z0-9-]+$/i.test(d) ? d : undefined;
      })
      .catch(() => {
        // The cards go without links this time; the next lookup asks again.
        this.domain = undefined;
        return undefined;
      });
    return this.domain;
  }
}

const personUrl = (domain: string | undefined, id: number): string | null =>
  domain ? `https://${domain}.pipedrive.com/person/${id}` : null;

/** A card from the search alone: the name is whole (the search does not split it). */
function fromSearch(i: SearchItem, domain: string | undefined): ContactCard {
  const card: ContactCard = {
    id: String(i.id),
    phones: (i.phones ?? []).map((number) => ({ kind: 'other' as const, number })),
    url: personUrl(domain, i.id),
    entityType: 'person',
  };
  if (i.name) card.lastName = i.name;
  if (i.organization?.name) card.company = i.organization.name;
  if (i.emails?.[0]) card.email = i.emails[0];
  return card;
}

function fromPerson(
  p: Person,
  found: SearchItem | undefined,
  domain: string | undefined,
): ContactCard {
  const card: ContactCard = {
    id: String(p.id),
    phones: (p.phones ?? [])
      .filter((x) => x.value)
      .map((x) => ({ kind: KINDS[x.label ?? ''] ?? 'other', number: x.value! })),
    url: personUrl(domain, p.id),
    entityType: 'person',
  };
  const first = p.first_name || undefined;
  const last = p.last_name || undefined;
  if (first) card.firstName = first;
  if (last) card.lastName = last;
  if (!first && !last && p.name) card.lastName = p.name;
  const email = (p.emails ?? []).find((e) => e.primary)?.value ?? p.emails?.[0]?.value;
  if (email) card.email = email;
  if (found?.organization?.name) card.company = found.organization.name;
  if (p.add_time) card.createdAt = p.add_time;
  return card;
}
