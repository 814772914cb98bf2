// What CRM lookups are built from (phone-lookup.ts, user-lookup.ts): a small expiring cache for
// hits and misses, and the client-side check that a number a CRM search returned really is the
// caller's.

import { parsePhoneNumberFromString } from 'libphonenumber-js';

export class Cache<V> {
  private readonly m = new Map<string, { v: V; until: number }>();
  constructor(private readonly ttlMs: number) {}
  get(k: string): { v: V } | undefined {
    const e = this.m.get(k);
    if (!e || e.until < Date.now()) return undefined;
    return { v: e.v };
  }
  delete(k: string): void {
    this.m.delete(k);
  }
  set(k: string, v: V, ttlMs = this.ttlMs): void {
    if (this.m.size > 10_000) this.m.clear();
    this.m.set(k, { v, until: Date.now() + ttlMs });
  }
}

/**
 * One lookup per key at a time: deliveries running together for the same caller or agent wait
 * for the lookup under way instead of asking again (a burst from one number makes one search, and
 * `createContacts` makes one contact, not one per call in flight).
 */
export class SingleFlight<V> {
  private readonly m = new Map<string, Promise<V>>();
  run(k: string, fn: () => Promise<V>): Promise<V> {
    let p = this.m.get(k);
    if (!p) {
      p = fn().finally(() => this.m.delete(k));
      this.m.set(k, p);
    }
    return p;
  }
}

const digits = (s: string | null | undefined): string => (s ?? '').replace(/\D/g, '');

/**
 * Whether a number as a CRM stored it ("+420 774 852 629", "00420774852629", "774852629") is this
 * E.164 number: the same full number. A stored number with a country code ("+", "00") must have
 * the caller's; one without is read as a national number of the caller's country. So a look-alike
 * with the same national digits under another country code (+386 for a +381 caller) never counts.
 */
export function sameNumber(stored: string | null | undefined, e164: string): boolean {
  const raw = (stored ?? '').trim();
  const d = digits(raw);
  if (d.length < 6) return false;
  if (d === digits(e164)) return true; // "420774852629": the full number without its "+"
  const caller = parsePhoneNumberFromString(e164);
  if (!caller) return false;
  const international = raw.replace(/^00/, '+');
  const parsed = international.startsWith('+')
    ? parsePhoneNumberFromString(international)
    : parsePhoneNumberFromString(raw, { defaultCallingCode: caller.countryCallingCode });
  return parsed?.number === caller.number;
}
