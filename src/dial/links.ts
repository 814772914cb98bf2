// An agent's click-to-call link and the confirmation that its page asks for. The link
// (<publicUrl>/dial?source=&agent=&until=&sig=&number=) is signed for one agent of one source until
// a time (lib/links.ts dialSignature); the CRM appends each contact's number, so the number cannot
// be signed into it. Opening it only shows a page; its "Call" button posts a confirmation token,
// an HMAC of the link and the number with a short expiry, so that a form another site builds, or
// a link previewer, cannot place a call and the number called is the one the page showed.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { dialSignature, dialSignatureOk } from '../lib/links.js';
import { DialRefused } from './policy.js';

export interface DialLink {
  source: string;
  agent: string;
  /** Seconds since the epoch. */
  until: number;
  sig: string;
}

/** How long the confirmation page's button works. */
export const CONFIRM_TTL_SEC = 10 * 60;

/** A link's query, signed (until in seconds since the epoch, never 0). */
export function makeDialLink(secret: string, source: string, agent: string, until: number): string {
  return new URLSearchParams({
    source,
    agent,
    until: String(until),
    sig: dialSignature(secret, source, agent, until),
  }).toString();
}

/**
 * The link a request names, if this relay signed it and it has not expired; else a RelayError
 * (LINK_INVALID, LINK_EXPIRED) whose `reason` the dial metric counts.
 */
export function verifyDialLink(
  secret: string,
  q: (k: string) => string,
  nowMs = Date.now(),
): DialLink {
  const link = { source: q('source'), agent: q('agent'), until: Number(q('until')), sig: q('sig') };
  if (!/^\d{1,12}$/.test(q('until')) || !dialSignatureOk(secret, link))
    throw new DialRefused('link', 'RELAY_ERR_LINK_INVALID');
  // Made before links expired by default: anyone who ever saw one could use it for ever.
  if (link.until === 0)
    throw new DialRefused(
      'expired',
      'RELAY_ERR_LINK_EXPIRED',
      'this link never expires, which click-to-call no longer accepts: ask for a new one ' +
        '(callrelay dial-link)',
    );
  if (link.until * 1000 <= nowMs)
    throw new DialRefused(
      'expired',
      'RELAY_ERR_LINK_EXPIRED',
      'the link has expired: ask for a new one (callrelay dial-link)',
    );
  return link;
}

const confirmMac = (secret: string, link: DialLink, e164: string, exp: number): Buffer =>
  createHmac('sha256', secret)
    .update(
      `callrelay-dial-confirm.${link.source}|${link.agent}|${link.until}|${link.sig}|${e164}|${exp}`,
    )
    .digest();

/** The confirmation token of the page that shows `e164` for `link`: its expiry and its MAC. */
export function confirmToken(
  secret: string,
  link: DialLink,
  e164: string,
  nowMs = Date.now(),
): { exp: number; token: string } {
  const exp = Math.floor(nowMs / 1000) + CONFIRM_TTL_SEC;
  return { exp, token: confirmMac(secret, link, e164, exp).toString('base64url') };
}

/** Throws DialRefused (csrf) unless `token` is the page's for this link and number, in time. */
export function checkConfirmToken(
  secret: string,
  link: DialLink,
  e164: string,
  given: { exp: string; token: string },
  nowMs = Date.now(),
): void {
  const exp = Number(given.exp);
  const now = nowMs / 1000;
  const want = Number.isInteger(exp) ? confirmMac(secret, link, e164, exp) : undefined;
  const got = Buffer.from(given.token, 'base64url');
  if (!want || got.length !== want.length || !timingSafeEqual(got, want))
    throw new DialRefused(
      'csrf',
      'RELAY_ERR_CSRF',
      'refused: the call was not confirmed on its own page; open the link again and press Call',
    );
  if (exp <= now || exp > now + CONFIRM_TTL_SEC + 60)
    throw new DialRefused(
      'csrf',
      'RELAY_ERR_CSRF',
      'the page was open too long: open the link again and press Call',
    );
}
