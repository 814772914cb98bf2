// Console and agent sessions: a sign-in is a row in the store, so that signing out ends it on the
// server and on every instance that shares the store. The cookie carries a random secret; the store
// keeps only a hash of it keyed by the admin token, so that a new token makes every old session
// unfindable (everyone is signed out) and the table is no list of ways in. A session ends when
// unused for admin.sessionIdleMin or admin.sessionMaxHours after sign-in. Its CSRF token is another
// keyed hash of the same secret; together with the Origin / Sec-Fetch-Site check it keeps other
// sites from posting to the console.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { RelayError } from '../../domain/errors.js';
import type { Store } from '../../store/types.js';
import type { AuthGate } from '../gate.js';
import { requestOrigin, sameOrigin } from '../origin.js';

export const SESSION_COOKIE = 'callrelay_console';
const FLASH_COOKIE = 'callrelay_flash';
/** last-seen is written at most this often, so that a page view is not a write each time. */
const TOUCH_MS = 60_000;

export interface Session {
  /** Stable for the session's life and never the cookie's secret (safe to key state on). */
  id: string;
  /** When it ends at the latest (ms since the epoch). */
  expiry: number;
  /** For the hidden `_csrf` field of every form, and the x-csrf-token header of fetches. */
  csrf: string;
  /**
   * An agent's session: their extension (relay.yaml agents:). Absent: the admin's. `current()`
   * finds only the admin's and `currentAgent()` only an agent's, so that no console page or API
   * route can take an agent's session by forgetting to look.
   */
  agent?: string;
  /**
   * With `agent`: their directory email at sign-in, lowercased (absent: they had none). The agent
   * pages let the session through only while the directory still has that email for the
   * extension, so that it stays with the person rather than the extension.
   */
  email?: string;
}

/** Whom an agent's session or sign-in link is for: the extension, and the person by their email. */
export interface AgentIdentity {
  extension: string;
  email?: string | undefined;
}

/** An email as sessions keep it: lowercased, none for none. */
export const emailKey = (email: string | undefined): string | undefined =>
  email ? email.trim().toLowerCase() : undefined;

const mac = (key: Buffer, what: string): string =>
  createHmac('sha256', key).update(what).digest('base64url');

const same = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

export class Sessions {
  private keyOf: { token: string; key: Buffer } | undefined;

  constructor(
    private readonly store: Pick<
      Store,
      | 'createSession'
      | 'getSession'
      | 'touchSession'
      | 'deleteSession'
      | 'pruneSessions'
      | 'createSignInLink'
      | 'takeSignInLink'
    >,
    private readonly gate: AuthGate,
  ) {}

  /** A key of its own: the cookie never carries anything the admin API would accept. */
  private get key(): Buffer {
    const token = this.gate.settings.adminToken ?? '';
    if (this.keyOf?.token !== token)
      this.keyOf = {
        token,
        key: createHmac('sha256', token).update('callrelay console session').digest(),
      };
    return this.keyOf.key;
  }

  private sessionOf(secret: string, expiry: number, who?: AgentIdentity): Session {
    const email = emailKey(who?.email);
    return {
      id: mac(this.key, `session.${secret}`),
      expiry,
      csrf: mac(this.key, `csrf.${secret}`),
      ...(who === undefined ? {} : { agent: who.extension }),
      ...(who === undefined || email === undefined ? {} : { email }),
    };
  }

  /**
   * Sign in: a new session in the store, and its cookie (replacing any other session of this
   * browser). Ended ones are pruned on the way. `agent`: an agent's, for their extension and the
   * email the directory has for them now.
   */
  async start(c: Context, agent?: AgentIdentity): Promise<Session> {
    const now = this.gate.now();
    const { sessionIdleMs, sessionMaxMs } = this.gate.settings;
    await this.store.pruneSessions({
      now: new Date(now).toISOString(),
      idleSince: new Date(now - sessionIdleMs).toISOString(),
    });
    const secret = randomBytes(32).toString('base64url');
    const session = this.sessionOf(secret, now + sessionMaxMs, agent);
    const at = new Date(now).toISOString();
    await this.store.createSession({
      id: session.id,
      createdAt: at,
      lastSeenAt: at,
      expiresAt: new Date(session.expiry).toISOString(),
      ...(session.agent === undefined ? {} : { agent: session.agent }),
      ...(session.email === undefined ? {} : { email: session.email }),
    });
    setCookie(c, SESSION_COOKIE, secret, {
      httpOnly: true,
      sameSite: 'Strict',
      path: '/',
      maxAge: Math.floor(sessionMaxMs / 1000),
      secure: requestOrigin(c).proto === 'https',
    });
    return session;
  }

  /**
   * A one-time sign-in link's secret for an agent, good for `ttlMs`: the store keeps only its
   * keyed hash (a new admin token voids every link not used yet, as it ends every session).
   */
  async issueSignInLink(
    agent: AgentIdentity,
    ttlMs: number,
  ): Promise<{ secret: string; expiresAt: string }> {
    const secret = randomBytes(32).toString('base64url');
    const now = this.gate.now();
    const expiresAt = new Date(now + ttlMs).toISOString();
    const email = emailKey(agent.email);
    await this.store.createSignInLink({
      id: mac(this.key, `link.${secret}`),
      agent: agent.extension,
      ...(email === undefined ? {} : { email }),
      createdAt: new Date(now).toISOString(),
      expiresAt,
    });
    return { secret, expiresAt };
  }

  /**
   * Use a sign-in link (once, whichever instance is asked): whom it was made for, undefined if it
   * is unknown, used or expired. The caller starts the session, after checking the directory
   * still has that person at that extension.
   */
  async takeSignInLink(secret: string): Promise<AgentIdentity | undefined> {
    if (!/^[\w-]{43}$/.test(secret) || !this.gate.settings.adminToken) return undefined;
    const taken = await this.store.takeSignInLink(
      mac(this.key, `link.${secret}`),
      new Date(this.gate.now()).toISOString(),
    );
    return taken && { extension: taken.agent, email: taken.email };
  }

  /** Sign out: the session is gone from the store (every instance), and the cookie cleared. */
  async end(c: Context): Promise<void> {
    const secret = this.secretOf(c);
    if (secret) await this.store.deleteSession(this.sessionOf(secret, 0).id);
    deleteCookie(c, SESSION_COOKIE, { path: '/', secure: requestOrigin(c).proto === 'https' });
  }

  private secretOf(c: Context): string | undefined {
    const raw = getCookie(c, SESSION_COOKIE);
    return raw && /^[\w-]{43}$/.test(raw) ? raw : undefined;
  }

  /**
   * The request's admin session, if its cookie names one in the store that has not ended. `touch:
   * false` for what a page does by itself (live updates, their fetches): that is no one using it,
   * and must not hold off the idle timeout.
   */
  async current(c: Context, opts: { touch?: boolean } = {}): Promise<Session | undefined> {
    const s = await this.any(c, opts);
    return s && s.agent === undefined ? s : undefined;
  }

  /** The request's agent session (one with an extension), as `current` finds the admin's. */
  async currentAgent(
    c: Context,
    opts: { touch?: boolean } = {},
  ): Promise<(Session & { agent: string }) | undefined> {
    const s = await this.any(c, opts);
    return s?.agent === undefined ? undefined : (s as Session & { agent: string });
  }

  private async any(c: Context, opts: { touch?: boolean }): Promise<Session | undefined> {
    const secret = this.secretOf(c);
    if (!secret || !this.gate.settings.adminToken) return undefined;
    const { id } = this.sessionOf(secret, 0);
    const row = await this.store.getSession(id);
    if (!row) return undefined;
    const now = this.gate.now();
    const { sessionIdleMs, sessionMaxMs } = this.gate.settings;
    // Settings lowered since sign-in apply to sessions already open.
    const expiry = Math.min(Date.parse(row.expiresAt), Date.parse(row.createdAt) + sessionMaxMs);
    const seen = Date.parse(row.lastSeenAt);
    if (now >= expiry || now - seen >= sessionIdleMs) return undefined;
    if (opts.touch !== false && now - seen >= TOUCH_MS)
      await this.store.touchSession(id, new Date(now).toISOString());
    return this.sessionOf(
      secret,
      expiry,
      row.agent === undefined ? undefined : { extension: row.agent, email: row.email },
    );
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
