// The CRM client and a credential that can go stale (an OAuth token): headers asked per request,
// a 401 reported, one more try with fresh headers when the credential says it may work, never a
// loop; a fixed credential's 401 is final at once. The API base URL a token answer named wins.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalServer } from '../../../test/fakes/local-server.js';
import type { CrmAuth } from './auth.js';
import { fixedAuth } from './auth.js';
import { CrmClient, type CrmClientOptions, type Review } from './client.js';
import { DeliveryError } from './errors.js';
import { WindowLimiter, type Release } from './limiter.js';
import { traceRequests, type RequestTrace } from './trace.js';

/** Answers 200 to the current token only, 401 to anything else; logs what it got. */
class TokenServer extends LocalServer {
  valid = 'B';
  /** Refuse with this status (a CRM that says "session expired" in a 200 or a 403). */
  refusal = 401;
  readonly seen: { auth: string | undefined; path: string }[] = [];
  protected handle(req: IncomingMessage, res: ServerResponse): void {
    this.seen.push({ auth: req.headers.authorization, path: req.url ?? '' });
    const ok = req.headers.authorization === `Bearer ${this.valid}`;
    res.writeHead(ok ? 200 : this.refusal, { 'content-type': 'application/json' });
    res.end(JSON.stringify(ok ? { ok: true } : { ok: false, message: 'token expired' }));
  }
}

/** Counts the slots taken. */
class CountingLimiter extends WindowLimiter {
  taken = 0;
  override acquire(maxWaitMs?: number): Promise<Release> {
    this.taken++;
    return super.acquire(maxWaitMs);
  }
}

/** A token that is refreshed when refused: A first, then B, C, ... */
function rotating(base?: string): CrmAuth & { refreshed: number } {
  const tokens = ['A', 'B', 'C', 'D'];
  const a = {
    refreshed: 0,
    headers: () => Promise.resolve({ authorization: `Bearer ${tokens[a.refreshed]}` }),
    rejected: () => {
      a.refreshed++;
      return Promise.resolve(true);
    },
    ...(base ? { baseUrl: () => base } : {}),
  };
  return a;
}

describe('CrmClient with a CrmAuth', () => {
  const open: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
  });
  const client = (baseUrl: string, auth: CrmAuth, o: Partial<CrmClientOptions> = {}) => {
    const c = new CrmClient({
      crm: 'Test CRM',
      baseUrl,
      headers: {},
      auth,
      limiter: new WindowLimiter(100, 1000),
      quickRetries: 0,
      ...o,
    });
    open.push(c);
    return c;
  };

  it('after a 401 asks the credential, and tries once more with fresh headers', async () => {
    const srv = await new TokenServer().start();
    open.push(srv);
    const auth = rotating();
    const res = await client(srv.url, auth).call({
      method: 'GET',
      path: '/x',
      idempotent: true,
      what: 'reading x',
    });
    expect(res.status).toBe(200);
    expect(srv.seen.map((s) => s.auth)).toEqual(['Bearer A', 'Bearer B']);
    expect(auth.refreshed).toBe(1);
  });

  it('the first 401 shows in the trace, and the request sent again takes a limiter slot', async () => {
    const srv = await new TokenServer().start();
    open.push(srv);
    const limiter = new CountingLimiter(100, 1000);
    const trace: RequestTrace[] = [];
    await traceRequests(trace, () =>
      client(srv.url, rotating(), { limiter }).call({
        method: 'GET',
        path: '/x',
        idempotent: true,
        what: 'reading x',
      }),
    );
    expect(trace.map((t) => [t.status, t.error])).toEqual([
      [401, 'reading x: 401: the credential was refused; asking for a fresh one'],
      [200, null],
    ]);
    expect(limiter.taken).toBe(2);
  });

  it("a review's `unauthorized` on another status refreshes once; a verdict on a 401 does not", async () => {
    const srv = await new TokenServer().start();
    open.push(srv);
    srv.refusal = 200;
    const review = async (a: { body: unknown }): Promise<Review | undefined> =>
      (a.body as { ok?: boolean }).ok === false
        ? { verdict: 'dead', unauthorized: true }
        : undefined;
    const auth = rotating();
    const x = { method: 'GET', path: '/x', idempotent: true, what: 'reading x' } as const;
    expect((await client(srv.url, auth, { review }).call(x)).status).toBe(200);
    expect(auth.refreshed).toBe(1);
    // Refused again with the fresh one: dead, after one refresh.
    srv.valid = 'Z';
    const dead = await client(srv.url, rotating(), { review })
      .call(x)
      .catch((e: unknown) => e as DeliveryError);
    expect([(dead as DeliveryError).retryable, srv.seen.length]).toEqual([false, 4]);
    // A 401 the target calls a rate limit (its own verdict) is no expired credential.
    srv.refusal = 401;
    const limited = rotating();
    await client(srv.url, limited, { review: async () => ({ verdict: 'retry' }) })
      .call(x)
      .catch(() => undefined);
    expect(limited.refreshed).toBe(0);
  });

  it('never quick-retries a create whose 2xx answer its review turned into a retry', async () => {
    const srv = await new TokenServer().start();
    open.push(srv);
    srv.valid = 'A';
    const c = client(srv.url, fixedAuth({ authorization: 'Bearer A' }), {
      quickRetries: 2,
      review: async () => ({ verdict: 'retry' }),
    });
    const create = { method: 'POST', path: '/x', json: {}, what: 'creating x' } as const;
    await expect(c.call({ ...create, idempotent: false })).rejects.toThrow(/creating x: 200/);
    expect(srv.seen).toHaveLength(1);
    await expect(c.call({ ...create, idempotent: true })).rejects.toThrow(/creating x: 200/);
    expect(srv.seen).toHaveLength(4);
  });

  it('tries once more only: a fresh credential refused again is a dead answer', async () => {
    const srv = await new TokenServer().start();
    open.push(srv);
    srv.valid = 'Z';
    const err = await client(srv.url, rotating())
      .call({ method: 'POST', path: '/x', json: {}, idempotent: false, what: 'creating x' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeliveryError);
    expect((err as DeliveryError).message).toBe('creating x: 401 token expired');
    expect(srv.seen).toHaveLength(2);
  });

  it('a fixed credential refused is final at once', async () => {
    const srv = await new TokenServer().start();
    open.push(srv);
    const err = await client(srv.url, fixedAuth({ authorization: 'Bearer A' }))
      .call({ method: 'GET', path: '/x', idempotent: true, what: 'reading x' })
      .catch((e: unknown) => e);
    expect((err as DeliveryError).status).toBe(401);
    expect(srv.seen).toHaveLength(1);
  });

  it("sends to the base URL the credential learnt (a token answer's instance URL)", async () => {
    const srv = await new TokenServer().start();
    open.push(srv);
    srv.valid = 'A';
    await client('http://127.0.0.1:9/unused', rotating(`${srv.url}/instance`)).call({
      method: 'GET',
      path: '/x',
      idempotent: true,
      what: 'reading x',
    });
    expect(srv.seen).toEqual([{ auth: 'Bearer A', path: '/instance/x' }]);
  });
});
