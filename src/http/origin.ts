// Where a browser says a request comes from. State-changing posts from the relay's own pages (the
// console's forms, a dial link's "Call" button) must come from a page of this origin, so that no
// other site can make a visitor's browser post them. And the policy those pages are served with.

import type { Context, MiddlewareHandler } from 'hono';
import { RelayError } from '../domain/errors.js';

/** The scheme and host the browser used (a TLS-terminating proxy says https in a header). */
export function requestOrigin(c: Context): { proto: 'http' | 'https'; host: string } {
  const first = (h: string | undefined): string | undefined =>
    h?.split(',')[0]?.trim() || undefined;
  const url = new URL(c.req.url);
  const fwd = first(c.req.header('x-forwarded-proto'))?.toLowerCase();
  const proto = fwd === 'https' || (!fwd && url.protocol === 'https:') ? 'https' : 'http';
  const host = first(c.req.header('x-forwarded-host')) ?? c.req.header('host') ?? url.host;
  return { proto, host };
}

/**
 * The request comes from a page of this relay (the console, a dial link's confirmation page), by
 * what the browser says about it: Sec-Fetch-Site where sent (every current browser), else Origin.
 * With Referrer-Policy no-referrer a browser's own form posts say `Origin: null`, which proves
 * nothing (a sandboxed frame elsewhere says the same).
 */
export function sameOrigin(c: Context): void {
  const origin = c.req.header('origin');
  const site = c.req.header('sec-fetch-site');
  if (site !== undefined && site !== 'same-origin')
    throw new RelayError('RELAY_ERR_CSRF', `refused: a ${site} request to this page`);
  if (origin !== undefined && origin !== 'null') {
    let host: string | undefined;
    try {
      host = new URL(origin).host;
    } catch {
      host = undefined;
    }
    if (host !== requestOrigin(c).host)
      throw new RelayError('RELAY_ERR_CSRF', `refused: a request from ${origin} to this page`);
    return;
  }
  // No matching Origin: only a browser's same-origin statement lets it through. Scripts use /api.
  if (site !== 'same-origin')
    throw new RelayError('RELAY_ERR_CSRF', 'refused: the request does not say where it came from');
}

/** The Content-Security-Policy of every page the relay serves (console, dial links). */
export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "media-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

/**
 * The headers of every page the relay serves: its CSP, no framing, no sniffing, no referrer, and
 * no cache unless the page chose one (pages show calls, numbers and stored requests).
 */
export const pageHeaders: MiddlewareHandler = async (c, next) => {
  await next();
  const h = c.res.headers;
  h.set('content-security-policy', CSP);
  h.set('x-content-type-options', 'nosniff');
  h.set('referrer-policy', 'no-referrer');
  h.set('x-frame-options', 'DENY');
  h.set('cross-origin-opener-policy', 'same-origin');
  h.set('cross-origin-resource-policy', 'same-origin');
  if (!h.has('cache-control')) h.set('cache-control', 'no-store');
};
