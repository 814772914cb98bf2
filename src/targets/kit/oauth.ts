// OAuth 2 for targets (recipes' `client_credentials` and `refresh_token` auth): the access token is
// fetched from the token endpoint (RFC 6749 4.4 and 6, form-encoded, client credentials in the
// body or as Basic), kept in memory and in the store, and fetched anew a minute (or a tenth of its
// life) before it expires, or after the CRM refused it.
//
// One refresh at a time: within the process every caller waits for the one token request in
// flight; across instances the store's lease decides who asks, and the others wait for the stored
// version to move on and use that token (a holder that died loses its lease when it runs out).
// Many providers allow few token requests (Zoho: a handful per minute) and some rotate the refresh
// token on every use, so two instances refreshing at once could lock each other out.
//
// The stored value is sealed (AES-256-GCM) with a key derived from the configured client secret
// and the target's name: a copy of the database alone opens nothing. It carries a fingerprint of
// the configuration it came from, so that a refresh token the admin pasted into relay.yaml wins
// over one rotated from an older configured token.

import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  hkdfSync,
  randomBytes,
  randomUUID,
} from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import type { Logger } from '../../telemetry/log.js';
import type { StoredCredential, TargetTokens } from '../types.js';
import type { CrmAuth } from './auth.js';
import { flatHeaders, networkCode, pathOf } from './client.js';
import { DeliveryError, TokenEndpointError, networkHint } from './errors.js';
import { retryAfterMs } from './policy.js';
import { recordRequest, requestIdOf } from './trace.js';

export interface OAuthOptions {
  /** The target's name: the store's key, part of the sealing key, and named in errors. */
  target: string;
  grant: 'client_credentials' | 'refresh_token';
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  /** The configured refresh token (grant `refresh_token`). */
  refreshToken?: string;
  scope?: string;
  /** Client id and secret as form fields, or as HTTP Basic (RFC 6749 2.3.1). */
  clientAuth: 'body' | 'basic';
  /** The token's life when the answer has no expires_in (Salesforce); default one hour. */
  lifetimeSec?: number;
  /** The headers that carry an access token. */
  header: (token: string) => Record<string, string>;
  /** The API's base URL from the token answer (Salesforce instance_url, Zoho api_domain). */
  apiUrl?: (answer: {
    status: number;
    headers: Record<string, string>;
    body: unknown;
  }) => string | undefined;
  /** Where instances share the token (the store); without it, memory only. */
  tokens?: TargetTokens;
  log: Logger;
  timeoutMs: number;
  /**
   * Told every token this module learns, so that nothing shown ever contains one; a refreshed
   * token under a key, so that only the current and the previous one are kept.
   */
  redact?: (secret: string, key?: string) => void;
  /** The clock (tests); default Date.now. */
  now?: () => number;
}

/** What is sealed into the store. */
interface Credential {
  accessToken: string;
  issuedAt: number;
  expiresAt: number;
  /** The newest refresh token (a rotated one), grant `refresh_token` only. */
  refreshToken?: string;
  apiUrl?: string;
  /** Fingerprint of the configuration the credential came from. */
  config: string;
}

const OPERATION = 'fetching an access token';
/** Token endpoint error codes that no retry will cure. Zoho says invalid_code for invalid_grant. */
const REFUSED_GRANT = new Set(['invalid_grant', 'invalid_code']);
/** Token requests too frequent (Zoho answers 400 `Access Denied`): wait, never dead-letter. */
const THROTTLED = new Set(['access denied', 'slow_down', 'temporarily_unavailable']);
/** The least pause after throttling, and how long a failed refresh is not asked again. */
const THROTTLE_MS = 60_000;
/**
 * Failed token requests by target and configuration: until then, fail fast rather than ask again
 * (a provider allowing a handful of token requests a minute would lock the client out). Module-wide
 * so that a reload's new target with the same configuration also waits.
 */
const failedUntil = new Map<string, { until: number; message: string }>();

export function oauthAuth(o: OAuthOptions): CrmAuth {
  return new OAuth(o);
}

class OAuth implements CrmAuth {
  private token: Credential | undefined;
  /** The access token the CRM refused (401): not used again. */
  private refused: string | undefined;
  private flight: Promise<Credential> | undefined;
  /** A token the store failed to keep: its refresh token is the live one (rotation). */
  private unsaved: Credential | undefined;
  private readonly owner = randomUUID();
  private readonly key: Buffer;
  private readonly config: string;
  private readonly leaseMs: number;
  private readonly now: () => number;
  private readonly dispatcher: Dispatcher;

  constructor(private readonly o: OAuthOptions) {
    this.now = o.now ?? Date.now;
    this.key = Buffer.from(
      hkdfSync('sha256', o.clientSecret, 'callrelay target credential', o.target, 32),
    );
    this.config = createHmac('sha256', this.key)
      .update(JSON.stringify([o.grant, o.clientId, o.refreshToken]))
      .digest('base64url')
      .slice(0, 22);
    // Long enough for one token request (connect, answer, body), short enough that the others
    // soon go on when the holder died.
    this.leaseMs = 2 * o.timeoutMs + 5000;
    this.dispatcher = new Agent({ connect: { timeout: o.timeoutMs } });
    o.redact?.(o.clientSecret);
    if (o.refreshToken) o.redact?.(o.refreshToken);
  }

  async headers(): Promise<Record<string, string>> {
    return this.o.header((await this.valid()).accessToken);
  }

  async rejected(sent: Record<string, string>): Promise<boolean> {
    // Only the token these headers carried is refused; one refreshed meanwhile is kept, so that
    // any number of concurrent 401s lead to one refresh.
    const t = this.token;
    if (t && this.carries(sent, t.accessToken)) this.refused = t.accessToken;
    return true;
  }

  baseUrl(): string | undefined {
    return this.token?.apiUrl;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  private carries(sent: Record<string, string>, token: string): boolean {
    const lower = new Map(Object.entries(sent).map(([k, v]) => [k.toLowerCase(), v]));
    return Object.entries(this.o.header(token)).every(([k, v]) => lower.get(k.toLowerCase()) === v);
  }

  /** Still good to send: not refused, and not yet within its refresh margin. */
  private usable(t: Credential | undefined): boolean {
    if (!t || t.accessToken === this.refused) return false;
    const margin = Math.min(60_000, (t.expiresAt - t.issuedAt) / 10);
    return this.now() < t.expiresAt - margin;
  }

  private valid(): Promise<Credential> {
    if (this.token && this.usable(this.token)) return Promise.resolve(this.token);
    this.flight ??= this.renew().finally(() => (this.flight = undefined));
    return this.flight;
  }

  private adopt(t: Credential): Credential {
    this.token = t;
    this.o.redact?.(t.accessToken, `${this.o.target} access token`);
    if (t.refreshToken) this.o.redact?.(t.refreshToken, `${this.o.target} refresh token`);
    return t;
  }

  private async renew(): Promise<Credential> {
    const store = this.o.tokens;
    if (!store) {
      const t = await this.fetchOnce(this.token?.refreshToken ?? this.o.refreshToken);
      this.refused = undefined;
      return this.adopt(t);
    }
    const deadline = this.now() + 2 * this.leaseMs;
    let pause = 25;
    for (;;) {
      const stored = this.open(await this.ask('reading', () => store.get(this.o.target)));
      if (stored && this.usable(stored)) return this.adopt(stored);
      if (await this.ask('leasing', () => store.lease(this.o.target, this.owner, this.leaseMs)))
        return this.renewHolding(store);
      // Another instance is asking: its token appears as a new stored version. A holder that
      // fails gives the lease back, and one that died loses it: either way the lease comes free.
      if (this.now() > deadline)
        throw new DeliveryError(
          `${OPERATION} for target "${this.o.target}": another instance has been fetching it ` +
            `for ${Math.round((2 * this.leaseMs) / 1000)}s`,
          { retryable: true },
        );
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(250, pause * 2);
    }
  }

  /** With the lease: ask the token endpoint, store the answer, give the lease back. */
  private async renewHolding(store: TargetTokens): Promise<Credential> {
    try {
      // Stored between our read and our lease by an instance that held it before.
      const latest = await this.ask('reading', () => store.get(this.o.target));
      const stored = this.open(latest);
      if (stored && this.usable(stored)) return this.adopt(stored);
      // A token the store failed to keep is newer than what it holds, unless another instance
      // stored one since.
      const from =
        this.unsaved && (!stored || stored.issuedAt <= this.unsaved.issuedAt)
          ? this.unsaved
          : stored;
      let t: Credential;
      try {
        t = await this.fetchOnce(
          from?.refreshToken ?? this.token?.refreshToken ?? this.o.refreshToken,
          AbortSignal.timeout(this.leaseMs - 5000),
        );
      } catch (err) {
        // Another instance (whose lease we outlived, or whose write we did not yet see) may have
        // used the refresh token we sent and stored its successor with a fresh access token.
        if (!(err instanceof TokenEndpointError && err.refusedGrant)) throw err;
        const now = this.open(await this.ask('reading', () => store.get(this.o.target)));
        if (now && this.usable(now) && now.issuedAt > (stored?.issuedAt ?? 0)) {
          failedUntil.delete(this.memo());
          this.refused = undefined;
          return this.adopt(now);
        }
        throw err;
      }
      // Adopted before storing: the fetch used up a rotating refresh token, so the new one must
      // not be lost if the store fails now; the next refresh uses it and a later write keeps it.
      this.refused = undefined;
      this.adopt(t);
      this.unsaved = t;
      let kept: boolean;
      try {
        kept = await store.put(this.o.target, this.seal(t), latest?.version ?? 0);
      } catch (err) {
        this.o.log.warn(
          { target: this.o.target, err: (err as Error).message },
          'storing the access token failed; this instance keeps it in memory and stores the next',
        );
        return t;
      }
      this.unsaved = undefined;
      // Only if a holder's lease ran out while it was still asking: ours is as new as theirs.
      if (!kept)
        this.o.log.warn(
          { target: this.o.target },
          'another instance stored an access token at the same time; this one keeps its own',
        );
      return t;
    } finally {
      await store.release(this.o.target, this.owner).catch(() => {});
    }
  }

  /** A store failure as the delivery sees it: try again later. */
  private async ask<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new DeliveryError(
        `${doing} the stored access token of target "${this.o.target}": ${(err as Error).message}`,
        { retryable: true, cause: err },
      );
    }
  }

  private seal(t: Credential): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(this.o.target));
    const body = Buffer.concat([c.update(JSON.stringify(t), 'utf8'), c.final()]);
    return `v1.${Buffer.concat([iv, c.getAuthTag(), body]).toString('base64url')}`;
  }

  /**
   * The stored credential, if this configuration sealed it: one sealed under another client
   * secret does not open, and one from another configured refresh token (or client, grant) is not
   * used: the configured values win. A new token URL or scope keeps it (a rotated refresh token
   * stays the only one that works).
   */
  private open(s: StoredCredential | undefined): Credential | undefined {
    if (!s?.value.startsWith('v1.')) return undefined;
    try {
      const raw = Buffer.from(s.value.slice(3), 'base64url');
      const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
      d.setAAD(Buffer.from(this.o.target));
      d.setAuthTag(raw.subarray(12, 28));
      const t = JSON.parse(
        Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8'),
      ) as Credential;
      return t.config === this.config ? t : undefined;
    } catch {
      return undefined;
    }
  }

  private memo(): string {
    return `${this.o.target}\u0000${this.config}`;
  }

  /**
   * A token request, unless one for this configuration failed less than a minute ago: then the
   * same answer, retryable after the rest of that minute, without asking the endpoint.
   */
  private async fetchOnce(
    refreshToken: string | undefined,
    signal?: AbortSignal,
  ): Promise<Credential> {
    const failed = failedUntil.get(this.memo());
    const left = failed ? failed.until - this.now() : 0;
    if (failed && left > 0)
      throw new TokenEndpointError(
        `${failed.message} (not asked again for ${Math.ceil(left / 1000)}s)`,
        { retryable: true, retryAfterMs: left },
      );
    try {
      const t = await this.fetch(refreshToken, signal);
      failedUntil.delete(this.memo());
      return t;
    } catch (err) {
      const wait = Math.max(THROTTLE_MS, (err as DeliveryError).retryAfterMs ?? 0);
      failedUntil.set(this.memo(), { until: this.now() + wait, message: (err as Error).message });
      throw err;
    }
  }

  /** One token request (RFC 6749 4.4 / 6), traced as an operation without its body. */
  private async fetch(refreshToken: string | undefined, signal?: AbortSignal): Promise<Credential> {
    const o = this.o;
    const form = new URLSearchParams({ grant_type: o.grant });
    if (o.grant === 'refresh_token') form.set('refresh_token', refreshToken ?? '');
    if (o.scope) form.set('scope', o.scope);
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    if (o.clientAuth === 'basic') {
      // RFC 6749 2.3.1: each part form-encoded, then Basic.
      const enc = (s: string): string => new URLSearchParams({ x: s }).toString().slice(2);
      headers.authorization = `Basic ${Buffer.from(`${enc(o.clientId)}:${enc(o.clientSecret)}`).toString('base64')}`;
    } else {
      form.set('client_id', o.clientId);
      form.set('client_secret', o.clientSecret);
    }
    const started = performance.now();
    const trace = {
      operation: OPERATION,
      method: 'POST',
      path: pathOf(o.tokenUrl),
      startedAt: new Date().toISOString(),
      waitedMs: 0,
    };
    let answer: { status: number; headers: Record<string, string>; body: unknown };
    try {
      const res = await request(o.tokenUrl, {
        method: 'POST',
        headers,
        body: form.toString(),
        dispatcher: this.dispatcher,
        headersTimeout: o.timeoutMs,
        bodyTimeout: o.timeoutMs,
        // Within the lease: a slow answer must not outlive it (another instance would ask too).
        ...(signal ? { signal } : {}),
      });
      const text = await res.body.text();
      answer = { status: res.statusCode, headers: flatHeaders(res.headers), body: parse(text) };
    } catch (err) {
      const code = networkCode(err);
      const hint = networkHint(code, 'the token endpoint');
      const e = new TokenEndpointError(
        `${OPERATION} for target "${o.target}": ${code || (err as Error).message}` +
          (hint ? ` ${hostOf(o.tokenUrl)}: ${hint}` : ''),
        { retryable: true, cause: err },
      );
      recordRequest({
        ...trace,
        durationMs: ms(started),
        status: null,
        requestId: null,
        error: e.message,
      });
      throw e;
    }
    const requestId = requestIdOf(answer.headers);
    const body = (answer.body && typeof answer.body === 'object' ? answer.body : {}) as Record<
      string,
      unknown
    >;
    const ok = answer.status >= 200 && answer.status < 300 && typeof body.access_token === 'string';
    const error = ok ? undefined : this.failure(answer.status, answer.headers, body, requestId);
    recordRequest({
      ...trace,
      durationMs: ms(started),
      status: answer.status,
      requestId,
      error: error?.message ?? null,
    });
    if (error) throw error;
    const now = this.now();
    const life = Number(body.expires_in);
    const lifeSec = Number.isFinite(life) && life > 0 ? life : (o.lifetimeSec ?? 3600);
    const rotated = typeof body.refresh_token === 'string' ? body.refresh_token : undefined;
    let apiUrl: string | undefined;
    try {
      apiUrl = o.apiUrl?.(answer);
    } catch (err) {
      // The recipe's expression, not the CRM: retrying would fail the same way.
      throw new TokenEndpointError(
        `${OPERATION} for target "${o.target}": reading the API URL from the token answer: ${this.scrub((err as Error).message, body)}`,
        { retryable: false, cause: err },
      );
    }
    const t: Credential = {
      accessToken: body.access_token as string,
      issuedAt: now,
      expiresAt: now + lifeSec * 1000,
      ...(o.grant === 'refresh_token' ? { refreshToken: rotated ?? refreshToken } : {}),
      ...(apiUrl ? { apiUrl } : {}),
      config: this.config,
    };
    o.log.info(
      { target: o.target, expiresInSec: lifeSec, rotatedRefreshToken: !!rotated },
      'fetched an OAuth access token',
    );
    return t;
  }

  /** The token endpoint's refusal as a delivery error: what to fix, or when to try again. */
  private failure(
    status: number,
    headers: Record<string, string>,
    body: Record<string, unknown>,
    requestId: string | null,
  ): DeliveryError {
    // The provider's code is its words too (Zoho's is a sentence): scrubbed like its description.
    const code = typeof body.error === 'string' ? this.scrub(body.error).slice(0, 60) : '';
    const told =
      typeof body.error_description === 'string' ? this.scrub(body.error_description) : '';
    const said = `${status}${code ? ` ${code}` : ''}${told ? ` (${told})` : ''}`;
    const head = `${OPERATION} for target "${this.o.target}": the token endpoint answered ${said}`;
    const where = `targets[${this.o.target}].auth in relay.yaml`;
    const dead = (fix: string, refusedGrant = false): DeliveryError =>
      new TokenEndpointError(`${head}; ${fix}`, {
        retryable: false,
        status,
        requestId,
        refusedGrant,
      });
    if (THROTTLED.has(code.toLowerCase()))
      return new TokenEndpointError(`${head}; too many token requests: waiting before the next`, {
        retryable: true,
        status,
        requestId,
        retryAfterMs: Math.max(THROTTLE_MS, retryAfterMs(headers['retry-after']) ?? 0),
      });
    if (REFUSED_GRANT.has(code))
      return dead(
        this.o.grant === 'refresh_token'
          ? `the refresh token is expired or revoked: authorize again and put the new refreshToken in ${where}`
          : `the grant was refused: check that the client may use client credentials and the scope`,
        true,
      );
    if (code === 'invalid_client' || code === 'invalid_client_secret')
      return dead(`the client was not recognised: check clientId and clientSecret in ${where}`);
    if (code === 'unauthorized_client')
      return dead(
        `this client may not use the ${this.o.grant} grant: allow it in the CRM's app settings, or check clientId in ${where}`,
      );
    if (status === 429 || status === 408 || status >= 500)
      return new TokenEndpointError(head, {
        retryable: true,
        status,
        requestId,
        retryAfterMs: retryAfterMs(headers['retry-after']),
      });
    if (status >= 200 && status < 300 && !code)
      return dead('the answer has no access_token: check tokenUrl');
    return dead(`check tokenUrl, scope and the client's settings`);
  }

  /** The provider's own words, without anything secret that it might echo back. */
  private scrub(text: string, answer: Record<string, unknown> = {}): string {
    let out = text;
    const secrets = [
      this.o.clientSecret,
      this.o.refreshToken,
      this.token?.refreshToken,
      answer.access_token,
      answer.refresh_token,
    ].filter((s): s is string => typeof s === 'string');
    for (const s of secrets) if (s.length >= 4) out = out.split(s).join('[redacted]');
    // Cut after scrubbing: a cut secret would no longer be found.
    return out.slice(0, 200);
  }
}

const ms = (since: number): number => Math.round(performance.now() - since);

function parse(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // Some endpoints answer form-encoded unless told otherwise.
    return text.includes('=') ? Object.fromEntries(new URLSearchParams(text)) : text;
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}
