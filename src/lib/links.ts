// Signed links: a relay URL that names what it opens (a call's recording, an agent's click-to-call)
// and, optionally, until when, with an HMAC of a server secret, so that a CRM can keep and use it
// without any other credential. A link cannot be altered without the secret; rotating the secret
// revokes them all.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export interface LinkClaims {
  /** What the link opens: "r" a recording. */
  k: string;
  /** Source and call id. */
  s: string;
  c: string;
  /** A hash of the thing within the call (a recording's URL, which the link never shows). */
  h: string;
  /** Expiry, seconds since the epoch; absent: no expiry. */
  e?: number;
}

const b64 = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/**
 * How many days a recording link works: server.linkTtlDays when set; else a year where the source
 * archives its recordings (the relay keeps them), 90 days where only the PBX has them. A link a
 * CRM keeps forever is a bearer credential forever.
 */
export const recordingLinkDays = (ttlDays: number | undefined, archived: boolean): number =>
  ttlDays ?? (archived ? 365 : 90);

/** A short, stable hash of a value the link refers to without showing it. */
export const linkHash = (value: string): string =>
  createHash('sha256').update(value).digest('base64url').slice(0, 16);

/**
 * Base64url as this relay writes it, and nothing else: Node's decoder skips characters it does not
 * know and trailing padding, so `sig`, `sig=` and `sig!` would all verify, and a limit counted per
 * link would count each spelling afresh.
 */
const canonical = (s: string): boolean =>
  /^[A-Za-z0-9_-]+$/.test(s) && Buffer.from(s, 'base64url').toString('base64url') === s;
/** An HMAC-SHA256 in base64url: 43 characters, the last of which carries 4 bits. */
const canonicalMac = (s: string): boolean => s.length === 43 && canonical(s);

const mac = (secret: string, payload: string): Buffer =>
  createHmac('sha256', secret).update(`callrelay-link.${payload}`).digest();

export function signLink(secret: string, claims: LinkClaims): string {
  const payload = b64(JSON.stringify(claims));
  return `${payload}.${b64(mac(secret, payload))}`;
}

export type Verified = { ok: true; claims: LinkClaims } | { ok: false; why: 'invalid' | 'expired' };

export function verifyLink(secret: string, token: string, nowMs = Date.now()): Verified {
  const [payload, sig, extra] = token.split('.');
  if (!payload || !sig || extra !== undefined || !canonical(payload) || !canonicalMac(sig))
    return { ok: false, why: 'invalid' };
  const want = mac(secret, payload);
  const got = Buffer.from(sig, 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want))
    return { ok: false, why: 'invalid' };
  let claims: LinkClaims;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as LinkClaims;
  } catch {
    return { ok: false, why: 'invalid' };
  }
  if (claims.e !== undefined && claims.e * 1000 <= nowMs) return { ok: false, why: 'expired' };
  return { ok: true, claims };
}

/**
 * The signature of a click-to-call link for one agent of one source (until `until`, seconds since
 * the epoch, 0: no expiry). The number is not signed: the CRM appends each contact's number.
 */
export function dialSignature(
  secret: string,
  source: string,
  agent: string,
  until: number,
): string {
  return mac(secret, `dial|${source}|${agent}|${until}`).toString('base64url');
}

/** Whether `sig` is that signature (constant time). */
export function dialSignatureOk(
  secret: string,
  q: { source: string; agent: string; until: number; sig: string },
): boolean {
  if (!canonicalMac(q.sig)) return false;
  const want = Buffer.from(dialSignature(secret, q.source, q.agent, q.until), 'base64url');
  const got = Buffer.from(q.sig, 'base64url');
  return got.length === want.length && timingSafeEqual(got, want);
}
