// Token checks shared by the webhook routes and the admin API, and who is asking.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context } from 'hono';

// Hashing first gives timingSafeEqual two buffers of one length, so that a wrong token's length
// leaks nothing either.
const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

// The configured tokens' digests, made once rather than on every webhook (a handful of entries:
// the admin token and one per source, replaced on reload).
const expectedDigests = new Map<string, Buffer>();
function expectedDigest(token: string): Buffer {
  let d = expectedDigests.get(token);
  if (!d) {
    if (expectedDigests.size >= 64) expectedDigests.clear();
    d = digest(token);
    expectedDigests.set(token, d);
  }
  return d;
}

export function tokenMatches(given: string | undefined, expected: string): boolean {
  return given !== undefined && timingSafeEqual(digest(given), expectedDigest(expected));
}

/** The connecting peer's address (undefined outside a Node server, e.g. app.request in tests). */
export function peerAddress(c: Context): string | undefined {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  return env?.incoming?.socket?.remoteAddress;
}

/** The token of an `Authorization: Bearer <token>` header, if there is one. */
export function bearer(c: Context): string | undefined {
  const h = c.req.header('authorization');
  const m = h ? /^Bearer\s+(.+)$/i.exec(h) : null;
  return m?.[1]?.trim();
}

/**
 * The password of an `Authorization: Basic` header (the user name is not looked at): how 3CX's CRM
 * templates authenticate (`<Authentication Type="Basic"><Value>3cx:[Token]</Value>`).
 */
export function basicPassword(c: Context): string | undefined {
  const h = c.req.header('authorization');
  const m = h ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(h) : null;
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

/** A request path fit for a log line: the token segment of a webhook URL masked. */
export function loggablePath(path: string): string {
  return path.replace(/^(\/hooks\/[^/]+\/)[^/]+/, '$1***');
}
