// Console sign-in without server state: the session cookie carries its own expiry and an HMAC of
// it, keyed by the admin token, so that any instance behind a load balancer accepts it and a new
// token signs everyone out. The CSRF token is another HMAC of the same session; together with the
// Origin / Sec-Fetch-Site check it keeps other sites from posting to the console.

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { RelayError } from '../../domain/errors.js';
import { requestOrigin, sameOrigin } from '../origin.js';

export const SESSION_COOKIE = 'callrelay_console';
const FLASH_COOKIE = 'callrelay_flash';
/** How long a sign-in lasts. */
export const SESSION_MS = 12 * 3600_000;

export interface Session {
  /** When it ends (ms since the epoch). */
  expiry: number;
  /** For the hidden `_csrf` field of every form, and the x-csrf-token header of fetches. */
  csrf: string;
}

const mac = (key: Buffer, what: string): string =>
  createHmac('sha256', key).update(what).digest('base64url');

const same = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

export class Sessions {
  private readonly key: Buffer;

  constructor(adminToken: string) {
    // A key of its own: the cookie never carries anything the admin API would accept.
    this.key = createHmac('sha256', adminToken).update('callrelay console session').digest();
  }

  private sessionOf(expiry: number): Session {
    return { expiry, csrf: mac(this.key, `csrf.${expiry}`) };
  }

  /** Sign in: the cookie for a new session. */
  start(c: Context, now = Date.now()): Session {
    const expiry = now + SESSION_MS;
    setCookie(c, SESSION_COOKIE, `${expiry}.${mac(this.key, `session.${expiry}`)}`, {
      httpOnly: true,
      sameSite: 'Strict',
      path: '/',
      maxAge: SESSION_MS / 1000,
      secure: requestOrigin(c).proto === 'https',
    });
    return this.sessionOf(expiry);
  }

  end(c: Context): void {
    deleteCookie(c, SESSION_COOKIE, { path: '/', secure: requestOrigin(c).proto === 'https' });
  }

  /** The request's session, if its cookie is genuine and not expired. */
  current(c: Context, now = Date.now()): Session | undefined {
    const raw = getCookie(c, SESSION_COOKIE);
    const m = raw ? /^(\d{13,16})\.([\w-]{43})$/.exec(raw) : null;
    if (!m) return undefined;
    const expiry = Number(m[1]);
    // A cookie from the future (clock skew aside) was not made here.
    if (expiry <= now || expiry > now + SESSION_MS + 60_000) return undefined;
    if (!same(m[2]!, mac(this.key, `session.${expiry}`))) return undefined;
    return this.sessionOf(expiry);
  }

  /**
   * A state-changing request must carry the session's CSRF token (form field or header) and come
   * from a page of this origin, as the browser states it (Origin, else Sec-Fetch-Site).
   */
  checkPost(c: Context, session: Session | undefined, form: Record<string, unknown>): void {
    sameOrigin(c);
    if (!session) return;
    const given = c.req.header('x-csrf-token') ?? form._csrf;
    if (typeof given !== 'string' || !same(given, session.csrf))
      throw new RelayError('RELAY_ERR_CSRF', 'refused: the form is from an older session or none');
  }

  /** A one-time message for the next page (after a POST that redirects). */
  flash(c: Context, kind: 'ok' | 'error', text: string): void {
    const body = Buffer.from(JSON.stringify({ kind, text: text.slice(0, 1500) })).toString(
      'base64url',
    );
    setCookie(c, FLASH_COOKIE, `${body}.${mac(this.key, `flash.${body}`)}`, {
      httpOnly: true,
      sameSite: 'Strict',
      path: '/console',
      maxAge: 60,
      secure: requestOrigin(c).proto === 'https',
    });
  }

  /** The message a previous POST left, once. Signed, so that no other site can plant one. */
  takeFlash(c: Context): { kind: 'ok' | 'error'; text: string } | undefined {
    const raw = getCookie(c, FLASH_COOKIE);
    if (!raw) return undefined;
    deleteCookie(c, FLASH_COOKIE, { path: '/console' });
    const [body, sig] = raw.split('.');
    if (!body || !sig || !same(sig, mac(this.key, `flash.${body}`))) return undefined;
    try {
      const v = JSON.parse(Buffer.from(body, 'base64url').toString()) as {
        kind: 'ok' | 'error';
        text: string;
      };
      return { kind: v.kind === 'ok' ? 'ok' : 'error', text: String(v.text) };
    } catch {
      return undefined;
    }
  }
}

/**
 * Slows guessing the admin token: every wrong token costs its sender a delay, and a client (or,
 * behind a shared proxy, everyone) gets a pause after too many. Per instance, in memory: a
 * restart or another instance starts counting afresh, which still keeps guessing hopeless.
 */
export class SignInThrottle {
  private readonly failures = new Map<string, number[]>();
  private everyone: number[] = [];

  constructor(
    readonly delayMs = 500,
    private readonly perClient = 10,
    private readonly overall = 100,
    private readonly windowMs = 10 * 60_000,
  ) {}

  private recent(list: number[] | undefined, now: number): number[] {
    return (list ?? []).filter((t) => t > now - this.windowMs);
  }

  /** Throws TOO_MANY_ATTEMPTS while the client (or everyone) has to wait. */
  check(client: string, now = Date.now()): void {
    const mine = this.recent(this.failures.get(client), now);
    this.everyone = this.recent(this.everyone, now);
    const minutes = (list: number[]): number =>
      Math.max(1, Math.ceil((list[0]! + this.windowMs - now) / 60_000));
    if (mine.length >= this.perClient)
      throw new RelayError(
        'RELAY_ERR_TOO_MANY_ATTEMPTS',
        `too many wrong tokens from here; try again in ${minutes(mine)} min`,
      );
    if (this.everyone.length >= this.overall)
      throw new RelayError(
        'RELAY_ERR_TOO_MANY_ATTEMPTS',
        `too many wrong tokens lately; try again in ${minutes(this.everyone)} min`,
      );
  }

  async failed(client: string, now = Date.now()): Promise<void> {
    const mine = [...this.recent(this.failures.get(client), now), now];
    // Re-inserted, so that the map's order is oldest activity first.
    this.failures.delete(client);
    this.failures.set(client, mine);
    this.everyone.push(now);
    // Bounded memory whatever the number of clients: forget the longest quiet one.
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!);
    await new Promise((r) => setTimeout(r, this.delayMs));
  }

  succeeded(client: string): void {
    this.failures.delete(client);
  }
}
