// The agent's page in a real headless Chromium against a relay started as `start` does (in
// process), with a fake HubSpot that knows the caller: an agent signed in through their one-time
// link sees the ringing card within a second of the webhook's answer, the caller's name soon after
// (and a notification, the tab being in the background), then answered, then ended, and the call
// in My calls with its recording and CRM links; another agent's page shows nothing of it; no page
// breaks the CSP; a call that ends while My calls is being fetched still gets into the list.

// The callbacks of page.evaluate run in the page: DOM types for them.
/// <reference lib="dom" />

import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import { launchBrowser } from '../harness/browser.mjs';
import { settleDeliveries, sourceToken, tempDir, TOKENS, writeRelayYaml } from '../support.js';

const HS_TOKEN = 'pat-eu1-desk-browser-0001';
const PORTAL = '4711';
const CALL = '261206113000_7';
const PUBLIC = 'https://relay.example';

describe("the agent's page in a browser", () => {
  let relay: Relay;
  let hs: FakeHubspot;
  /** One browser per agent: each has its own cookies (this Chromium has one context). */
  const browsers: Browser[] = [];
  let base: string;
  let jana: string;
  const violations: string[] = [];

  beforeAll(async () => {
    hs = await new FakeHubspot(HS_TOKEN).start();
    jana = hs.addContact({
      firstname: 'Jana',
      lastname: 'Nováková',
      company: 'Acme s.r.o.',
      phone: '+420 774 852 629',
    });
    const file = writeRelayYaml(tempDir(), {
      server: `  publicUrl: ${PUBLIC}\n`,
      more: `agents:
  - { extension: "101", name: Alice, email: alice@example.com }
  - { extension: "103", name: Carl }
targets:
  - name: hubspot
    type: hubspot
    token: ${HS_TOKEN}
    baseUrl: ${hs.url}
    portalId: "${PORTAL}"
    settleSec: 0
`,
    });
    relay = await startRelay(loadConfig(file, {}), undefined, { delivery: { pollMs: 50 } });
    base = `http://127.0.0.1:${relay.port}`;
  });

  afterAll(async () => {
    // The browser first: its live streams would keep the server from closing.
    for (const b of browsers) await b.close();
    await relay?.close();
    await hs?.close();
  });

  /** A browser of its own (cookies apart), signed in as the agent through their link. */
  async function agentPage(extension: string, inBackground = false): Promise<Page> {
    const browser = await launchBrowser();
    browsers.push(browser);
    const page = await browser.newPage();
    if (inBackground) {
      // The tab is behind another one, and the agent allowed notifications: this headless
      // Chromium denies them all, so the test plays the agent's "Allow" (the permission) and
      // notes each notification the page makes.
      await page.evaluateOnNewDocument(() => {
        Object.defineProperty(document, 'hidden', { get: () => true });
        const shown: { title: string; body: string }[] = [];
        (window as unknown as { shown: typeof shown }).shown = shown;
        class Allowed extends window.Notification {
          static override get permission(): NotificationPermission {
            return 'granted';
          }
          constructor(title: string, opts?: NotificationOptions) {
            super(title, opts);
            shown.push({ title, body: opts?.body ?? '' });
          }
        }
        Object.defineProperty(window, 'Notification', { value: Allowed });
      });
    }
    page.on('console', (m) => {
      if (/Content[- ]Security[- ]Policy/i.test(m.text())) violations.push(m.text());
    });
    const made = await fetch(`${base}/api/agents/${extension}/sign-in-link`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.admin}` },
    });
    const { url } = (await made.json()) as { url: string };
    // The link is on server.publicUrl; this relay answers on 127.0.0.1.
    await page.goto(`${base}/agent/welcome${new URL(url).search}`);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    expect(page.url()).toBe(`${base}/agent`);
    await page.waitForFunction(() =>
      document.getElementById('desk-status')?.textContent?.startsWith('Live'),
    );
    return page;
  }

  const post = async (body: Record<string, unknown>): Promise<void> => {
    const res = await fetch(`${base}/hooks/3cx/${sourceToken('3cx')}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ Callerid: '774852629', Did: '', User: '101', ...body }),
    });
    expect(res.status).toBe(200);
  };

  const cardText = (page: Page): Promise<string> =>
    page.$eval(`[data-card="3cx/${CALL}"]`, (e) => (e as HTMLElement).innerText);
  const waitForCard = (page: Page, re: RegExp, timeout = 10_000): Promise<unknown> =>
    page.waitForFunction(
      (id: string, src: string, flags: string) => {
        const card = document.querySelector(`[data-card="3cx/${id}"]`);
        return card && new RegExp(src, flags).test((card as HTMLElement).innerText);
      },
      { timeout, polling: 'mutation' },
      CALL,
      re.source,
      re.flags,
    );

  it('shows the ringing card with the contact within a second, then answered, then ended', async () => {
    const alice = await agentPage('101', true);
    const carl = await agentPage('103');

    await post({ Event: 'ringing', Usertype: 'ext', Id: `${CALL}-0` });
    // The card with its number within a second of the webhook's answer; the contact's name (a
    // CRM round trip more) with a longer wait of its own, so that a busy machine does not fail it.
    const answered = Date.now();
    await waitForCard(alice, /774 852 629/, 5000);
    expect(Date.now() - answered).toBeLessThan(1000);
    await waitForCard(alice, /Jana Nováková/, 15_000);
    const ringing = await cardText(alice);
    expect(ringing).toMatch(/^ringing\n/i);
    expect(ringing).toContain('+420 774 852 629');
    expect(ringing).toContain('Acme s.r.o.');
    expect(
      await alice.$eval(`[data-card="3cx/${CALL}"] a`, (a) => (a as HTMLAnchorElement).href),
    ).toBe(`https://app.hubspot.com/contacts/${PORTAL}/record/0-1/${jana}`);

    // The tab is in the background: one notification, with the caller's name if the CRM answered
    // within the page's 1.5 s wait (a busy machine may take longer: then the number alone).
    const shown = await alice.evaluate(
      () => (window as unknown as { shown: { title: string; body: string }[] }).shown,
    );
    expect(shown).toHaveLength(1);
    expect(shown[0]!.title).toBe('Call from +420 774 852 629');
    expect(['Jana Nováková, Acme s.r.o.', '']).toContain(shown[0]!.body);

    await post({ Event: 'incomingcall_started', Trtype: 'NotDef', Id: `${CALL}-1` });
    await waitForCard(alice, /^Answered by Alice/i);
    await post({
      Event: 'incoming',
      Finishtype: 'Ok',
      Transfer: 'False',
      Duration: '00:42',
      Id: `${CALL}-1`,
    });
    await waitForCard(alice, /^Ended \(answered by Alice\)/i);
    await post({
      Event: 'recording',
      FileUrls: [`https://pbx.example:5001/webapi/recording/${CALL}-1-1.mp3`],
      Id: `${CALL}-1`,
    });

    // My calls took the ended call in without a reload.
    await alice.waitForFunction(
      (id: string) => document.querySelector(`#my-calls tr[data-call="3cx/${id}"]`),
      {},
      CALL,
    );
    // Its CRM copy and its recording, once delivered.
    await settleDeliveries(relay);
    await alice.reload();
    const row = await alice.$eval(
      `#my-calls tr[data-call="3cx/${CALL}"]`,
      (tr) => (tr as HTMLElement).innerText,
    );
    expect(row).toMatch(/in\s+\+420 774 852 629\s+Jana Nováková\s+answered \(Alice\)\s+0:42/);
    const links = await alice.$$eval(`#my-calls tr[data-call="3cx/${CALL}"] a`, (as) =>
      as.map((a) => [(a as HTMLElement).innerText, (a as HTMLAnchorElement).href]),
    );
    expect(links).toEqual([
      ['Listen', expect.stringMatching(new RegExp(`^${PUBLIC}/recordings/[^/]+\\.mp3$`))],
      ['Open in hubspot', expect.stringMatching(/^https:\/\/app\.hubspot\.com\//)],
      ['Call back', `${base}/agent/dial?number=%2B420774852629`],
    ]);

    // Carl's page never showed any of it.
    expect(await carl.$$(`[data-card="3cx/${CALL}"]`)).toEqual([]);
    expect(await carl.$eval('main', (m) => (m as HTMLElement).innerText)).not.toContain('774');
    expect(violations).toEqual([]);
  });

  it('My calls takes in a call that ended while the list was being fetched', async () => {
    const carl = await agentPage('103');
    // The list's fetches are answered by the test: the first one's answer is read from the relay
    // at once and handed to the page only after a second call has ended (a slow answer).
    const cookie = (await carl.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    let held: (() => void) | undefined;
    let fetched = 0;
    await carl.setRequestInterception(true);
    carl.on('request', (req) => {
      if (!req.url().endsWith('/agent/calls') || fetched++ > 0) return void req.continue();
      void fetch(req.url(), { headers: { cookie, accept: 'text/html' } })
        .then((res) => res.text())
        .then((body) => {
          held = () => void req.respond({ status: 200, contentType: 'text/html', body });
        });
    });
    const call = async (id: string, number: string): Promise<void> => {
      const at = { User: '103', Callerid: number };
      await post({ ...at, Event: 'ringing', Usertype: 'ext', Id: `${id}-0` });
      // The page must see it ring: a call it first sees ended is no call ending before its eyes.
      await carl.waitForFunction(
        (i: string) => document.querySelector(`[data-card="3cx/${i}"]`),
        { timeout: 10_000 },
        id,
      );
      await post({ ...at, Event: 'incomingcall_started', Trtype: 'NotDef', Id: `${id}-1` });
      await post({
        ...at,
        Event: 'incoming',
        Finishtype: 'Ok',
        Transfer: 'False',
        Duration: '00:05',
        Id: `${id}-1`,
      });
    };
    const ended = (id: string): Promise<unknown> =>
      carl.waitForFunction(
        (i: string) =>
          document.querySelector(`[data-card="3cx/${i}"]`)?.getAttribute('data-state') === 'ended',
        { timeout: 10_000 },
        id,
      );
    await call('261206114000_1', '601555111');
    await ended('261206114000_1');
    // The list's fetch for the first call is under way (held) when the second ends.
    const deadline = Date.now() + 10_000;
    while (!held) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 20));
    }
    await call('261206114000_2', '601555222');
    await ended('261206114000_2');
    held();
    await carl.waitForFunction(
      () => document.querySelector('#my-calls tr[data-call="3cx/261206114000_2"]'),
      { timeout: 10_000 },
    );
    expect(fetched).toBeGreaterThanOrEqual(2);
  });
});
