// OAuth 2 for targets (src/targets/kit/oauth.ts) against a real token server and API on
// 127.0.0.1 (test/fakes/oauth.ts) and real stores: one token request however many callers and
// instances ask, refreshed before it expires and after a 401, a rotated refresh token kept across
// a restart, sealed in the database, and token endpoint errors that say what to fix without a
// secret.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { Redactor } from '../../src/lib/redact.js';
import { PostgresStore } from '../../src/store/postgres/index.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { ThreadedSqliteStore } from '../../src/store/sqlite/threaded.js';
import type { Store } from '../../src/store/types.js';
import type { CrmAuth } from '../../src/targets/kit/auth.js';
import { DeliveryError } from '../../src/targets/kit/errors.js';
import { oauthAuth, type OAuthOptions } from '../../src/targets/kit/oauth.js';
import { traceRequests, type RequestTrace } from '../../src/targets/kit/trace.js';
import { createLogger, silentLogger } from '../../src/telemetry/log.js';
import { LocalServer } from '../fakes/local-server.js';
import { FakeOAuth } from '../fakes/oauth.js';
import { freshPostgresDatabase, tempDir } from '../support.js';

let fake: FakeOAuth;
const auths: CrmAuth[] = [];
const stores: Store[] = [];

beforeEach(async () => {
  fake = await new FakeOAuth().start();
});
afterEach(async () => {
  for (const a of auths.splice(0)) await a.close?.();
  for (const s of stores.splice(0)) await s.close();
  await fake.close();
});

function auth(o: Partial<OAuthOptions> = {}): CrmAuth {
  const a = oauthAuth({
    target: 'zoho',
    grant: 'refresh_token',
    tokenUrl: `${fake.url}/token`,
    clientId: fake.clientId,
    clientSecret: fake.clientSecret,
    clientAuth: 'body',
    header: (token) => ({ authorization: `Bearer ${token}` }),
    log: silentLogger,
    timeoutMs: 5000,
    ...o,
  });
  auths.push(a);
  return a;
}

/** One API request as a CRM client makes it: a 401 is reported and the request sent once more. */
async function call(a: CrmAuth): Promise<number> {
  for (let i = 0; ; i++) {
    const headers = await a.headers();
    const res = await fetch(`${fake.url}/api/records`, { headers });
    await res.arrayBuffer();
    if (res.status !== 401 || i > 0 || !(await a.rejected(headers))) return res.status;
  }
}

const many = <T>(n: number, fn: () => Promise<T>): Promise<T[]> =>
  Promise.all(Array.from({ length: n }, fn));

async function thrown(p: Promise<unknown>): Promise<DeliveryError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DeliveryError);
  return err as DeliveryError;
}

describe('OAuth 2 in one instance', () => {
  it('asks once for many concurrent requests, and uses the answer until it is due', async () => {
    const refreshToken = fake.newRefreshToken();
    const a = auth({ refreshToken });
    expect(await many(20, () => call(a))).toEqual(Array(20).fill(200));
    expect(fake.tokenRequests).toEqual([
      { grant: 'refresh_token', clientAuth: 'body', refreshToken },
    ]);
    expect(await many(5, () => call(a))).toEqual(Array(5).fill(200));
    expect(fake.tokenRequests).toHaveLength(1);
  });

  it('refreshes a minute before expiry, or a tenth of a short life', async () => {
    let now = Date.parse('2026-03-01T10:00:00Z');
    const a = auth({ grant: 'client_credentials', now: () => now });
    await a.headers();
    now += 3600_000 - 61_000;
    await a.headers();
    expect(fake.tokenRequests).toHaveLength(1);
    now += 2000;
    // Still valid at the server, but within the last minute: fetched anew.
    await many(3, () => a.headers());
    expect(fake.tokenRequests).toHaveLength(2);
    // A token that lives 100 s is renewed 10 s before its end.
    fake.lifetimeSec = 100;
    now += 3600_000;
    await a.headers();
    expect(fake.tokenRequests).toHaveLength(3);
    now += 89_000;
    await a.headers();
    expect(fake.tokenRequests).toHaveLength(3);
    now += 2000;
    await a.headers();
    expect(fake.tokenRequests).toHaveLength(4);
    expect(fake.tokenRequests.every((r) => r.grant === 'client_credentials')).toBe(true);
  });

  it('takes lifetimeSec when the answer has no expires_in', async () => {
    let now = Date.parse('2026-03-01T10:00:00Z');
    fake.lifetimeSec = undefined;
    const a = auth({ grant: 'client_credentials', lifetimeSec: 600, now: () => now });
    await a.headers();
    now += 539_000;
    await a.headers();
    expect(fake.tokenRequests).toHaveLength(1);
    now += 2000;
    await a.headers();
    expect(fake.tokenRequests).toHaveLength(2);
  });

  it('after 401s, refreshes once for all of them and the requests succeed', async () => {
    const a = auth({ refreshToken: fake.newRefreshToken() });
    expect(await call(a)).toBe(200);
    const old = await a.headers();
    // The CRM revoked the token before its time.
    fake.expireAll();
    expect(await many(10, () => call(a))).toEqual(Array(10).fill(200));
    expect(fake.tokenRequests).toHaveLength(2);
    // A late 401 for the old token refreshes nothing more.
    expect(await a.rejected(old)).toBe(true);
    expect(await call(a)).toBe(200);
    expect(fake.tokenRequests).toHaveLength(2);
  });

  it('sends client credentials as Basic when told, and keeps the API URL of the answer', async () => {
    const a = auth({
      grant: 'client_credentials',
      clientAuth: 'basic',
      scope: 'api refresh',
      apiUrl: (answer) => (answer.body as { api_domain?: string }).api_domain,
    });
    expect(a.baseUrl?.()).toBeUndefined();
    expect(await call(a)).toBe(200);
    expect(fake.tokenRequests).toEqual([
      { grant: 'client_credentials', clientAuth: 'basic', scope: 'api refresh' },
    ]);
    expect(a.baseUrl?.()).toBe(fake.url);
  });

  it('keeps a rotated refresh token and uses it from then on', async () => {
    fake.rotate = true;
    let now = Date.parse('2026-03-01T10:00:00Z');
    const configured = fake.newRefreshToken();
    const a = auth({ refreshToken: configured, now: () => now });
    await a.headers();
    now += 3600_000;
    expect(await call(a)).toBe(200);
    expect(fake.tokenRequests.map((r) => r.refreshToken)).toHaveLength(2);
    expect(fake.tokenRequests[1]!.refreshToken).not.toBe(configured);
    expect(fake.refreshTokens.has(fake.tokenRequests[1]!.refreshToken!)).toBe(false);
  });
});

describe('OAuth 2 token endpoint errors', () => {
  it('a refused refresh token is a dead letter naming the fix, with no secret anywhere', async () => {
    const refreshToken = 'refresh-revoked-4c1d9a';
    const lines: string[] = [];
    const log = createLogger(
      'debug',
      new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }),
    );
    const trace: RequestTrace[] = [];
    const a = auth({ refreshToken, log });
    const err = await thrown(traceRequests(trace, () => a.headers()));
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(
      /^fetching an access token for target "zoho": the token endpoint answered 400 invalid_grant .*put the new refreshToken in targets\[zoho\]\.auth/,
    );
    expect(trace).toEqual([
      expect.objectContaining({
        operation: 'fetching an access token',
        method: 'POST',
        path: '/token',
        status: 400,
        error: err.message,
      }),
    ]);
    expect(trace[0]).not.toHaveProperty('sent');
    const everything = [err.message, err.stack, JSON.stringify(trace), ...lines].join('\n');
    expect(everything).not.toContain(refreshToken);
    expect(everything).not.toContain(fake.clientSecret);
  });

  it('a wrong client secret is a dead letter naming clientId and clientSecret', async () => {
    const a = auth({ grant: 'client_credentials', clientSecret: 'wrong-secret-31f0' });
    const err = await thrown(a.headers());
    expect(err.retryable).toBe(false);
    expect(err.status).toBe(401);
    expect(err.message).toMatch(
      /invalid_client .*check clientId and clientSecret in targets\[zoho\]/,
    );
    expect(err.message).not.toContain('wrong-secret-31f0');
  });

  it('Zoho-style 200 with an error is a refused grant too', async () => {
    fake.failures.push({ status: 200, body: { error: 'invalid_code' } });
    const err = await thrown(auth({ refreshToken: fake.newRefreshToken() }).headers());
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/200 invalid_code; the refresh token is expired or revoked/);
  });

  it('5xx and network trouble are retried; 429 says how long to wait', async () => {
    let now = Date.parse('2026-03-01T10:00:00Z');
    const a = auth({ grant: 'client_credentials', now: () => now });
    fake.failures.push({ status: 503, body: 'down' });
    const down = await thrown(a.headers());
    expect([down.retryable, down.status]).toEqual([true, 503]);
    now += 61_000;
    fake.failures.push({
      status: 429,
      body: { error: 'slow down' },
      headers: { 'retry-after': '30' },
    });
    const busy = await thrown(a.headers());
    expect([busy.retryable, busy.retryAfterMs]).toEqual([true, 30_000]);
    const url = fake.url;
    await fake.close();
    const gone = await thrown(
      auth({ grant: 'client_credentials', tokenUrl: `${url}/token` }).headers(),
    );
    expect(gone.retryable).toBe(true);
    expect(gone.message).toMatch(/ECONNREFUSED/);
    fake = await new FakeOAuth().start();
  });

  it('throttling (Zoho 400 Access Denied, slow_down) waits a minute; a failed refresh is not asked again meanwhile', async () => {
    let now = Date.parse('2026-03-01T10:00:00Z');
    const a = auth({ refreshToken: fake.newRefreshToken(), now: () => now });
    fake.failures.push({ status: 400, body: { error: 'Access Denied' } });
    const denied = await thrown(a.headers());
    expect([denied.retryable, denied.retryAfterMs]).toEqual([true, 60_000]);
    expect(denied.message).toMatch(/400 Access Denied; too many token requests/);
    // Within that minute: the same answer at once, without asking the token endpoint.
    now += 20_000;
    const fast = await thrown(a.headers());
    expect([fast.retryable, fast.retryAfterMs]).toEqual([true, 40_000]);
    expect(fake.tokenRequests).toHaveLength(1);
    now += 41_000;
    fake.failures.push({
      status: 400,
      body: { error: 'slow_down' },
      headers: { 'retry-after': '90' },
    });
    const slow = await thrown(a.headers());
    expect([slow.retryable, slow.retryAfterMs]).toEqual([true, 90_000]);
    expect(fake.tokenRequests).toHaveLength(2);
    now += 91_000;
    expect(await call(a)).toBe(200);
    expect(fake.tokenRequests).toHaveLength(3);
  });

  it('invalid_client_secret gets the invalid_client advice; the error code is scrubbed', async () => {
    const refreshToken = fake.newRefreshToken();
    fake.failures.push({ status: 400, body: { error: 'invalid_client_secret' } });
    const err = await thrown(auth({ refreshToken }).headers());
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/check clientId and clientSecret in targets\[zoho\]/);
    fake.failures.push({ status: 400, body: { error: `bad token ${refreshToken}` } });
    const echoed = await thrown(auth({ refreshToken, clientId: 'other-client' }).headers());
    expect(echoed.message).not.toContain(refreshToken);
  });

  it('a token answer that trickles in is cut off within the lease, so no other instance asks too', async () => {
    // Headers at once, then a byte every 100 ms: no single timeout fires, the lease would.
    const slow = await new (class extends LocalServer {
      protected handle(_req: IncomingMessage, res: ServerResponse): void {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"access_token":"access-slow-1234"');
        let n = 0;
        const t = setInterval(() => {
          if (++n < 30) return void res.write(' ');
          clearInterval(t);
          res.end('}');
        }, 100);
        res.on('close', () => clearInterval(t));
      }
    })().start();
    const store = new SqliteStore(join(tempDir(), 'relay.db'));
    stores.push(store);
    const a = auth({
      grant: 'client_credentials',
      tokenUrl: `${slow.url}/token`,
      tokens: store.credentials,
      timeoutMs: 400,
    });
    const started = Date.now();
    try {
      const err = await thrown(a.headers());
      expect(err.retryable).toBe(true);
      // The lease is 2 * 400 + 5000 ms; the fetch gets all but 5 s of it.
      expect(Date.now() - started).toBeLessThan(2500);
    } finally {
      await slow.close();
    }
  });

  it('a recipe expression for the API URL that fails is a dead letter without the token', async () => {
    const a = auth({
      grant: 'client_credentials',
      apiUrl: (answer) => {
        throw new Error(`no instance_url in ${JSON.stringify(answer.body)}`);
      },
    });
    const err = await thrown(a.headers());
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/reading the API URL from the token answer: no instance_url in/);
    expect(err.message).not.toMatch(/access-[0-9a-f]{6}/);
  });

  it('tells a Redactor every token it learns', async () => {
    fake.rotate = true;
    const redactor = new Redactor([]);
    const a = auth({
      refreshToken: fake.newRefreshToken(),
      redact: (s, key) => (key ? redactor.replace(key, [s]) : redactor.add([s])),
    });
    const { authorization } = await a.headers();
    const access = authorization!.slice('Bearer '.length);
    const rotated = [...fake.refreshTokens][0]!;
    expect(redactor.text(`echo ${access} and ${rotated}`)).toBe('echo [redacted] and [redacted]');
  });
});

interface Shared {
  open(place: string): Promise<Store>;
  place(): Promise<string>;
  /** The sealed values in the database, as stored. */
  values(place: string): Promise<string[]>;
}

const sqliteValues = async (path: string): Promise<string[]> => {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT value FROM target_credentials').pluck().all() as string[];
  } finally {
    db.close();
  }
};

const shared: [string, Shared][] = [
  [
    'a SQLite file',
    {
      place: async () => join(tempDir(), 'relay.db'),
      open: async (path) => new SqliteStore(path),
      values: sqliteValues,
    },
  ],
  [
    'SQLite on its thread',
    {
      place: async () => join(tempDir(), 'relay.db'),
      open: (path) => ThreadedSqliteStore.open({ path }),
      values: sqliteValues,
    },
  ],
  [
    'PostgreSQL',
    {
      place: () => freshPostgresDatabase(inject('pgUrl')),
      open: (url) => PostgresStore.open(url),
      values: async (url) => {
        const c = new pg.Client({ connectionString: url });
        await c.connect();
        try {
          return (
            await c.query<{ value: string }>('SELECT value FROM target_credentials')
          ).rows.map((r) => r.value);
        } finally {
          await c.end();
        }
      },
    },
  ],
];

describe.each(shared)('OAuth 2 across instances sharing %s', (_name, backend) => {
  const instance = async (place: string, o: Partial<OAuthOptions> = {}): Promise<CrmAuth> => {
    const store = await backend.open(place);
    stores.push(store);
    return auth({ tokens: store.credentials, ...o });
  };

  it('makes one token request between two instances, and the other uses the stored token', async () => {
    const place = await backend.place();
    const refreshToken = fake.newRefreshToken();
    const [a, b] = [
      await instance(place, { refreshToken }),
      await instance(place, { refreshToken }),
    ];
    fake.delayMs = 200;
    const statuses = await Promise.all([many(5, () => call(a)), many(5, () => call(b))]);
    expect(statuses.flat()).toEqual(Array(10).fill(200));
    expect(fake.tokenRequests).toHaveLength(1);
    expect(await a.headers()).toEqual(await b.headers());
    // After a 401 on both, still one refresh between them.
    fake.expireAll();
    const again = await Promise.all([many(3, () => call(a)), many(3, () => call(b))]);
    expect(again.flat()).toEqual(Array(6).fill(200));
    expect(fake.tokenRequests).toHaveLength(2);
  });

  it('keeps a rotated refresh token in memory when storing it fails, and stores the next', async () => {
    fake.rotate = true;
    const place = await backend.place();
    const store = await backend.open(place);
    stores.push(store);
    let failPut = true;
    const tokens = {
      ...store.credentials,
      get: (t: string) => store.credentials.get(t),
      lease: (t: string, o: string, ms: number) => store.credentials.lease(t, o, ms),
      release: (t: string, o: string) => store.credentials.release(t, o),
      put: async (t: string, v: string, e: number) => {
        if (failPut) {
          failPut = false;
          throw new Error('disk full');
        }
        return store.credentials.put(t, v, e);
      },
    };
    let now = Date.parse('2026-03-01T10:00:00Z');
    const a = auth({ refreshToken: fake.newRefreshToken(), tokens, now: () => now });
    expect(await call(a)).toBe(200);
    // Due again: the rotated refresh token, kept in memory only, is the one that works.
    now += 3600_000;
    expect(await call(a)).toBe(200);
    expect(fake.tokenRequests).toHaveLength(2);
    // And this time it was stored: another instance uses it as it is.
    const b = await instance(place, {
      refreshToken: fake.tokenRequests[0]!.refreshToken!,
      now: () => now,
    });
    expect(await b.headers()).toEqual(await a.headers());
    expect(fake.tokenRequests).toHaveLength(2);
  });

  it('adopts the newer stored token when the endpoint refuses the refresh token it used up', async () => {
    fake.rotate = true;
    const place = await backend.place();
    const configured = fake.newRefreshToken();
    const a = await instance(place, { refreshToken: configured });
    const store = await backend.open(place);
    stores.push(store);
    // b's view of the store lags: it does not see a's token until after its own refusal.
    let stale = 2;
    const tokens = {
      get: async (t: string) => (stale-- > 0 ? undefined : store.credentials.get(t)),
      put: (t: string, v: string, e: number) => store.credentials.put(t, v, e),
      lease: (t: string, o: string, ms: number) => store.credentials.lease(t, o, ms),
      release: (t: string, o: string) => store.credentials.release(t, o),
    };
    const b = auth({ refreshToken: configured, tokens });
    expect(await call(a)).toBe(200);
    expect(await call(b)).toBe(200);
    expect(fake.tokenRequests.map((r) => r.refreshToken)).toEqual([configured, configured]);
    expect(await b.headers()).toEqual(await a.headers());
  });

  it('goes on when the instance holding the lease died', async () => {
    const place = await backend.place();
    const store = await backend.open(place);
    stores.push(store);
    // An instance took the lease and died before asking.
    expect(await store.credentials.lease('zoho', 'dead-instance', 300)).toBe(true);
    const a = await instance(place, { grant: 'client_credentials' });
    expect(await call(a)).toBe(200);
    expect(fake.tokenRequests).toHaveLength(1);
  });

  it('keeps a rotated refresh token across a restart, sealed; a newly configured one wins', async () => {
    fake.rotate = true;
    const place = await backend.place();
    const configured = fake.newRefreshToken();
    let now = Date.parse('2026-03-01T10:00:00Z');
    const first = await instance(place, { refreshToken: configured, now: () => now });
    const { authorization } = await first.headers();
    const access = authorization!.slice('Bearer '.length);
    const rotated = [...fake.refreshTokens][0]!;
    expect(rotated).not.toBe(configured);
    // What the database holds opens nothing without the configured client secret.
    const [value] = await backend.values(place);
    const decoded = Buffer.from(value!.replace(/^v1\./, ''), 'base64url').toString('latin1');
    for (const secret of [access, rotated, configured]) {
      expect(value).not.toContain(secret);
      expect(decoded).not.toContain(secret);
    }
    for (const a of auths.splice(0)) await a.close?.();
    for (const s of stores.splice(0)) await s.close();

    // A restart: the stored token is used as it is, and once due, the rotated refresh token.
    const second = await instance(place, { refreshToken: configured, now: () => now });
    expect(await second.headers()).toEqual({ authorization });
    expect(fake.tokenRequests).toHaveLength(1);
    now += 3600_000;
    expect(await call(second)).toBe(200);
    expect(fake.tokenRequests.map((r) => r.refreshToken)).toEqual([configured, rotated]);

    // The admin authorized again and pasted a new refresh token: it wins over the stored one.
    const pasted = fake.newRefreshToken();
    const third = await instance(place, { refreshToken: pasted, now: () => now });
    expect(await call(third)).toBe(200);
    expect(fake.tokenRequests.at(-1)!.refreshToken).toBe(pasted);

    // Another client secret (a copied database elsewhere) cannot open what is stored.
    const other = await instance(place, {
      refreshToken: pasted,
      clientSecret: 'another-secret-9e1',
      now: () => now,
    });
    await expect(other.headers()).rejects.toThrow(/invalid_client/);
  });
});
