// What a target's expressions see (JSONata: shaping HubSpot and Pipedrive, and every step of a
// REST recipe): the call record and what the relay concluded from it, decided once here so that
// a recipe's talk time, numbers and text are the built-in targets', plus the functions a CRM's
// formats need ($mmss for "03:05", $localTime for a time with its offset, ...). Documented in
// docs/targets.md.

import { createHash } from 'node:crypto';
import { DateTime } from 'luxon';
import { parsePhoneNumberFromString } from 'libphonenumber-js';
import type { CallRecord } from '../../domain/model.js';
import { ringTimeSec, talkTimeSec } from '../../domain/talk.js';
import { companyNumber, externalNumber } from './numbers.js';
import type { Other } from './phone-lookup.js';
import { callBody, callTitle, marker } from './summary.js';

/** The contact or person a call went to, as expressions see it. */
export interface ContextContact {
  id: string;
  name?: string;
  /** Others with the caller's number (the call went to the one made first). */
  others: Other<string>[];
  /** What the CRM's answer said of it beyond id and name (a recipe's lookup `read`). */
  data?: Record<string, unknown>;
}

export interface CallContext {
  /** The canonical call record (config/call-record.schema.json). */
  call: CallRecord;
  /** The built-in title and note (HTML), and the note as plain text. */
  title: string;
  body: string;
  bodyText: string;
  talkSec: number | null;
  ringSec: number | null;
  /** The other party's number (E.164 when known) and the company's (the DID), '' if unknown. */
  external: string;
  company: string;
  /** "callrelay:<source>:<callId>": one per call, for external-id fields and upserts. */
  key: string;
  /** "callrelay <source>/<callId>": the line every built-in note ends with. */
  marker: string;
  contact: ContextContact | null;
  /** The CRM user id of the call's agent, or null. */
  owner: string | null;
  /** The target's name in relay.yaml. */
  target: string;
}

/** The context of one delivery. `recordingsInBody` are the URLs the note lists. */
export function callContext(
  c: CallRecord,
  o: {
    target: string;
    contact?: ContextContact | null;
    owner?: string | null;
    recordingsInBody?: string[];
  },
): CallContext {
  const body = callBody(c, o.recordingsInBody ?? c.recordings, o.contact?.others ?? []);
  return {
    call: c,
    title: callTitle(c),
    body,
    bodyText: htmlToText(body),
    talkSec: talkTimeSec(c),
    ringSec: ringTimeSec(c),
    external: externalNumber(c),
    company: companyNumber(c),
    key: `callrelay:${c.source}:${c.callId}`,
    marker: marker(c),
    contact: o.contact ?? null,
    owner: o.owner ?? null,
    target: o.target,
  };
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" };

/** The built-in note as plain text: line breaks for <br>, tags dropped, entities decoded. */
export function htmlToText(html: string): string {
  return html
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&(amp|lt|gt|quot|#39);/g, (_m, e: string) => ENTITIES[e]!);
}

const str = (v: unknown): string | undefined =>
  v === undefined || v === null ? undefined : String(v);

/**
 * `$uuid`'s default namespace: callrelay's own, itself the version-5 UUID of
 * "https://github.com/callrelay/callrelay" in RFC 9562's URL namespace. Fixed for good: changing
 * it would give every call a new id in the CRMs that key activities by it.
 */
export const UUID_NAMESPACE = '4de11f2c-e105-5d86-8128-d6e3ab75dfcc';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A name-based UUID, version 5 (SHA-1, RFC 9562 section 5.5), lower case. */
export function uuidV5(name: string, namespace = UUID_NAMESPACE): string {
  if (!UUID.test(namespace)) throw new Error(`$uuid: namespace "${namespace}" is not a UUID`);
  const h = createHash('sha1')
    .update(Buffer.from(namespace.replace(/-/g, ''), 'hex'))
    .update(name, 'utf8')
    .digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/**
 * Functions for CRM formats, registered on every target expression. Each returns undefined for
 * an undefined or null input (JSONata then leaves the field out).
 */
export const CONTEXT_HELPERS: Record<string, (...a: unknown[]) => unknown> = {
  /** Seconds as "mm:ss" (minutes past 59 keep counting: "75:03"). */
  mmss: (sec) => {
    if (sec === undefined || sec === null) return undefined;
    const s = Math.max(0, Math.round(Number(sec)));
    return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  },
  /** The digits of a number only: "+49 30 1234" -> "49301234". */
  digits: (v) => str(v)?.replace(/\D/g, ''),
  /** A number's national significant digits ("+4930123456" -> "30123456"), else its digits. */
  national: (v) => {
    const s = str(v);
    if (s === undefined) return undefined;
    return parsePhoneNumberFromString(s)?.nationalNumber ?? s.replace(/\D/g, '');
  },
  /**
   * An ISO time in a time zone, with its offset and without milliseconds:
   * "2026-03-11T20:00:00+01:00" (default zone: UTC, "+00:00").
   */
  localTime: (iso, zone) => {
    const s = str(iso);
    if (s === undefined) return undefined;
    const t = DateTime.fromISO(s, { setZone: true }).setZone(str(zone) ?? 'UTC');
    return t.isValid ? t.toFormat("yyyy-MM-dd'T'HH:mm:ssZZ") : undefined;
  },
  /** The calendar day of an ISO time in a time zone (default UTC): "2026-03-11". */
  day: (iso, zone) => {
    const s = str(iso);
    if (s === undefined) return undefined;
    const t = DateTime.fromISO(s, { setZone: true }).setZone(str(zone) ?? 'UTC');
    return t.isValid ? t.toISODate() : undefined;
  },
  /** Text cut to at most `n` characters (a CRM field's limit). */
  cut: (v, n) => {
    const s = str(v);
    return s === undefined ? undefined : Array.from(s).slice(0, Number(n)).join('');
  },
  /**
   * A deterministic UUID (version 5) of a text, in a namespace (default: UUID_NAMESPACE): the
   * same call always gets the same id, for CRMs that take the client's id on create.
   */
  uuid: (v, ns) => {
    const s = str(v);
    return s === undefined ? undefined : uuidV5(s, str(ns));
  },
};

/** The names of CONTEXT_HELPERS, for linting expressions (an unknown $function is an error). */
export const CONTEXT_HELPER_NAMES = Object.keys(CONTEXT_HELPERS);
