// Sessions end everywhere they are held: a console's live stream is no request that a sign-out
// would refuse, so it must end by itself within a few seconds; and a reload with a new admin token
// deletes every stored session, so that instances sharing the store which have not reloaded yet
// refuse them too.

import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { SESSION_CHECK_MS } from '../../src/http/console/live.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { tempDir, TOKENS, writeRelayYaml } from '../support.js';

let relay: Relay | undefined;
afterEach(async () => {
  await relay?.close();
  relay = undefined;
});

async function signIn(r: Relay): Promise<string> {
  const base = `http://127.0.0.1:${r.port}`;
  const res = await fetch(`${base}/console/sign-in`, {
    method: 'POST',
    redirect: 'manual',
    headers: { origin: base, 'sec-fetch-site': 'same-origin' },
    body: new URLSearchParams({ token: TOKENS.admin, next: '/console' }),
  });
  expect(res.status).toBe(303);
  return res.headers.get('set-cookie')!.split(';')[0]!;
}

/** Sessions in the store, counted by deleting them. */
const deleteAll = (r: Relay): Promise<number> => r.store.deleteAllSessions();

describe('where a session ends', () => {
  it('a reload with a new admin token deletes every stored session', async () => {
    const file = writeRelayYaml(tempDir());
    relay = await startRelay(loadConfig(file, {}));
    await signIn(relay);
    await signIn(relay);
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace(TOKENS.admin, 'rotated-admin-token-0f3a9c7e5b1d'),
    );
    await relay.reload();
    expect(await deleteAll(relay)).toBe(0);
  });

  it('a reload that keeps the admin token keeps the sessions', async () => {
    const file = writeRelayYaml(tempDir());
    relay = await startRelay(loadConfig(file, {}));
    await signIn(relay);
    await relay.reload();
    expect(await deleteAll(relay)).toBe(1);
  });

  it('ends soon after the session is signed out', async () => {
    relay = await startRelay(loadConfig(writeRelayYaml(tempDir()), {}));
    const base = `http://127.0.0.1:${relay.port}`;
    const browser = { origin: base, 'sec-fetch-site': 'same-origin' };
    const signIn = await fetch(`${base}/console/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: browser,
      body: new URLSearchParams({ token: TOKENS.admin, next: '/console' }),
    });
    expect(signIn.status).toBe(303);
    const cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
    const page = await (await fetch(`${base}/console`, { headers: { cookie } })).text();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page)?.[1];
    expect(csrf).toBeTruthy();

    const live = await fetch(`${base}/console/events`, { headers: { cookie } });
    expect(live.status).toBe(200);
    const reader = live.body!.getReader();
    const ended = (async (): Promise<number> => {
      for (;;) if ((await reader.read()).done) return Date.now();
    })();

    const out = await fetch(`${base}/console/sign-out`, {
      method: 'POST',
      redirect: 'manual',
      headers: { ...browser, cookie },
      body: new URLSearchParams({ _csrf: csrf! }),
    });
    expect(out.status).toBe(303);
    const signedOut = Date.now();
    const limit = SESSION_CHECK_MS + 5000;
    const at = await Promise.race([
      ended,
      new Promise<number>((r) => setTimeout(() => r(Infinity), limit)),
    ]);
    expect(at - signedOut, 'the stream outlived its session').toBeLessThan(limit);
    await reader.cancel().catch(() => {});
  }, 30_000);
});
