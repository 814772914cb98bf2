// An agent's one-time sign-in link: made by the admin through the API, opened (which uses nothing
// up), then used once by its button; the session it starts is an agent's, which no console page and
// no /api route takes, and which signing out ends. Sessions and links stay with the person, not the
// extension; an agent page another site opens is sent on once from the relay's own page.

import { readFileSync, writeFileSync } from 'node:fs';
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

async function start(): Promise<{ base: string; browser: Record<string, string>; file: string }> {
  const file = writeRelayYaml(tempDir(), { more: AGENTS });
  relay = await startRelay(loadConfig(file, {}));
  const base = `http://127.0.0.1:${relay.port}`;
  return { base, browser: { origin: base, 'sec-fetch-site': 'same-origin' }, file };
}

/** Use a link's button as a browser of the relay's own page would; the answer. */
const useLink = (
  base: string,
  browser: Record<string, string>,
  url: string,
  next?: string,
): Promise<Response> =>
  fetch(`${base}/agent/welcome`, {
    method: 'POST',
    redirect: 'manual',
    headers: browser,
    body: new URLSearchParams({
      t: new URL(url).searchParams.get('t')!,
      ...(next === undefined ? {} : { next }),
    }),
  });

const linkOf = async (base: string, ext: string): Promise<string> =>
  ((await (await makeLink(base, ext)).json()) as { url: string }).url;

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

  it('goes on to where the agent was going (next), never off the agent pages', async () => {
    const { base, browser } = await start();
    const url = await linkOf(base, '101');
    const next = '/agent/dial?number=tel%3A%2B420774852629';
    const opened = await (await fetch(`${url}&next=${encodeURIComponent(next)}`)).text();
    expect(opened).toContain(`name="next" value="${next.replace(/&/g, '&amp;')}"`);
    const used = await useLink(base, browser, url, next);
    expect(used.status).toBe(303);
    expect(used.headers.get('location')).toBe(next);
    const elsewhere = await useLink(
      base,
      browser,
      await linkOf(base, '101'),
      'https://evil.example/',
    );
    expect(elsewhere.headers.get('location')).toBe('/agent');
  });

  it('stays with the person: an extension given to someone else ends their session and links', async () => {
    const { base, browser, file } = await start();
    const used = await useLink(base, browser, await linkOf(base, '101'));
    const cookie = used.headers.get('set-cookie')!.split(';')[0]!;
    const unused = await linkOf(base, '101');
    const page = (): Promise<Response> =>
      fetch(`${base}/agent`, { headers: { cookie }, redirect: 'manual' });
    expect((await page()).status).toBe(200);
    const setAgents = async (line: string): Promise<void> => {
      writeFileSync(
        file,
        readFileSync(file, 'utf8').replace(/ {2}- \{ extension: "101".*\n/, line),
      );
      await relay!.reload();
    };
    // The same email in other letters: the same person.
    await setAgents('  - { extension: "101", name: Alice, email: Alice@Example.com }\n');
    expect((await page()).status).toBe(200);
    // 101 is Carol's now: Alice's session and her unused link are no way in as Carol.
    await setAgents('  - { extension: "101", name: Carol, email: carol@example.com }\n');
    const gone = await page();
    expect(gone.status).toBe(303);
    expect(gone.headers.get('location')).toMatch(/^\/agent\/sign-in/);
    expect((await useLink(base, browser, unused)).status).toBe(401);
    // Carol's own link works.
    const carol = await useLink(base, browser, await linkOf(base, '101'));
    expect(carol.status).toBe(303);
    const carolCookie = carol.headers.get('set-cookie')!.split(';')[0]!;
    expect(
      await (await fetch(`${base}/agent`, { headers: { cookie: carolCookie } })).text(),
    ).toContain('Carol (101)');
  });

  it('sends a page another site opened on once from its own, as the session cookie is left out', async () => {
    const { base, browser } = await start();
    // As Chromium opens a link in the tab (fetch() here sends its own sec-fetch-mode).
    const cross = { 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'document' };
    const visit = (path: string, headers: Record<string, string>): Promise<Response> =>
      fetch(`${base}${path}`, { headers, redirect: 'manual' });
    const dial = '/agent/dial?number=tel%3A%2B420774852629';
    // A tel: link on a CRM's page: no cookie came, so the relay's own page asks again.
    const first = await visit(dial, cross);
    expect(first.status).toBe(200);
    const again = `${dial}&amp;same-site=1`;
    const html = await first.text();
    expect(html).toContain(`<meta http-equiv="refresh" content="0;url=${again}"`);
    expect(html).toContain(`<a href="${again}">`);
    expect(first.headers.get('content-security-policy')).toContain("script-src 'self'");
    // From the relay's own page, still no session: signed out indeed, and the way back unmarked.
    for (const headers of [{ 'sec-fetch-site': 'same-origin' }, cross]) {
      const second = await visit(`${dial}&same-site=1`, headers);
      expect(second.status).toBe(303);
      expect(second.headers.get('location')).toBe(
        `/agent/sign-in?next=${encodeURIComponent(dial)}`,
      );
    }
    // Typed or from a bookmark ("none"), and from an old browser (no header): as before.
    const asBefore: Record<string, string>[] = [
      { 'sec-fetch-site': 'none', 'sec-fetch-dest': 'document' },
      {},
    ];
    for (const headers of asBefore) expect((await visit(dial, headers)).status).toBe(303);
    // The sign-in page too (a signed-in agent is sent on to where they were going).
    const signIn = await visit(`/agent/sign-in?next=${encodeURIComponent(dial)}`, cross);
    expect(signIn.status).toBe(200);
    expect(await signIn.text()).toContain('same-site=1');
    // Signed in, the page itself (as a browser sends the cookie on the second visit).
    const used = await useLink(base, browser, await linkOf(base, '101'));
    const cookie = used.headers.get('set-cookie')!.split(';')[0]!;
    // (No PBX in this relay: the page says so, to Alice.)
    const signedIn = await visit(`${dial}&same-site=1`, {
      cookie,
      'sec-fetch-site': 'same-origin',
    });
    expect(signedIn.headers.get('location')).toBeNull();
    expect(await signedIn.text()).toContain('Alice (101)');
  });
});
