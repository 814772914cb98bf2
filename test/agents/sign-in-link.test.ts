// An agent's one-time sign-in link: made by the admin through the API, opened (which uses nothing
// up), then used once by its button; the session it starts is an agent's, which no console page and
// no /api route takes, and which signing out ends.

import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { tempDir, TOKENS, writeRelayYaml } from '../support.js';

let relay: Relay | undefined;
afterEach(async () => {
  await relay?.close();
  relay = undefined;
});

const AGENTS = `agents:
  - { extension: "101", name: Alice, email: alice@example.com }
`;

async function start(): Promise<{ base: string; browser: Record<string, string> }> {
  relay = await startRelay(loadConfig(writeRelayYaml(tempDir(), { more: AGENTS }), {}));
  const base = `http://127.0.0.1:${relay.port}`;
  return { base, browser: { origin: base, 'sec-fetch-site': 'same-origin' } };
}

async function makeLink(base: string, ext: string, body?: unknown): Promise<Response> {
  return fetch(`${base}/api/agents/${ext}/sign-in-link`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKENS.admin}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

const secretOf = (url: string): string => new URL(url).searchParams.get('t')!;

describe("an agent's sign-in link", () => {
  it('works once, for that agent, and the session it starts is an agent’s only', async () => {
    const { base, browser } = await start();
    const made = await makeLink(base, '101');
    expect(made.status).toBe(201);
    const { url, agent } = (await made.json()) as { url: string; agent: string };
    expect(agent).toBe('101');
    expect(url.startsWith(`${base}/agent/welcome?t=`)).toBe(true);

    // Opening the link (a mail scanner, a previewer) uses nothing up.
    const opened = await fetch(url);
    expect(opened.status).toBe(200);
    expect(await opened.text()).toContain('method="post" action="/agent/welcome"');

    const use = (): Promise<Response> =>
      fetch(`${base}/agent/welcome`, {
        method: 'POST',
        redirect: 'manual',
        headers: browser,
        body: new URLSearchParams({ t: secretOf(url) }),
      });
    const first = await use();
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe('/agent');
    const cookie = first.headers.get('set-cookie')!.split(';')[0]!;
    const page = await fetch(`${base}/agent`, { headers: { cookie }, redirect: 'manual' });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Alice (101)');

    const again = await use();
    expect(again.status).toBe(401);
    expect(again.headers.get('set-cookie')).toBeNull();

    // Not the admin's: the console sends it to sign in, the API wants the bearer token.
    const console = await fetch(`${base}/console`, { headers: { cookie }, redirect: 'manual' });
    expect(console.status).toBe(303);
    expect(console.headers.get('location')).toMatch(/^\/console\/sign-in/);
    expect((await fetch(`${base}/api/calls`, { headers: { cookie } })).status).toBe(401);

    // Signing out ends it on the server.
    const html = await (await fetch(`${base}/agent`, { headers: { cookie } })).text();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
    const out = await fetch(`${base}/agent/sign-out`, {
      method: 'POST',
      redirect: 'manual',
      headers: { ...browser, cookie },
      body: new URLSearchParams({ _csrf: csrf }),
    });
    expect(out.status).toBe(303);
    const after = await fetch(`${base}/agent`, { headers: { cookie }, redirect: 'manual' });
    expect(after.status).toBe(303);
    expect(after.headers.get('location')).toMatch(/^\/agent\/sign-in/);
  });

  it('is refused from another site, for someone not in the directory, and without the admin token', async () => {
    const { base, browser } = await start();
    expect((await makeLink(base, '999')).status).toBe(404);
    expect((await makeLink(base, '101', { hours: 0 })).status).toBe(400);
    expect((await makeLink(base, '101', { hours: 'soon' })).status).toBe(400);
    const { url } = (await (await makeLink(base, '101')).json()) as { url: string };
    const foreign = await fetch(`${base}/agent/welcome`, {
      method: 'POST',
      redirect: 'manual',
      headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
      body: new URLSearchParams({ t: secretOf(url) }),
    });
    expect(foreign.status).toBe(403);
    // Still good after the refused attempt: the foreign post used nothing up.
    const ok = await fetch(`${base}/agent/welcome`, {
      method: 'POST',
      redirect: 'manual',
      headers: browser,
      body: new URLSearchParams({ t: secretOf(url) }),
    });
    expect(ok.status).toBe(303);
    expect((await fetch(`${base}/api/agents/101/sign-in-link`, { method: 'POST' })).status).toBe(
      401,
    );
  });
});
