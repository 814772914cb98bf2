// Functions adapters call from their expressions ($duration, $toUtc, $e164, ...). Each one is
// total: bad or missing input gives `undefined` (the field is left out), never an exception,
// because one odd webhook must not stop the rest of its mapping.

import type { CountryCode } from 'libphonenumber-js';
import { DateTime } from 'luxon';
import { phoneE164, UNFILLED_VARIABLE } from '../domain/phone.js';

export interface HelperContext {
  timezone: string;
  defaultCountry: CountryCode | undefined;
  maps: Record<string, Record<string, unknown>>;
}

type Helper = (...args: unknown[]) => unknown;

/**
 * Bounded memo for pure helpers whose inputs repeat within a call (a 3CX id's time, the caller's
 * number): Luxon's zone arithmetic and libphonenumber's parse cost tens of microseconds each.
 */
function memo<A extends unknown[], R>(fn: (...a: A) => R, max = 4096): (...a: A) => R {
  const cache = new Map<string, R>();
  return (...a: A) => {
    const k = a.map((x) => (typeof x === 'string' ? x : `\u0002${String(x)}`)).join('\u0001');
    const hit = cache.get(k);
    if (hit !== undefined || cache.has(k)) return hit as R;
    const v = fn(...a);
    if (cache.size >= max) cache.delete(cache.keys().next().value!);
    cache.set(k, v);
    return v;
  };
}

const isBlank = (v: unknown): boolean =>
  v === undefined || v === null || (typeof v === 'string' && v.trim() === '');

function hmsToSeconds(s: string): number | undefined {
  const m = /^(\d+):(\d{1,2})(?::(\d{1,2}))?$/.exec(s);
  if (!m) return undefined;
  return m[3] !== undefined
    ? Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3])
    : Number(m[1]) * 60 + Number(m[2]);
}

/** `58`, `"58"`, `"00:06"` (m:ss), `"1:02:03"` (h:mm:ss), or a title ending in `(0:07)`. */
export function duration(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const s = v.trim();
  if (!s) return undefined;
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  const direct = hmsToSeconds(s);
  if (direct !== undefined) return direct;
  const inTitle = [...s.matchAll(/\((\d+:\d{1,2}(?::\d{1,2})?)\)/g)].at(-1);
  return inTitle ? hmsToSeconds(inTitle[1]!) : undefined;
}

/**
 * A provider's local date-time (in the source's time zone unless it carries an offset) as ISO UTC.
 */
export const toUtc = memo(toUtcUncached);

function toUtcUncached(v: unknown, format: unknown, timezone: string): string | undefined {
  let dt: DateTime | undefined;
  if (typeof v === 'number' && Number.isFinite(v))
    dt = DateTime.fromMillis(v > 1e11 ? v : v * 1000, { zone: 'utc' });
  else if (typeof v === 'string' && v.trim()) {
    const s = v.trim();
    if (typeof format === 'string' && format)
      dt = DateTime.fromFormat(s, format, { zone: timezone });
    else {
      dt = DateTime.fromISO(s, { zone: timezone });
      if (!dt.isValid) dt = DateTime.fromSQL(s, { zone: timezone });
    }
  }
  return dt?.isValid ? dt.toUTC().toISO()! : undefined;
}

/**
 * E.164 form of a phone number, using the source's default country; undefined when not a valid
 * number. The same reading as the caller-ID lookup's (domain/phone.ts).
 */
export const e164 = memo(e164Uncached);

function e164Uncached(
  v: unknown,
  country: unknown,
  fallback: CountryCode | undefined,
): string | undefined {
  if (typeof v !== 'string' && typeof v !== 'number') return undefined;
  const cc = typeof country === 'string' && country ? country : fallback;
  return phoneE164(String(v), cc);
}

export function makeHelpers(ctx: HelperContext): Record<string, Helper> {
  const lowerMaps = Object.fromEntries(
    Object.entries(ctx.maps).map(([name, m]) => [
      name,
      new Map(Object.entries(m).map(([k, v]) => [k.trim().toLowerCase(), v])),
    ]),
  );
  return {
    duration: (v) => duration(v),
    toUtc: (v, format) => toUtc(v, format, ctx.timezone),
    e164: (v, country) => e164(v, country, ctx.defaultCountry),
    /** Look a value up in one of the adapter's `maps`, case-insensitively; else the default. */
    mapValue: (v, name, dflt) => {
      const m = typeof name === 'string' ? lowerMaps[name] : undefined;
      if (!m) throw new Error(`$mapValue: no map named ${JSON.stringify(name)} in this adapter`);
      if (isBlank(v) || typeof v === 'object') return dflt;
      const hit = m.get(String(v).trim().toLowerCase());
      return hit === undefined ? dflt : hit;
    },
    beforeLast: (s, sep) => {
      if (typeof s !== 'string' || typeof sep !== 'string') return undefined;
      const i = s.lastIndexOf(sep);
      return i < 0 ? s : s.slice(0, i);
    },
    afterLast: (s, sep) => {
      if (typeof s !== 'string' || typeof sep !== 'string') return undefined;
      const i = s.lastIndexOf(sep);
      return i < 0 ? undefined : s.slice(i + sep.length);
    },
    /** The value, unless blank or one of the placeholders (case-insensitive), e.g. did "empty". */
    present: (v, placeholders) => {
      if (isBlank(v)) return undefined;
      const ph = Array.isArray(placeholders)
        ? placeholders
        : placeholders === undefined
          ? []
          : [placeholders];
      if (
        typeof v === 'string' &&
        ph.some((p) => typeof p === 'string' && p.toLowerCase() === v.trim().toLowerCase())
      )
        return undefined;
      return v;
    },
    /**
     * The value, unless blank or a template variable the sender left unfilled: 3CX posts a
     * variable its version lacks as its own text ("[RecordingUrl]", "[Contact::ContactID]").
     */
    given: (v) =>
      isBlank(v) || (typeof v === 'string' && UNFILLED_VARIABLE.test(v.trim())) ? undefined : v,
    /** "True"/"false"/"1"/"0"/"yes"/"no" -> boolean; anything else -> undefined. */
    bool: (v) => {
      if (typeof v === 'boolean') return v;
      if (typeof v === 'number') return v !== 0;
      if (typeof v !== 'string') return undefined;
      const s = v.trim().toLowerCase();
      return ['true', '1', 'yes', 'y'].includes(s)
        ? true
        : ['false', '0', 'no', 'n'].includes(s)
          ? false
          : undefined;
    },
    /**
     * All non-blank strings among the arguments (strings or arrays of strings), in order, once
     * each.
     */
    urls: (...args) => {
      const out: string[] = [];
      for (const a of args.flat(2))
        if (typeof a === 'string' && a.trim() && !out.includes(a.trim())) out.push(a.trim());
      return out.length ? out : undefined;
    },
  };
}

export const HELPER_NAMES = [
  'duration',
  'toUtc',
  'e164',
  'mapValue',
  'beforeLast',
  'afterLast',
  'present',
  'given',
  'bool',
  'urls',
] as const;
