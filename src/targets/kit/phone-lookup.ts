// Finding a CRM's person or contact by the caller's number. CRM searches are fuzzy about formats,
// so a candidate counts only if one of its stored numbers has the caller's digits (sameNumber).
// Answers are remembered; misses only for a fifth as long, so that someone added in the CRM
// meanwhile is found on a later call.

import { Cache, sameNumber } from './lookup.js';

export interface Candidate<Id> {
  id: Id;
  /** The numbers the CRM has stored for it, as it stored them. */
  numbers: (string | null | undefined)[];
}

export interface PhoneLookupOptions<Id> {
  /** How long an answer is remembered (a miss: a fifth of it). */
  ttlMs: number;
  /** The forms to search the number in, one search each until one finds it (default: E.164). */
  terms?: (e164: string) => string[];
  search(term: string, e164: string): Promise<Candidate<Id>[]>;
  /** When nobody has the number: someone made for it (a new contact), remembered as found. */
  otherwise?: (e164: string) => Promise<Id | undefined>;
}

export class PhoneLookup<Id> {
  private readonly cache: Cache<Id | null>;

  constructor(private readonly o: PhoneLookupOptions<Id>) {
    this.cache = new Cache(o.ttlMs);
  }

  /** The id of whoever has this number (E.164), if anyone. */
  async find(e164: string | null): Promise<Id | undefined> {
    if (!e164) return undefined;
    const hit = this.cache.get(e164);
    if (hit) return hit.v ?? undefined;
    let id: Id | undefined;
    for (const term of this.o.terms?.(e164) ?? [e164]) {
      const candidates = await this.o.search(term, e164);
      id = candidates.find((c) => c.numbers.some((n) => sameNumber(n, e164)))?.id;
      if (id !== undefined) break;
    }
    if (id === undefined && this.o.otherwise) id = await this.o.otherwise(e164);
    this.cache.set(e164, id ?? null, id === undefined ? this.o.ttlMs / 5 : undefined);
    return id;
  }
}
