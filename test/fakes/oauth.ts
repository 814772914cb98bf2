// A fake OAuth 2 authorization server and the API it guards, on 127.0.0.1, for kit/oauth.ts's
// tests. POST /token follows RFC 6749: the client_credentials (4.4) and refresh_token (6) grants,
// form-encoded, client credentials in the body or as HTTP Basic (2.3.1), errors as JSON
// `{error, error_description}` with 400 (401 for a client that failed to authenticate, 5.2). It
// can rotate the refresh token on every use (the old one stops working, as Zoho and Salesforce
// may), answer without expires_in, hold its answers back (so that requests overlap) and fail on
// request. GET /api/... answers 200 to a live access token and 401 to anything else.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { LocalServer } from './local-server.js';

export interface TokenRequest {
  grant: string;
  clientAuth: 'body' | 'basic';
  refreshToken?: string;
  scope?: string;
}

export class FakeOAuth extends LocalServer {
  readonly clientId = 'client-7f3a';
  readonly clientSecret = `secret-${randomBytes(12).toString('hex')}`;
  /** Every token request, in order. */
  readonly tokenRequests: TokenRequest[] = [];
  /** Refresh tokens the server honours. */
  readonly refreshTokens = new Set<string>();
  /** Issue a new refresh token on every refresh, revoking the one used. */
  rotate = false;
  /** expires_in of new tokens; undefined: the answer has none. */
  lifetimeSec: number | undefined = 3600;
  /** How long a token answer takes (so that concurrent callers overlap). */
  delayMs = 50;
  /** Answers to give instead of the next token requests. */
  readonly failures: { status: number; body: unknown; headers?: Record<string, string> }[] = [];
  /** Live access tokens. */
  private readonly live = new Set<string>();
  /** Requests to the API, with the status each got. */
  readonly apiCalls: number[] = [];

  /** A refresh token the server honours (what an admin gets by authorizing the app). */
  newRefreshToken(): string {
    const t = `refresh-${randomBytes(12).toString('hex')}`;
    this.refreshTokens.add(t);
    return t;
  }

  /** Every access token issued so far stops working (expired or revoked early). */
  expireAll(): void {
    this.live.clear();
  }

  isLive(token: string): boolean {
    return this.live.has(token);
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'POST' && url.pathname === '/token')
      return this.token(req, Buffer.concat(chunks).toString('utf8'), res);
    if (url.pathname.startsWith('/api/')) {
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const ok = !!bearer && this.live.has(bearer);
      this.apiCalls.push(ok ? 200 : 401);
      return json(res, ok ? 200 : 401, ok ? { ok: true } : { error: 'INVALID_SESSION_ID' });
    }
    json(res, 404, { error: 'not found' });
  }

  private async token(req: IncomingMessage, raw: string, res: ServerResponse): Promise<void> {
    const form = new URLSearchParams(raw);
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    let id = form.get('client_id');
    let secret = form.get('client_secret');
    if (basic) {
      const [u, p] = Buffer.from(basic, 'base64').toString('utf8').split(':');
      [id, secret] = [decodeURIComponent(u ?? ''), decodeURIComponent(p ?? '')];
    }
    const grant = form.get('grant_type') ?? '';
    const r: TokenRequest = { grant, clientAuth: basic ? 'basic' : 'body' };
    if (form.has('refresh_token')) r.refreshToken = form.get('refresh_token')!;
    if (form.has('scope')) r.scope = form.get('scope')!;
    this.tokenRequests.push(r);
    await new Promise((ok) => setTimeout(ok, this.delayMs));
    const failure = this.failures.shift();
    if (failure) return json(res, failure.status, failure.body, failure.headers);
    if (req.headers['content-type'] !== 'application/x-www-form-urlencoded')
      return json(res, 400, { error: 'invalid_request', error_description: 'form expected' });
    if (id !== this.clientId || secret !== this.clientSecret)
      return json(res, 401, {
        error: 'invalid_client',
        error_description: `client authentication failed for ${id}`,
      });
    const answer: Record<string, unknown> = { token_type: 'Bearer', api_domain: this.url };
    if (grant === 'refresh_token') {
      const used = form.get('refresh_token') ?? '';
      if (!this.refreshTokens.has(used))
        return json(res, 400, {
          error: 'invalid_grant',
          // Some servers echo what they refused: the relay must not pass it on.
          error_description: `refresh token ${used} is expired or revoked`,
        });
      if (this.rotate) {
        this.refreshTokens.delete(used);
        answer.refresh_token = this.newRefreshToken();
      }
    } else if (grant !== 'client_credentials') {
      return json(res, 400, { error: 'unsupported_grant_type' });
    }
    const access = `access-${randomBytes(12).toString('hex')}`;
    this.live.add(access);
    answer.access_token = access;
    if (this.lifetimeSec !== undefined) answer.expires_in = this.lifetimeSec;
    json(res, 200, answer);
  }
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}
