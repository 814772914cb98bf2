// The console over HTTP, without a browser: a real pipeline over a real SQLite store, the app as
// `start` builds it. Sign-in and its cookie, sessions kept in the store (sign-out, idle and
// absolute timeouts, the throttle of wrong tokens), CSRF and origin checks, security
// headers on every response, recordings only by the call's own URLs, the webhook URL's token only
// on request, the live feed, filters, paging and page weight.

import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { secretsOf } from '../../src/config/secrets.js';
import type { RawRequest } from '../../src/domain/request.js';
import { createApp } from '../../src/http/app.js';
import { CSP } from '../../src/http/origin.js';
import { ChangeFeed } from '../../src/http/console/live.js';
import { AuthGate, SESSION_DEFAULTS } from '../../src/http/gate.js';
import type { ConsoleOptions } from '../../src/http/console/types.js';
import { Redactor } from '../../src/lib/redact.js';
import { Pipeline } from '../../src/pipeline/pipeline.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { readFlow } from '../../src/flows.js';
import { ADAPTERS, sourceToken, tempDir, TOKENS, writeRelayYaml } from '../support.js';

const ORIGIN = 'http://localhost';

interface Console {
  app: ReturnType<typeof createApp>;
  pipeline: Pipeline;
  store: SqliteStore;
  changes: EventEmitter;
  asked: string[];
  due: { n: number };
  recordingType: { v: string };
  gate: AuthGate;
}

const open: SqliteStore[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

/**
 * `null`: no admin.token in relay.yaml. `more.store`: another instance on the same store;
 * `more.now`: the sessions' clock.
 */
function makeConsole(
  token: string | null = TOKENS.admin,
  signal?: AbortSignal,
  more: { store?: SqliteStore; now?: () => number; publicUrl?: string; tokenFile?: string } = {},
): Console {
  const adminToken = token ?? undefined;
  const dir = tempDir();
  const cfg = loadConfig(writeRelayYaml(dir), {});
  const store = more.store ?? new SqliteStore(join(dir, 'relay.db'));
  if (!more.store) open.push(store);
  const changes = new EventEmitter();
  const pipeline = new Pipeline(store, cfg.sources, undefined, () => changes.emit('change'));
  const asked: string[] = [];
  const due = { n: 0 };
  const recordingType = { v: 'audio/wav' };
  const opts: ConsoleOptions = {
    pipeline,
    redact: new Redactor(secretsOf(cfg)),
    targets: [
      {
        name: 'crm',
        type: 'fake',
        dryRun: false,
        link: () => ({ id: 'call 1', url: 'https://crm.example/1' }),
        check: async () => 'fine',
      },
    ],
    recording: async (_source, url) => {
      asked.push(url);
      return {
        body: (async function* () {
          yield Buffer.from('RIFF....WAVE');
        })(),
        contentType: recordingType.v,
      };
    },
    reload: async () => ({ adapters: ['3cx'], restartNeeded: [] }),
    onChange: (l) => {
      changes.on('change', l);
      return () => changes.off('change', l);
    },
    onDeliveriesDue: () => due.n++,
    version: '9.9.9',
    storeHealth: async () => ({ backend: 'sqlite', ok: true, detail: 'writable' }),
    signal,
    publicUrl: more.publicUrl,
    tokenFile: more.tokenFile,
  };
  const gate = new AuthGate({ adminToken, trustProxy: [], ...SESSION_DEFAULTS }, { now: more.now });
  const app = createApp({ pipeline, bodyLimit: 1 << 20, adminToken, console: opts, auth: gate });
  return { app, pipeline, store, changes, asked, due, recordingType, gate };
}

const form = (fields: Record<string, string>): URLSearchParams => new URLSearchParams(fields);

/** Sign in as a browser would; the session cookie and the page's CSRF token. */
async function signIn(k: Console): Promise<{ cookie: string; csrf: string }> {
  const res = await k.app.request('/console/sign-in', {
    method: 'POST',
    headers: { origin: ORIGIN, 'sec-fetch-site': 'same-origin' },
    body: form({ token: TOKENS.admin, next: '/console' }),
  });
  expect(res.status).toBe(303);
  const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
  const page = await (await k.app.request('/console', { headers: { cookie } })).text();
  const csrf = /<meta name="csrf-token" content="([^"]+)"/.exec(page)![1]!;
  return { cookie, csrf };
}

function webhook(body: unknown, receivedAt = new Date().toISOString()): RawRequest {
  return {
    source: '3cx',
    kind: 'webhook',
    receivedAt,
    method: 'POST',
    query: '',
    contentType: 'application/json',
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify(body)),
  };
}

/** One ended 3CX call: inbound answered, or outbound. */
async function call(k: Console, id: string, outbound = false): Promise<void> {
  await k.pipeline.ingest(
    webhook({
      event: outbound ? 'outgoing' : 'incoming',
      id: `${id}-1`,
      callerid: '420774852629',
      user: outbound ? '105' : '102',
      finishtype: 'Ok',
      transfer: 'False',
      did: '',
      title: 'Call (0:07)',
    }),
  );
}

describe('console over HTTP', () => {
  it('without admin.token, every console URL says how to enable it', async () => {
    const k = makeConsole(null);
    for (const path of ['/console', '/console/setup', '/console/sign-in']) {
      const res = await k.app.request(path);
      expect(res.status, path).toBe(403);
      const text = await res.text();
      expect(text).toContain('The console is off');
      expect(text).toContain('admin:');
      expect(res.headers.get('content-security-policy')).toBe(CSP);
    }
    const post = await k.app.request('/console/sign-in', {
      method: 'POST',
      headers: { origin: ORIGIN },
      body: form({ token: '' }),
    });
    expect(post.status).toBe(403);
    expect(post.headers.get('set-cookie')).toBeNull();
  });

  it('sends / to the console, signed-out pages to sign-in, and signed-out fetches get 401', async () => {
    const k = makeConsole();
    const root = await k.app.request('/');
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/console');
    const page = await k.app.request('/console/failures?x=1');
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe(
      '/console/sign-in?next=%2Fconsole%2Ffailures%3Fx%3D1',
    );
    for (const path of [
      '/console/calls/rows',
      '/console/events',
      '/console/calls/3cx/x/recordings/0',
    ]) {
      const res = await k.app.request(path);
      expect(res.status, path).toBe(401);
      expect(((await res.json()) as any).error.code).toBe('RELAY_ERR_UNAUTHORIZED');
    }
  });

  it('signs in with the admin token: an HttpOnly, SameSite=Strict session cookie, Secure over https', async () => {
    const k = makeConsole();
    const res = await k.app.request('/console/sign-in', {
      method: 'POST',
      headers: { origin: ORIGIN },
      body: form({ token: TOKENS.admin, next: '/console/setup' }),
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/console/setup');
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^callrelay_console=[\w-]{43}; /);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    expect(cookie).toContain('Path=/');
    expect(cookie).toContain('Max-Age=43200');
    expect(cookie).not.toContain('Secure');
    expect(cookie).not.toContain(TOKENS.admin);

    const tls = await k.app.request('https://relay.example/console/sign-in', {
      method: 'POST',
      headers: { origin: 'https://relay.example', 'x-forwarded-proto': 'https' },
      body: form({ token: TOKENS.admin }),
    });
    expect(tls.headers.get('set-cookie')).toContain('Secure');
    const behindProxy = await k.app.request('http://relay.example/console/sign-in', {
      method: 'POST',
      headers: { origin: 'https://relay.example', 'x-forwarded-proto': 'https' },
      body: form({ token: TOKENS.admin }),
    });
    expect(behindProxy.headers.get('set-cookie')).toContain('Secure');
    // An open redirect is no place to go after signing in.
    const away = await k.app.request('/console/sign-in', {
      method: 'POST',
      headers: { origin: ORIGIN },
      body: form({ token: TOKENS.admin, next: '//evil.example/console' }),
    });
    expect(away.headers.get('location')).toBe('/console');
  });

  it('goes to the console instead of a next= with control characters, never failing', async () => {
    const k = makeConsole();
    const bad = [
      '/console\r\nSet-Cookie: x=1',
      '/console/calls\nLocation: //evil.example',
      '/console/calls\u0000',
      '/console/calls\u0085',
      '/console/calls/\u0100',
      '/console /calls',
    ];
    for (const next of bad) {
      const signIn = await k.app.request('/console/sign-in', {
        method: 'POST',
        headers: { origin: ORIGIN },
        body: form({ token: TOKENS.admin, next }),
      });
      expect(signIn.status, JSON.stringify(next)).toBe(303);
      expect(signIn.headers.get('location')).toBe('/console');
      expect(signIn.headers.getSetCookie()).toHaveLength(1);
      const cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
      // Signed in already: GET sign-in sends the browser on at once.
      const again = await k.app.request(`/console/sign-in?next=${encodeURIComponent(next)}`, {
        headers: { cookie },
      });
      expect(again.status, JSON.stringify(next)).toBe(303);
      expect(again.headers.get('location')).toBe('/console');
      // Signed out: the form carries the console's own path on.
      const page = await k.app.request(`/console/sign-in?next=${encodeURIComponent(next)}`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<input type="hidden" name="next" value="/console"');
    }
    // The issue's own URL, as a browser sends it.
    const cookie = (await signIn(k)).cookie;
    const issue = await k.app.request('/console/sign-in?next=/console%0d%0aSet-Cookie:x', {
      headers: { cookie },
    });
    expect(issue.status).toBe(303);
    expect(issue.headers.get('location')).toBe('/console');
    // A plain path inside the console still works.
    const fine = await k.app.request('/console/sign-in?next=%2Fconsole%2Fcalls%3Fq%3Da%2520b', {
      headers: { cookie },
    });
    expect(fine.headers.get('location')).toBe('/console/calls?q=a%20b');
  });

  it('refuses a wrong token slowly, says so, and never shows what was typed', async () => {
    const k = makeConsole(TOKENS.admin, undefined, { tokenFile: 'config/.env' });
    const t0 = Date.now();
    const res = await k.app.request('/console/sign-in', {
      method: 'POST',
      headers: { origin: ORIGIN },
      body: form({ token: 'guess-number-one-xyz' }),
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(res.status).toBe(401);
    expect(res.headers.get('set-cookie')).toBeNull();
    const text = await res.text();
    expect(text).toContain('not the admin token');
    // Where `init` put it: the first place a new admin looks.
    expect(text).toContain('config/.env, as CALLRELAY_ADMIN_TOKEN');
    expect(text).not.toContain('guess-number-one-xyz');
    expect(text).toContain('name="token"');
  });

  it('points sign-in at the .env this relay reads, and at none where it reads none', async () => {
    const wrongToken = async (k: Console): Promise<string> =>
      (
        await k.app.request('/console/sign-in', {
          method: 'POST',
          headers: { origin: ORIGIN },
          body: form({ token: 'guess-number-one-xyz' }),
        })
      ).text();
    // init --dir /etc/callrelay: that file, not ./config/.env.
    const etc = makeConsole(TOKENS.admin, undefined, { tokenFile: '/etc/callrelay/.env' });
    expect(await (await etc.app.request('/console/sign-in')).text()).toContain(
      '<code>/etc/callrelay/.env</code> as',
    );
    const refused = await wrongToken(etc);
    expect(refused).toContain('callrelay init put it in /etc/callrelay/.env, as');
    expect(refused).not.toContain('config/.env');
    // The quick start: no .env beside its relay.yaml, so none is named.
    const quick = makeConsole();
    expect(await (await quick.app.request('/console/sign-in')).text()).not.toContain('.env');
    expect(await wrongToken(quick)).toContain('admin.token in its relay.yaml');
  });

  it('stops a guesser after a few wrong tokens, yet the right token still gets in', async () => {
    const k = makeConsole();
    const wrong = async (): Promise<Response> =>
      k.app.request('/console/sign-in', {
        method: 'POST',
        headers: { origin: ORIGIN },
        body: form({ token: 'guess-number-two-xyz' }),
      });
    const first = await Promise.all(Array.from({ length: 12 }, wrong));
    expect(first.map((r) => r.status).sort()).toEqual([...Array(10).fill(401), 429, 429]);
    const limited = first.find((r) => r.status === 429)!;
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(500);
    expect(await limited.text()).toContain('too many wrong tokens');
    const { cookie } = await signIn(k);
    expect((await k.app.request('/console', { headers: { cookie } })).status).toBe(200);
  });

  it('accepts a session on every instance sharing the store, never a forged or old one', async () => {
    const k = makeConsole();
    const { cookie } = await signIn(k);
    const status = async (app: Console['app'], c: string): Promise<number> =>
      (await app.request('/console', { headers: { cookie: c } })).status;
    expect(await status(k.app, cookie)).toBe(200);
    // Another instance on the same store (and token) accepts it; one on another store does not.
    expect(await status(makeConsole(TOKENS.admin, undefined, { store: k.store }).app, cookie)).toBe(
      200,
    );
    expect(await status(makeConsole().app, cookie)).toBe(303);
    const [name, value] = cookie.split('=') as [string, string];
    const flipped = `${name}=${value[0] === 'A' ? 'B' : 'A'}${value.slice(1)}`;
    expect(await status(k.app, flipped)).toBe(303);
    expect(await status(k.app, `${name}=${'A'.repeat(43)}`)).toBe(303);
    // A new admin token signs everyone out.
    const other = makeConsole('another-admin-token-456', undefined, { store: k.store });
    expect(await status(other.app, cookie)).toBe(303);
  });

  it('signing out ends the session on the server: the old cookie and its CSRF token are dead', async () => {
    const k = makeConsole();
    const { cookie, csrf } = await signIn(k);
    const reveal = () =>
      k.app.request('/console/setup/sources/3cx/reveal', {
        method: 'POST',
        headers: { cookie, origin: ORIGIN, accept: 'application/json' },
        body: form({ _csrf: csrf }),
      });
    expect((await reveal()).status).toBe(200);
    const out = await k.app.request('/console/sign-out', {
      method: 'POST',
      headers: { cookie, origin: ORIGIN },
      body: form({ _csrf: csrf }),
    });
    expect(out.status).toBe(303);
    expect(out.headers.get('location')).toBe('/console/sign-in');
    // The browser kept the cookie (or someone copied it): it opens nothing now.
    const setup = await k.app.request('/console/setup', { headers: { cookie } });
    expect(setup.status).toBe(303);
    expect(setup.headers.get('location')).toContain('/console/sign-in');
    const again = await reveal();
    expect(again.status).toBe(401);
    expect(await again.text()).not.toContain(sourceToken('3cx'));
  });

  it('ends a session left unused for admin.sessionIdleMin, and one past sessionMaxHours', async () => {
    let now = Date.parse('2026-03-01T10:00:00Z');
    const k = makeConsole(TOKENS.admin, undefined, { now: () => now });
    const { cookie } = await signIn(k);
    const status = async (): Promise<number> =>
      (await k.app.request('/console/setup', { headers: { cookie } })).status;
    // Used every 50 minutes it stays (each use counts), up to 12 hours after sign-in.
    for (let i = 0; i < 14; i++) {
      now += 50 * 60_000;
      expect(await status(), `after ${(i + 1) * 50} min`).toBe(200);
    }
    now += 50 * 60_000;
    expect(await status()).toBe(303);
    const fresh = await signIn(k);
    now += 61 * 60_000;
    const idle = await k.app.request('/console/setup', { headers: { cookie: fresh.cookie } });
    expect(idle.status).toBe(303);
  });

  it('refuses a change without the CSRF token, with a wrong one, or from another site', async () => {
    const k = makeConsole();
    const { cookie, csrf } = await signIn(k);
    const post = (headers: Record<string, string>, fields: Record<string, string>) =>
      k.app.request('/console/failures/retry-dead', {
        method: 'POST',
        headers: { cookie, ...headers },
        body: form(fields),
      });
    const refused = [
      await post({ origin: ORIGIN }, {}),
      await post({ origin: ORIGIN }, { _csrf: 'x'.repeat(43) }),
      await post({ origin: 'http://evil.example' }, { _csrf: csrf }),
      await post({ origin: 'null', 'sec-fetch-site': 'cross-site' }, { _csrf: csrf }),
      await post({ 'sec-fetch-site': 'same-site' }, { _csrf: csrf }),
      await post({ origin: 'null' }, { _csrf: csrf }),
      await post({}, { _csrf: csrf }),
    ];
    for (const res of refused) {
      expect(res.status).toBe(403);
      const text = await res.text();
      expect(text).toContain('RELAY_ERR_CSRF');
      expect(res.headers.get('content-type')).toContain('text/html');
    }
    expect(k.due.n).toBe(0);
    // A browser's own form (Referrer-Policy no-referrer makes its Origin "null").
    const ok = await post({ origin: 'null', 'sec-fetch-site': 'same-origin' }, { _csrf: csrf });
    expect(ok.status).toBe(303);
    expect(k.due.n).toBe(1);
    const fetched = await post({ origin: ORIGIN, 'x-csrf-token': csrf }, {});
    expect(fetched.status).toBe(303);
    // Signing in from another site is refused too (login CSRF).
    const foreign = await k.app.request('/console/sign-in', {
      method: 'POST',
      headers: { origin: 'http://evil.example' },
      body: form({ token: TOKENS.admin }),
    });
    expect(foreign.status).toBe(403);
    expect(foreign.headers.get('set-cookie')).toBeNull();
  });

  it('sends a strict CSP and no-sniff, no-referrer, no-store on every console response', async () => {
    const k = makeConsole();
    const { cookie } = await signIn(k);
    const page = await (await k.app.request('/console', { headers: { cookie } })).text();
    const assets = [...page.matchAll(/(?:href|src)="(\/console\/assets\/[^"]+)"/g)].map(
      (m) => m[1]!,
    );
    expect(assets).toHaveLength(3);
    for (const path of [
      '/',
      '/console',
      '/console/sign-in',
      '/console/calls/rows',
      '/console/setup',
      '/console/failures',
      '/console/calls/3cx/none',
      '/console/no-such-page',
      ...assets,
    ]) {
      const res = await k.app.request(path, { headers: { cookie } });
      const h = res.headers;
      expect(h.get('content-security-policy'), path).toBe(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      );
      expect(h.get('x-content-type-options'), path).toBe('nosniff');
      expect(h.get('referrer-policy'), path).toBe('no-referrer');
      expect(h.get('cache-control'), path).toBe(
        path.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-store',
      );
      if (!path.includes('/assets/')) {
        const text = await res.text();
        // No inline script or style for the CSP to block.
        expect(text, path).not.toMatch(/<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=/i);
      }
    }
    const missing = await k.app.request('/console/no-such-page', { headers: { cookie } });
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain('RELAY_ERR_NOT_FOUND');
  });

  it('shows a missed call as 0:00 talk time, its ringing as ring time, the raw values apart', async () => {
    const k = makeConsole();
    const { cookie } = await signIn(k);
    const flow = readFlow(join(ADAPTERS, 'cases', 'callerdesk', 'callerdesk-incoming-missed.json'));
    for (const r of flow.requests)
      await k.pipeline.ingest({
        ...webhook({}),
        source: 'callerdesk',
        contentType: r.contentType ?? null,
        headers: { 'content-type': r.contentType ?? '' },
        body: Buffer.from(r.body ?? ''),
      });
    await k.pipeline.drain();
    const list = await (await k.app.request('/console', { headers: { cookie } })).text();
    expect(list).toContain('Talk time</th>');
    const row = list.slice(list.indexOf('1672651234.9605678'));
    expect(row.slice(0, row.indexOf('</tr>'))).toMatch(/missed<\/td><td class="num wide">0:00</);
    const page = await (
      await k.app.request('/console/calls/callerdesk/1672651234.9605678', { headers: { cookie } })
    ).text();
    expect(page).toContain('<dt>Talk time</dt><dd>0:00</dd>');
    expect(page).toContain('<dt>Ring time</dt><dd>0:25</dd>');
    expect(page).toContain('<dt>Status</dt><dd>Ended, missed</dd>');
    // The PBX's own words, kept for whoever asks, folded away.
    expect(page).toMatch(/<details class="raw"><summary>Raw values<\/summary>/);
    expect(page).toContain('<dt>Phone system&#39;s status</dt><dd><code>NOANSWER</code>');
  });

  it('shows a call of nothing but a recording as incomplete, never as missed', async () => {
    const k = makeConsole();
    const { cookie } = await signIn(k);
    await k.pipeline.ingest(
      webhook({
        event: 'recording',
        id: '260305101010_7-1',
        callerid: '420774852629',
        user: '102',
        fileurls: ['https://pbx.example.com/webapi/recording/260305101010_7-1-1.mp3'],
      }),
    );
    await k.pipeline.drain();
    const list = await (await k.app.request('/console', { headers: { cookie } })).text();
    const row = list.slice(list.indexOf('260305101010_7'));
    expect(row.slice(0, row.indexOf('</tr>'))).toContain('<span class="muted">incomplete</span>');
    expect(row.slice(0, row.indexOf('</tr>'))).not.toContain('missed');
    const page = await (
      await k.app.request('/console/calls/3cx/260305101010_7', { headers: { cookie } })
    ).text();
    expect(page).toContain('<dt>Status</dt><dd>Incomplete (no call event yet)</dd>');
    const api = await k.app.request('/api/calls?limit=5', {
      headers: { authorization: `Bearer ${TOKENS.admin}` },
    });
    const body = (await api.json()) as { calls: { status: string; outcome: string | null }[] };
    expect(body.calls).toMatchObject([{ status: 'incomplete', outcome: null }]);
  });

  it('plays only the recordings a call names, through the relay, as audio', async () => {
    const k = makeConsole();
    const { cookie } = await signIn(k);
    const url = 'https://pbx.example/webapi/recording/260101120000_7-1-1.wav';
    await call(k, '260101120000_7');
    await k.pipeline.ingest(
      webhook({ Event: 'recording', FileUrls: [url], User: '102', Id: '260101120000_7-1' }),
    );
    await k.pipeline.drain();
    const base = '/console/calls/3cx/260101120000_7';
    const detail = await (await k.app.request(base, { headers: { cookie } })).text();
    expect(detail).toContain(`<audio controls="" preload="none" src="${base}/recordings/0"`);
    const res = await k.app.request(`${base}/recordings/0`, { headers: { cookie } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('audio/wav');
    expect(await res.text()).toBe('RIFF....WAVE');
    // Played behind the session: no browser or proxy may keep a copy past it.
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(k.asked).toEqual([url]);
    for (const n of ['1', '-1', 'x', 'https%3A%2F%2Fevil.example%2Fa.wav']) {
      const r = await k.app.request(`${base}/recordings/${n}`, { headers: { cookie } });
      expect(r.status, n).toBe(404);
    }
    expect(k.asked).toEqual([url]);
    // Whatever else the PBX answers is served as bytes, never as a page of this origin.
    k.recordingType.v = 'text/html';
    const html = await k.app.request(`${base}/recordings/0`, { headers: { cookie } });
    expect(html.headers.get('content-type')).toBe('application/octet-stream');
  });

  it("hands out a source's webhook URL with its token only on a POST with the CSRF token", async () => {
    const k = makeConsole();
    const { cookie, csrf } = await signIn(k);
    const setup = await (await k.app.request('/console/setup', { headers: { cookie } })).text();
    expect(setup).toContain('http://localhost/hooks/3cx/');
    expect(setup).not.toContain(sourceToken('3cx'));
    const reveal = (headers: Record<string, string>, url = '/console/setup/sources/3cx/reveal') =>
      k.app.request(url, {
        method: 'POST',
        headers: { cookie, accept: 'application/json', ...headers },
      });
    const refused = await reveal({ origin: ORIGIN });
    expect(refused.status).toBe(403);
    expect(await refused.text()).not.toContain(sourceToken('3cx'));
    const res = await reveal({ origin: ORIGIN, 'x-csrf-token': csrf });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({
      source: '3cx',
      url: `http://localhost/hooks/3cx/${sourceToken('3cx')}`,
    });
    // Behind a TLS proxy: the URL the phone system must use.
    const proxied = await reveal(
      { origin: 'https://relay.example', 'x-csrf-token': csrf, 'x-forwarded-proto': 'https' },
      'http://relay.example/console/setup/sources/3cx/reveal',
    );
    expect(((await proxied.json()) as any).url).toBe(
      `https://relay.example/hooks/3cx/${sourceToken('3cx')}`,
    );
    const signedOut = await k.app.request('/console/setup/sources/3cx/reveal', {
      method: 'POST',
      headers: { origin: ORIGIN, accept: 'application/json', 'x-csrf-token': csrf },
    });
    expect(signedOut.status).toBe(401);
  });

  it('builds the webhook URL to copy on server.publicUrl, not on the address the browser used', async () => {
    const k = makeConsole(TOKENS.admin, undefined, { publicUrl: 'https://relay.example.com/' });
    const { cookie, csrf } = await signIn(k);
    const setup = await (await k.app.request('/console/setup', { headers: { cookie } })).text();
    expect(setup).toContain('https://relay.example.com/hooks/3cx/');
    expect(setup).not.toContain('http://localhost/hooks/');
    const res = await k.app.request('/console/setup/sources/3cx/reveal', {
      method: 'POST',
      headers: { cookie, accept: 'application/json', origin: ORIGIN, 'x-csrf-token': csrf },
    });
    expect(((await res.json()) as { url: string }).url).toBe(
      `https://relay.example.com/hooks/3cx/${sourceToken('3cx')}`,
    );
  });

  it('lists calls newest first with filters and older pages, each page well under 50 KB', async () => {
    const k = makeConsole();
    const { cookie } = await signIn(k);
    for (let i = 0; i < 60; i++) await call(k, `260101120000_${100 + i}`, i % 3 === 0);
    await k.pipeline.drain();
    const get = async (path: string) => {
      const res = await k.app.request(path, { headers: { cookie } });
      return { status: res.status, text: await res.text() };
    };
    const first = await get('/console');
    expect(first.status).toBe(200);
    expect(Buffer.byteLength(first.text)).toBeLessThan(50_000);
    const ids = (t: string): string[] =>
      [...t.matchAll(/href="\/console\/calls\/3cx\/(\d+_\d+)"/g)].map((m) => m[1]!);
    expect(ids(first.text)).toHaveLength(50);
    const older = /href="(\/console\?before=[^"]+)"/.exec(first.text)![1]!.replace(/&amp;/g, '&');
    const second = await get(older);
    expect(ids(second.text)).toHaveLength(10);
    expect(new Set([...ids(first.text), ...ids(second.text)]).size).toBe(60);
    // The live fragment is the same rows without the page.
    const rows = await get('/console/calls/rows');
    expect(rows.text).not.toContain('<html');
    expect(ids(rows.text)).toEqual(ids(first.text));

    const out = await get('/console?direction=outbound');
    expect(ids(out.text)).toHaveLength(20);
    expect(out.text).not.toContain('↙');
    expect(out.text).toContain('<option value="outbound" selected="">');
    const agent = await get('/console?agent=102&from=2020-01-01T00:00');
    expect(ids(agent.text)).toHaveLength(40);
    const none = await get('/console?from=2099-01-01T00:00');
    expect(ids(none.text)).toHaveLength(0);
    const bad = await get('/console?direction=sideways');
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('direction must be one of inbound, outbound');
  });

  it('feeds "changed" to live pages: from this process at once, from other instances by polling', async () => {
    const k = makeConsole();
    const { cookie } = await signIn(k);
    const res = await k.app.request('/console/events', { headers: { cookie } });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    let seen = '';
    const until = async (text: string): Promise<void> => {
      while (!seen.includes(text)) seen += new TextDecoder().decode((await reader.read()).value);
    };
    await until('event: ready');
    const t0 = Date.now();
    await call(k, '260101120000_1');
    await k.pipeline.drain();
    await until('event: changed');
    // At once: the store is only looked at every 2 s, this came from the fold itself.
    expect(Date.now() - t0).toBeLessThan(1500);
    await reader.cancel();

    // Another instance folds into the same store: no onChange here, the poll sees it.
    let told = 0;
    const feed = new ChangeFeed(k.store, () => () => {}, 20);
    const stop = feed.subscribe(() => told++);
    await new Promise((r) => setTimeout(r, 60));
    expect(told).toBe(0);
    const req = webhook({ event: 'ringing', user: '800', id: '260101120000_2-0' });
    const result = await k.pipeline.sources.get('3cx')!.adapter.map(req);
    await k.store.insertInbox([{ req, result, provider: '3cx' }]);
    await k.store.applyPending(10);
    for (let i = 0; i < 50 && !told; i++) await new Promise((r) => setTimeout(r, 20));
    expect(told).toBeGreaterThan(0);
    stop();
  });

  it('ends every live stream at once when the relay shuts down', async () => {
    const shutdown = new AbortController();
    const k = makeConsole(TOKENS.admin, shutdown.signal);
    const { cookie } = await signIn(k);
    const readers = await Promise.all(
      [1, 2].map(async () => {
        const res = await k.app.request('/console/events', { headers: { cookie } });
        const reader = res.body!.getReader();
        expect(new TextDecoder().decode((await reader.read()).value)).toContain('event: ready');
        return reader;
      }),
    );
    const t0 = Date.now();
    shutdown.abort();
    for (const reader of readers) {
      let done = false;
      while (!done) done = (await reader.read()).done;
    }
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});

describe('a running relay with a console tab open', () => {
  it('closes at once: the live stream ends instead of holding the server', async () => {
    const { startRelay } = await import('../../src/runtime.js');
    const relay = await startRelay(loadConfig(writeRelayYaml(tempDir()), {}));
    const base = `http://127.0.0.1:${relay.port}`;
    const signedIn = await fetch(`${base}/console/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: { origin: base, 'sec-fetch-site': 'same-origin' },
      body: new URLSearchParams({ token: TOKENS.admin, next: '/console' }),
    });
    expect(signedIn.status).toBe(303);
    const cookie = signedIn.headers.get('set-cookie')!.split(';')[0]!;
    const live = await fetch(`${base}/console/events`, { headers: { cookie } });
    const reader = live.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain('event: ready');
    const t0 = Date.now();
    await relay.close();
    expect(Date.now() - t0).toBeLessThan(3000);
    let done = false;
    while (!done) done = (await reader.read().catch(() => ({ done: true }))).done;
  });
});
