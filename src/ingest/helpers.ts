// Functions adapters call from their expressions ($duration, $toUtc, $e164, ...). Each one is
// total: missing input gives `undefined` (the field is left out), because one odd webhook must not
// stop the rest of its mapping. The one exception is a time given as text that no format reads
// ($toUtc): the call's start would otherwise quietly become the moment the relay received it.
// $tryUtc is the lenient form, for a time an adapter only guesses at (the start inside a 3CX id).

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
    const k = a
      .map((x) =>
        typeof x === 'string'
          ? x
          : `\u0002${x && typeof x === 'object' ? JSON.stringify(x) : String(x)}`,
      )
      .join('\u0001');
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

/** A time given as text that none of the formats reads: the request is unmapped, naming it. */
export class TimeUnreadable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimeUnreadable';
  }
}

/** The formats $toUtc knows by name; any other text is a Luxon format (`yyMMddHHmmss`). */
const NAMED_FORMATS = new Map<string, (s: string, zone: string) => DateTime | undefined>([
  ['iso', (s, zone) => DateTime.fromISO(s, { zone })],
  ['sql', (s, zone) => DateTime.fromSQL(s, { zone })],
  // "Tue, 10 Aug 2010 08:02:17 +0000" (Twilio), and HTTP's "... GMT" form.
  ['rfc2822', (s, zone) => DateTime.fromRFC2822(s, { zone })],
  ['http', (s, zone) => DateTime.fromHTTP(s, { zone })],
  // Unix seconds as text ("1281427337"), or milliseconds when that large, as for a number.
  ['unix', (s) => (/^\d{9,}(\.\d+)?$/.test(s) ? fromEpoch(Number(s)) : undefined)],
]);
/** What $toUtc tries when no format is given. */
const DEFAULT_FORMATS = ['iso', 'sql', 'rfc2822', 'http', 'unix'];

const fromEpoch = (n: number): DateTime =>
  DateTime.fromMillis(n > 1e11 ? n : n * 1000, { zone: 'utc' });

/** A value as shown in a message: short, and visibly cut. */
function shown(v: unknown): string {
  const s = typeof v === 'string' ? v : String(JSON.stringify(v));
  const cut = s.length > 40 ? `${s.slice(0, 40)}…` : s;
  return typeof v === 'string' ? JSON.stringify(cut) : cut;
}

/**
 * A provider's date-time (in the source's time zone unless it carries an offset) as ISO UTC.
 * `format`: one format or a list tried in order, each a name in NAMED_FORMATS or Luxon tokens;
 * none: DEFAULT_FORMATS. Nothing given (absent, blank): undefined. Text that no format reads:
 * a TimeUnreadable, so that the request is unmapped instead of timed at its arrival.
 */
export function toUtc(v: unknown, format: unknown, timezone: string): string | undefined {
  const r = toUtcMemo(v, format, timezone);
  if (r instanceof TimeUnreadable) throw r;
  return r;
}

/**
 * toUtc for a time the adapter derives rather than one the provider sent (the start encoded in a
 * 3CX call id): text that no format reads gives undefined, so the field is left out and the
 * request still maps. A format that is no format is still the adapter's mistake, and throws.
 */
export function tryUtc(v: unknown, format: unknown, timezone: string): string | undefined {
  let r;
  try {
    r = toUtcMemo(v, format, timezone);
  } catch (err) {
    throw new Error((err as Error).message.replace(/^\$toUtc:/, '$tryUtc:'), { cause: err });
  }
  return r instanceof TimeUnreadable ? undefined : r;
}

const toUtcMemo = memo(toUtcUncached);

function toUtcUncached(
  v: unknown,
  format: unknown,
  timezone: string,
): string | undefined | TimeUnreadable {
  if (isBlank(v)) return undefined;
  if (typeof v === 'number')
    return Number.isFinite(v) ? fromEpoch(v).toUTC().toISO()! : new TimeUnreadable(`$toUtc: ${v}`);
  const byDefault = format === undefined || format === null || format === '';
  const formats = byDefault ? DEFAULT_FORMATS : Array.isArray(format) ? format : [format];
  if (!formats.length || formats.some((f) => typeof f !== 'string' || !f))
    throw new Error(`$toUtc: the format must be a text or a list of texts, got ${shown(format)}`);
  if (typeof v !== 'string')
    return new TimeUnreadable(
      `$toUtc: expected a time, got ${Array.isArray(v) ? `a list of ${v.length}` : shown(v)}`,
    );
  const s = v.trim();
  for (const f of formats as string[]) {
    const named = NAMED_FORMATS.get(f);
    const dt = named ? named(s, timezone) : DateTime.fromFormat(s, f, { zone: timezone });
    if (dt?.isValid) return dt.toUTC().toISO()!;
  }
  const tried = byDefault
    ? 'ISO, SQL, RFC 2822, HTTP or Unix seconds'
    : (formats as string[]).map((f) => `'${f}'`).join(', ');
  return new TimeUnreadable(`$toUtc: ${shown(s)} is not a time (read as ${tried})`);
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
    tryUtc: (v, format) => tryUtc(v, format, ctx.timezone),
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
  'tryUtc',
  'e164',
  'mapValue',
  'beforeLast',
  'afterLast',
  'present',
  'given',
  'bool',
  'urls',
] as const;
