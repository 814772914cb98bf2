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
  set(k: string, v: V, ttlMs = this.ttlMs): void {
    if (this.m.size > 10_000) this.m.clear();
    this.m.set(k, { v, until: Date.now() + ttlMs });
  }
}

const digits = (s: string | null | undefined): string => (s ?? '').replace(/\D/g, '');

/**
 * Whether a number as a CRM stored it ("+420 774 852 629", "774852629", "00420774852629") is
 * this E.164 number: the same digits, or ending in its national significant number.
 */
export function sameNumber(stored: string | null | undefined, e164: string): boolean {
  const d = digits(stored);
  if (d.length < 6) return false;
  const national = parsePhoneNumberFromString(e164)?.nationalNumber ?? digits(e164);
  return d === digits(e164) || d.endsWith(national);
}
