// Click-to-call from a CRM page in a real headless Chromium: an agent signs in with a one-time
// link, their page's button makes the relay the browser's tel: handler (the URL it registers is
// checked: headless Chromium shows no prompt to accept it), a phone link on another site's page is
// followed through the handler URL as the browser would (a cross-site navigation, which leaves the
// SameSite=Strict session cookie out), the confirmation page's Call button is pressed, and the
// fake 3CX is asked to ring the agent's extension first. Signed out, the same link leads to sign-in
// with the way back. No page breaks the CSP.

// The callbacks of page.evaluate run in the page: DOM types for them.
/// <reference lib="dom" />

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { FakePbx } from '../fakes/pbx.js';
import { launchBrowser } from '../harness/browser.mjs';
import { tempDir, TOKENS, writeRelayYaml } from '../support.js';

const KEY = 'webapi-key-browser-0123';
const TEL = 'tel:+420-774-852-629';

describe('click-to-call from a CRM page, in a browser', () => {
  let relay: Relay;
  let pbx: FakePbx;
  let crm: Server;
  let crmUrl: string;
  let browser: Browser;
  let page: Page;
  let base: string;
  const violations: string[] = [];

  beforeAll(async () => {
    pbx = await new FakePbx().start();
    pbx.makecallKey = KEY;
    // Another site (a CRM's contact page) with a phone link, and the link to the relay's handler
    // URL the browser opens for it. localhost and 127.0.0.1 are different sites (a port is not).
    crm = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(
        `<!doctype html><title>Contact</title><h1>Jana Nováková</h1>
         <a id="phone" href="${TEL}">+420 774 852 629</a>
         <a id="handler" href="${base}/agent/dial?number=${encodeURIComponent(TEL)}">call</a>`,
      );
    });
    await new Promise<void>((r) => crm.listen(0, '127.0.0.1', r));
    crmUrl = `http://localhost:${(crm.address() as AddressInfo).port}/contacts/1`;
    const file = writeRelayYaml(tempDir(), {
      threecx: `    pbx:\n      url: ${pbx.url}\n      key: ${KEY}\n      timeoutSec: 2\n`,
      more: 'agents:\n  - { extension: "101", name: Alice }\n',
    });
    relay = await startRelay(loadConfig(file, {}));
    base = `http://127.0.0.1:${relay.port}`;
    browser = await launchBrowser();
    page = await browser.newPage();
    page.on('console', (m) => {
      if (/Content[- ]Security[- ]Policy/i.test(m.text())) violations.push(m.text());
    });
    // What the page asks of the browser's registerProtocolHandler, passed on to the real one.
    await page.evaluateOnNewDocument(() => {
      const w = window as unknown as { registered: string[][] };
      w.registered = [];
      const real = navigator.registerProtocolHandler?.bind(navigator);
      if (!real) return;
      navigator.registerProtocolHandler = (scheme: string, url: string): void => {
        w.registered.push([scheme, url]);
        real(scheme, url);
      };
    });
  });

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    await pbx?.close();
    await new Promise((r) => crm?.close(r));
  });

  const text = (selector = 'main'): Promise<string> =>
    page.$eval(selector, (e) => (e as HTMLElement).innerText);
  const clickButton = async (label: string): Promise<void> => {
    const handle = await page.waitForSelector(`::-p-xpath(//button[normalize-space()="${label}"])`);
    await Promise.all([page.waitForNavigation(), handle!.click()]);
  };

  it('signs the agent in with a one-time link', async () => {
    const made = await fetch(`${base}/api/agents/101/sign-in-link`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.admin}` },
    });
    const { url } = (await made.json()) as { url: string };
    await page.goto(url);
    await clickButton('Sign in');
    expect(page.url()).toBe(`${base}/agent`);
    expect(await text('header')).toContain('Alice (101)');
  });

  it("offers to open phone links: the button registers the relay's handler URL", async () => {
    const button = await page.waitForSelector('#tel-handler:not([hidden])');
    await button!.click();
    expect(
      await page.evaluate(() => (window as unknown as { registered: string[][] }).registered),
    ).toEqual([['tel', `${base}/agent/dial?number=%s`]]);
    // The real call went through (it throws on a URL the browser would not take).
    await page.waitForFunction(() =>
      document
        .getElementById('tel-handler-status')
        ?.textContent?.startsWith('If your browser asks'),
    );
  });

  it("follows a CRM page's phone link through the handler, confirms, and rings the agent", async () => {
    await page.goto(crmUrl);
    expect(new URL(page.url()).hostname).toBe('localhost');
    expect(await page.$eval('#phone', (a) => a.getAttribute('href')!)).toBe(TEL);
    // As Chromium opens a handler for the link: %s filled in with the whole link, escaped, as a
    // navigation the CRM's page started. The relay's page may send it on once from its own site.
    await page.click('#handler');
    await page.waitForSelector('main h1');
    expect(new URL(page.url()).pathname).toBe('/agent/dial');
    expect(await text('h1')).toBe('Call +420 774 852 629?');
    expect(await text()).toContain('Your phone at extension 101 rings first');
    expect(pbx.placed).toEqual([]);
    await clickButton('Call');
    expect(page.url()).toBe(`${base}/agent/dial/placed?number=%2B420774852629`);
    expect(await text()).toContain('Calling +420774852629: pick up at extension 101.');
    expect(pbx.placed.map((p) => [p.first, p.second])).toEqual([['101', '420774852629']]);
  });

  it('sends an agent signed out from the handler link to sign in, with the way back', async () => {
    await page.goto(`${base}/agent`);
    await clickButton('Sign out');
    await page.goto(crmUrl);
    await page.click('#handler');
    await page.waitForSelector('main h1');
    const url = new URL(page.url());
    expect(url.pathname).toBe('/agent/sign-in');
    // Sent on once (no loop), and the way back without the marker.
    expect(url.searchParams.get('next')).toBe(`/agent/dial?number=${encodeURIComponent(TEL)}`);
  });

  it('broke no Content-Security-Policy rule on any page', () => {
    expect(violations).toEqual([]);
  });
});
