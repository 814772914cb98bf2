// Finding a CRM's person or contact by the caller's number. CRM searches are fuzzy about formats,
// so a candidate counts only if one of its stored numbers has the caller's digits (sameNumber).
// When several really have the number (a shared office line), one rule picks the same one every
// time: the record made first (docs/crm-notes.md D). The call goes to it; the others are named in
// the call's note. Answers are remembered; misses only for a fifth as long, so that someone added
// in the CRM meanwhile is found on a later call.

import { Cache, sameNumber, SingleFlight } from './lookup.js';

export interface Candidate<Id> {
  id: Id;
  /** The numbers the CRM has stored for it, as it stored them. */
  numbers: (string | null | undefined)[];
  /** How the CRM's users know it, for the note that lists the others with the number. */
  name?: string;
  /** When the CRM made it (ISO 8601), where the search answer says; else the id's order counts. */
  createdAt?: string;
}

/** Someone else with the caller's number, named in the call's note. */
export interface Other<Id> {
  id: Id;
  name?: string;
}

export interface PhoneMatch<Id> {
  /** Whom the call goes to. */
  id: Id;
  /** The others with the same number, in the rule's order. */
  others: Other<Id>[];
}

export interface PhoneLookupOptions<Id> {
  /** How long an answer is remembered (a miss: a fifth of it). */
  ttlMs: number;
  /** The forms to search the number in, every one: each may find others (default: E.164). */
  terms?: (e164: string) => string[];
  search(term: string, e164: string): Promise<Candidate<Id>[]>;
  /** When nobody has the number: someone made for it (a new contact), remembered as found. */
  otherwise?: (e164: string) => Promise<Id | undefined>;
}

/**
 * The rule for a shared number: the record made first comes first. Its creation time where the
 * CRM gives one, then the id (both CRMs count ids up as records are made; numeric ids compare as
 * numbers), so the answer never depends on the order a search returned them in.
 */
export function firstMade<Id>(a: Candidate<Id>, b: Candidate<Id>): number {
  const ta = a.createdAt ? Date.parse(a.createdAt) : NaN;
  const tb = b.createdAt ? Date.parse(b.createdAt) : NaN;
  if (!Number.isNaN(ta) && !Number.isNaN(tb) && ta !== tb) return ta - tb;
  const ia = String(a.id);
  const ib = String(b.id);
  if (/^\d+$/.test(ia) && /^\d+$/.test(ib) && ia !== ib) return Number(ia) < Number(ib) ? -1 : 1;
  return ia < ib ? -1 : ia > ib ? 1 : 0;
}

export class PhoneLookup<Id> {
  private readonly cache: Cache<PhoneMatch<Id> | null>;
  private readonly flights = new SingleFlight<PhoneMatch<Id> | undefined>();

  constructor(private readonly o: PhoneLookupOptions<Id>) {
    this.cache = new Cache(o.ttlMs);
  }

  /** Who has this number (E.164), if anyone, and who else has it. */
  async find(e164: string | null): Promise<PhoneMatch<Id> | undefined> {
    if (!e164) return undefined;
    const hit = this.cache.get(e164);
    if (hit) return hit.v ?? undefined;
    return this.flights.run(e164, () => this.lookUp(e164));
  }

  /** Forget what was found for this number (the CRM refused that contact since). */
  forget(e164: string | null): void {
    if (e164) this.cache.delete(e164);
  }

  private async lookUp(e164: string): Promise<PhoneMatch<Id> | undefined> {
    const seen = new Map<string, Candidate<Id>>();
    for (const term of this.o.terms?.(e164) ?? [e164])
      for (const c of await this.o.search(term, e164))
        if (!seen.has(String(c.id)) && c.numbers.some((n) => sameNumber(n, e164)))
          seen.set(String(c.id), c);
    const [first, ...rest] = [...seen.values()].sort(firstMade);
    let match: PhoneMatch<Id> | undefined = first && {
      id: first.id,
      others: rest.map((c) => (c.name ? { id: c.id, name: c.name } : { id: c.id })),
    };
    if (!match && this.o.otherwise) {
      const made = await this.o.otherwise(e164);
      if (made !== undefined) match = { id: made, others: [] };
    }
    this.cache.set(e164, match ?? null, match ? undefined : this.o.ttlMs / 5);
    return match;
  }
}
