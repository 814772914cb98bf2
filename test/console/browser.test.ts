// The console in a real headless Chromium against a relay started as `start` does (in-process),
// with a fake HubSpot and a fake PBX serving a WAV: sign in, a call appears live, its page plays
// the recording and shows the delivery with its attempts, a CRM outage goes from retrying to dead
// and back to delivered, an adapter fix is reloaded and the unmapped requests replayed, setup
// reveals the webhook URL. No page breaks the CSP.

// The callbacks of page.evaluate run in the page: DOM types for them.
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { readFlow } from '../../src/flows.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import { launchBrowser, toneWav } from '../harness/browser.mjs';
import {
  ADAPTER_NAMES,
  ADAPTERS,
  sendFlowRequest,
  sourceToken,
  tempDir,
  TOKENS,
  writeRelayYaml,
} from '../support.js';

const HS_TOKEN = 'pat-eu1-browser-test-0001';
const TRANSFER = '230307142318_40';
const ANSWERED = '230307114903_10';
const FULL_3CX = readFileSync(join(ADAPTERS, '3cx.yaml'), 'utf8');
/** The 3CX adapter before it learnt the AI event: such requests stay unmapped. */
const WITHOUT_AI = FULL_3CX.replace(/ {2}- name: ai\n[\s\S]*?(?=\n {2}- name:|$)/, '');

describe('console in a browser', () => {
  let relay: Relay;
  let hs: FakeHubspot;
  let pbx: Server;
  let pbxHost: string;
  let browser: Browser;
  let page: Page;
  let base: string;
  let adapters: string;
  const violations: string[] = [];

  beforeAll(async () => {
    const dir = tempDir();
    adapters = join(dir, 'adapters');
    mkdirSync(adapters);
    writeFileSync(join(adapters, '3cx.yaml'), WITHOUT_AI);
    writeFileSync(
      join(adapters, 'callerdesk.yaml'),
      readFileSync(join(ADAPTERS, 'callerdesk.yaml')),
    );
    const wav = toneWav(1);
    pbx = createServer((req, res) => {
      if (!req.url?.startsWith('/rec/')) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'audio/wav', 'content-length': wav.length }).end(wav);
    });
    await new Promise<void>((r) => pbx.listen(0, '127.0.0.1', r));
    pbxHost = `http://127.0.0.1:${(pbx.address() as AddressInfo).port}`;
    hs = await new FakeHubspot(HS_TOKEN).start();
    const file = writeRelayYaml(dir, {
      adapters,
      threecx: `    recordings:\n      allowHosts: ["${pbxHost}"]\n`,
      more: `targets:
  - name: hubspot
    type: hubspot
    token: ${HS_TOKEN}
    baseUrl: ${hs.url}
    portalId: "1234567"
    settleSec: 0
    retryForHours: 0.0008
`,
    });
    relay = await startRelay(loadConfig(file, {}), undefined, {
      delivery: { pollMs: 50, backoff: { baseMs: 150, maxMs: 300 } },
    });
    base = `http://127.0.0.1:${relay.port}`;
    browser = await launchBrowser();
    page = await browser.newPage();
    page.on('dialog', (d) => void d.accept());
    page.on('console', (m) => {
      if (/Content[- ]Security[- ]Policy/i.test(m.text())) violations.push(m.text());
    });
  });

  afterAll(async () => {
    // The browser first: its live streams would keep the server from closing.
    await browser?.close();
    await relay?.close();
    await hs?.close();
    pbx?.closeAllConnections();
    await new Promise((r) => pbx?.close(r));
  });

  /** Post a golden 3CX flow as the PBX would, its recordings on the fake PBX. */
  async function postFlow(name: string): Promise<void> {
    const flow = readFlow(join(ADAPTERS, 'cases', '3cx', `${name}.json`));
    for (const r of flow.requests) {
      const body = r.body?.replace(/https:\/\/FQDN:5001\/webapi\/recording\//g, `${pbxHost}/rec/`);
      const res = await sendFlowRequest(relay.port, '3cx', { ...r, body });
      expect(res?.status).toBe(200);
    }
  }

  const text = (selector = 'main'): Promise<string> =>
    page.$eval(selector, (e) => (e as HTMLElement).innerText);
  const rowText = (callId: string): Promise<string> =>
    page.$eval(
      `a[href="/console/calls/3cx/${callId}"]`,
      (a) => (a.closest('tr') as HTMLElement).innerText,
    );
  const waitForRow = (callId: string, re: RegExp): Promise<unknown> =>
    page.waitForFunction(
      (id: string, src: string) => {
        const a = document.querySelector(`a[href="/console/calls/3cx/${id}"]`);
        return a && new RegExp(src).test((a.closest('tr') as HTMLElement).innerText);
      },
      { timeout: 10_000 },
      callId,
      re.source,
    );
  const click = async (selector: string): Promise<void> => {
    await Promise.all([page.waitForNavigation(), page.click(selector)]);
  };
  const clickButton = async (label: string): Promise<void> => {
    const handle = await page.waitForSelector(`::-p-xpath(//button[normalize-space()="${label}"])`);
    await Promise.all([page.waitForNavigation(), handle!.click()]);
  };

  it('signs in with the admin token, not with a wrong one, into a strict session cookie', async () => {
    await page.goto(`${base}/`);
    expect(page.url()).toBe(`${base}/console/sign-in?next=%2Fconsole`);
    await page.type('#token', 'not-the-admin-token');
    await click('button[type=submit]');
    expect(await text('#sign-in-error')).toContain('not the admin token');
    expect(await page.cookies()).toEqual([]);
    await page.type('#token', TOKENS.admin);
    await click('button[type=submit]');
    expect(page.url()).toBe(`${base}/console`);
    const [cookie, ...others] = await page.cookies();
    expect(others).toEqual([]);
    expect(cookie).toMatchObject({
      name: 'callrelay_console',
      httpOnly: true,
      sameSite: 'Strict',
      path: '/',
      secure: false,
    });
    expect(cookie!.expires * 1000 - Date.now()).toBeGreaterThan(11.9 * 3600_000);
    expect(cookie!.value).not.toContain(TOKENS.admin);
  });

  it('shows a new call without reloading the page, delivered', async () => {
    await page.waitForFunction(() =>
      document.getElementById('live-status')?.textContent?.startsWith('Live'),
    );
    await page.evaluate(() => ((window as any).sameDocument = true));
    await postFlow('3cx-v2-incoming-attended-transfer');
    await waitForRow(TRANSFER, /hubspot: delivered/);
    expect(await rowText(TRANSFER)).toMatch(/in\s+05552221133\s+204\s+answered\s+0:20/);
    expect(await page.evaluate(() => (window as any).sameDocument)).toBe(true);
  });

  it("opens the call: the legs' timeline, a recording that plays, the delivery with its attempts", async () => {
    await click(`a[href="/console/calls/3cx/${TRANSFER}"]`);
    const main = await text();
    expect(main).toContain('attended transfer: 117 → 204');
    const legs = await page.$$eval('.leg h3', (hs) => hs.map((h) => (h as HTMLElement).innerText));
    // Parts in order, not the PBX's leg ids ("Leg -1"), which stay in the raw values.
    expect(legs).toEqual([
      'Part 1',
      expect.stringMatching(/^Part 2 · agent 117 · 0:14$/),
      expect.stringMatching(/^Part 3 · agent 204 · 0:06$/),
    ]);
    expect(main).toMatch(/Status\s+Ended, answered\n/);
    expect(main).not.toContain('(Ok)');
    await page.click('details.raw summary');
    expect(await text('details.raw')).toMatch(/Phone system's status\s+Ok/);
    const audio = await page.$$eval('audio', (as) => as.map((a) => a.getAttribute('src')));
    expect(audio).toEqual([0, 1].map((i) => `/console/calls/3cx/${TRANSFER}/recordings/${i}`));
    const answer = await page.evaluate(async (src: string) => {
      const r = await fetch(src);
      return {
        status: r.status,
        type: r.headers.get('content-type'),
        bytes: (await r.arrayBuffer()).byteLength,
      };
    }, audio[0]!);
    expect(answer).toEqual({ status: 200, type: 'audio/wav', bytes: toneWav(1).length });
    const played = await page.$eval('audio', async (a) => {
      const el = a as HTMLAudioElement;
      await el.play();
      return { duration: el.duration, error: el.error };
    });
    expect(played.error).toBeNull();
    expect(played.duration).toBeCloseTo(1, 1);

    const card = await text('section.card');
    expect(card).toMatch(/^hubspot\s+delivered/);
    expect(card).toMatch(/In the CRM\s+call 1\d{3}/);
    expect(card).toContain('creating the call engagement');
    expect(card).toMatch(/POST \/crm\/v3\/objects\/calls\s+201/);
  });

  it('says why a recording cannot be played instead of showing a silent player', async () => {
    const flow = readFlow(join(ADAPTERS, 'cases', '3cx', '3cx-v2-incoming-blind-transfer.json'));
    for (const r of flow.requests) {
      // The first recording is gone from the PBX (404); the second is on a host not allowed.
      const body = r.body
        ?.replace(/https:\/\/FQDN:5001\/webapi\/recording\/(\S+?-1-1)/g, `${pbxHost}/gone/$1`)
        .replace(/https:\/\/FQDN:5001\/webapi\/recording\//g, 'https://elsewhere.example/rec/');
      expect((await sendFlowRequest(relay.port, '3cx', { ...r, body }))?.status).toBe(200);
    }
    // Stored is not yet folded: the page must show the call with both recordings in it.
    await relay.pipeline.drain();
    await page.goto(`${base}/console/calls/3cx/230307144544_42`);
    expect(await text()).toContain(
      'Recording 2 cannot be played: its host is not in sources[3cx].recordings.allowHosts',
    );
    expect(await page.$$('audio')).toHaveLength(1);
    await page.$eval('audio', (a) => (a as HTMLAudioElement).play().catch(() => {}));
    await page.waitForSelector('#rec-0:not([hidden])');
    expect(await text('#rec-0')).toMatch(/^This recording cannot be played: the recording could/);
    expect(await page.$eval('audio', (a) => (a as HTMLElement).hidden)).toBe(true);
  });

  it('shows a failing CRM as retrying, then dead; "Retry now" delivers the call', async () => {
    hs.failing = {
      status: 429,
      body: {
        status: 'error',
        message: `quota used up, token ${HS_TOKEN}`,
        category: 'RATE_LIMITS',
      },
    };
    await page.goto(`${base}/console`);
    await postFlow('3cx-v2-incoming-answered');
    await waitForRow(ANSWERED, /hubspot: retrying, next \d\d:\d\d:\d\d/);
    await waitForRow(ANSWERED, /hubspot: dead/);

    await click(`a[href="/console/calls/3cx/${ANSWERED}"]`);
    const card = await text('section.card');
    expect(card).toMatch(/^hubspot\s+dead/);
    expect(card).toContain('429 RATE_LIMITS: quota used up, token [redacted]');
    expect(await page.content()).not.toContain(HS_TOKEN);
    hs.failing = undefined;
    await clickButton('Retry now');
    expect(await text('.notice')).toBe('Retry: the call goes to hubspot now.');
    for (let i = 0; i < 50 && !/^hubspot\s+delivered/.test(await text('section.card')); i++) {
      await new Promise((r) => setTimeout(r, 100));
      await page.reload();
    }
    const after = await text('section.card');
    expect(after).toMatch(/^hubspot\s+delivered/);
    // Every try is there: the failed ones and the one that delivered.
    expect(after).toMatch(/retry\s+next try/);
    expect(after).toMatch(/dead/);
  });

  it('replays unmapped requests after the adapter is fixed and reloaded, without a restart', async () => {
    for (const id of [`${TRANSFER}-2`, `${ANSWERED}-1`])
      await sendFlowRequest(relay.port, '3cx', {
        method: 'POST',
        contentType: 'application/json',
        body: JSON.stringify({
          event: 'ai',
          id,
          summary: `Summary of ${id}`,
          sentiment_score: '4',
        }),
      });
    await page.goto(`${base}/console/failures`);
    expect(await text()).toMatch(/Unmapped requests \(2\)/);
    expect(await text()).toContain('RELAY_ERR_UNKNOWN_EVENT');

    writeFileSync(join(adapters, '3cx.yaml'), `${FULL_3CX}\n  - name: [broken\n`);
    await clickButton('Reload relay.yaml and adapters');
    expect(await text('.notice.error')).toMatch(
      /^Reloading failed; the configuration in use stays\.\n.*3cx\.yaml/,
    );
    writeFileSync(join(adapters, '3cx.yaml'), FULL_3CX);
    await clickButton('Reload relay.yaml and adapters');
    expect(await text('.notice')).toBe(
      // Every adapter the test relay has a source for (a new adapter must not break this test).
      `Reloaded relay.yaml and the adapters (${ADAPTER_NAMES.join(', ')}). New and replayed ` +
        'requests use them now.',
    );

    await clickButton('Replay');
    expect(await text('.notice')).toMatch(/^Request #\d+: mapped \(rule ai\)\.$/);
    expect(await text()).toMatch(/Unmapped requests \(1\)/);
    await click('a[href="/console/failures/confirm?action=replay-unmapped"]');
    expect(await text()).toContain('Replay 1 unmapped request with the adapters in use now?');
    await clickButton('Replay 1 request');
    expect(await text('.notice')).toBe('Replayed 1: 1 mapped, 0 still unmapped.');
    expect(await text()).toMatch(/Unmapped requests \(0\)/);

    await page.goto(`${base}/console/calls/3cx/${TRANSFER}`);
    expect(await text()).toMatch(new RegExp(`Summary\\s+Summary of ${TRANSFER}-2`));
  });

  it('reveals and copies the webhook URL on setup, and tests the CRM connection', async () => {
    await page.goto(`${base}/console/setup`);
    expect(await page.content()).not.toContain(sourceToken('3cx'));
    const code = '#hook-3cx';
    expect(await text(code)).toBe(`${base}/hooks/3cx/••••••••`);
    await page.click('form[data-reveal="hook-3cx"] button');
    await page.waitForFunction(
      (s: string) => !document.querySelector(s)!.textContent!.includes('•'),
      {},
      code,
    );
    expect(await text(code)).toBe(`${base}/hooks/3cx/${sourceToken('3cx')}`);
    await browser
      .defaultBrowserContext()
      .overridePermissions(base, [
        'clipboard-read',
        'clipboard-write',
        'clipboard-sanitized-write',
      ]);
    await page.click('button[data-copy="hook-3cx"]');
    await page.waitForFunction(
      () => document.getElementById('hook-3cx-note')?.textContent === 'Copied.',
    );
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(
      `${base}/hooks/3cx/${sourceToken('3cx')}`,
    );
    expect(await text()).toMatch(/3cx\s+Adapter\s+3cx/);
    // Three calls: the transfer, the one retried, the one with recordings it cannot play.
    expect(await text()).toMatch(/hubspot\s+Type\s+hubspot\s+Delivered\s+3/);

    const hubspot = await page.waitForSelector(
      'form[action="/console/setup/targets/hubspot/check"] button',
    );
    await Promise.all([page.waitForNavigation(), hubspot!.click()]);
    expect(await text('.notice')).toBe('hubspot: token accepted; owners and calls readable');
  });

  it('shows the essential columns of the call list on a phone without sideways scrolling', async () => {
    await page.setViewport({ width: 375, height: 740 });
    try {
      await page.goto(`${base}/console`);
      const fit = await page.$eval('.scroll', (e) => ({
        scroll: e.scrollWidth,
        client: e.clientWidth,
        page: document.documentElement.scrollWidth,
        shown: [...e.querySelectorAll('th')]
          .filter((th) => (th as HTMLElement).offsetParent !== null)
          .map((th) => (th as HTMLElement).innerText),
      }));
      expect(fit.shown).toEqual(['Started', 'Number', 'Outcome', 'Delivery']);
      expect(fit.scroll).toBeLessThanOrEqual(fit.client);
      expect(fit.page).toBeLessThanOrEqual(375);
    } finally {
      await page.setViewport({ width: 1280, height: 900 });
    }
  });

  it('labels every field, marks the current page, and keeps every page small', async () => {
    for (const [path, nav] of [
      ['/console', 'Calls'],
      [`/console/calls/3cx/${TRANSFER}`, 'Calls'],
      ['/console/failures', 'Failures'],
      ['/console/failures/confirm?action=retry-dead', 'Failures'],
      ['/console/setup', 'Setup'],
    ]) {
      const res = await page.goto(`${base}${path}`);
      expect((await res!.buffer()).length, path).toBeLessThan(50_000);
      const facts = await page.evaluate(() => ({
        unlabelled: [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
          .filter((e) => !(e as HTMLInputElement).labels?.length && !e.getAttribute('aria-label'))
          .map((e) => e.outerHTML),
        current: [...document.querySelectorAll('nav [aria-current="page"]')].map(
          (e) => (e as HTMLElement).innerText,
        ),
        h1: document.querySelectorAll('h1').length,
        unnamedButtons: [...document.querySelectorAll('button')].filter(
          (b) => !b.innerText.trim() && !b.getAttribute('aria-label'),
        ).length,
        headerless: [...document.querySelectorAll('table')].filter(
          (t) => !t.querySelector('thead th[scope="col"]'),
        ).length,
      }));
      expect(facts, path).toEqual({
        unlabelled: [],
        current: [nav],
        h1: 1,
        unnamedButtons: 0,
        headerless: 0,
      });
    }
    // The keyboard reaches the page's controls, and shows where it is.
    await page.goto(`${base}/console`);
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
    const outline = await page.evaluate(
      () => getComputedStyle(document.activeElement!).outlineStyle,
    );
    expect(outline).toBe('solid');
  });

  it('refuses a script that posts without the CSRF token; signs out; no page broke the CSP', async () => {
    const refused = await page.evaluate(async () => {
      const r = await fetch('/console/failures/retry-dead', { method: 'POST' });
      return { status: r.status, text: await r.text() };
    });
    expect(refused.status).toBe(403);
    expect(refused.text).toContain('RELAY_ERR_CSRF');
    await clickButton('Sign out');
    expect(page.url()).toBe(`${base}/console/sign-in`);
    expect(await page.cookies()).toEqual([]);
    await page.goto(`${base}/console/setup`);
    expect(page.url()).toBe(`${base}/console/sign-in?next=%2Fconsole%2Fsetup`);
    expect(violations).toEqual([]);
  });
});
