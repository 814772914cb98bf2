// An agent signs in with their company account in a real headless Chromium: "Sign in with ..." on
// the relay's page, the real OpenID Connect provider's login form (oidc-provider), back on the
// relay and on to their page, then signs out. The provider's redirect back is a navigation from
// another page, as in production, and the pages keep to the relay's CSP.
// CALLRELAY_SCREENSHOTS=<dir> keeps the sign-in page's screenshot there (docs/console).

// The callbacks of page.evaluate run in the page: DOM types for them.
/// <reference lib="dom" />

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { launchBrowser } from '../harness/browser.mjs';
import { OidcServer, oidcYaml } from '../fakes/oidc.js';
import { freePort, tempDir, writeRelayYaml } from '../support.js';

describe('company sign-in in a browser', () => {
  let relay: Relay;
  let idp: OidcServer;
  let browser: Browser;
  let page: Page;
  let base: string;
  const violations: string[] = [];

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    idp = await new OidcServer().start(`${base}/agent/oidc/callback`);
    const file = writeRelayYaml(tempDir(), {
      port,
      server: `  publicUrl: ${base}\n`,
      more: `agents:
  - { extension: "101", name: Alice, email: alice@example.com }
${oidcYaml(idp.issuer, 'Google Workspace')}`,
    });
    relay = await startRelay(loadConfig(file, {}));
    browser = await launchBrowser({ width: 1000, height: 640 });
    page = await browser.newPage();
    page.on('console', (m) => {
      if (/Content[- ]Security[- ]Policy/i.test(m.text())) violations.push(m.text());
    });
  });

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    await idp?.close();
  });

  it('signs in through the provider, lands on the agent page, and signs out', async () => {
    await page.goto(`${base}/agent`);
    expect(new URL(page.url()).pathname).toBe('/agent/sign-in');
    const button = await page.$eval('#oidc-sign-in', (a) => a.textContent);
    expect(button).toBe('Sign in with Google Workspace');
    const dir = process.env.CALLRELAY_SCREENSHOTS ?? tempDir();
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, 'agent-sign-in.png') as `${string}.png` });

    await Promise.all([page.waitForNavigation(), page.click('#oidc-sign-in')]);
    expect(page.url().startsWith(idp.issuer)).toBe(true);
    await page.type('input[name=login]', 'alice');
    await page.type('input[name=password]', 'any password');
    await page.click('button[type=submit]');
    await page
      .waitForFunction(
        () => location.pathname === '/agent' && document.body.textContent?.includes('Alice (101)'),
        // Generous: two cores shared with other test runs.
        { timeout: 30_000 },
      )
      .catch(async (err: Error) => {
        // Where the browser got stuck says more than the timeout.
        const body = await page.evaluate(() => document.body.textContent).catch(() => '?');
        throw new Error(`${err.message} at ${page.url()}: ${body?.slice(0, 500)}`);
      });
    expect(new URL(page.url()).origin).toBe(base);

    await Promise.all([
      page.waitForNavigation(),
      page.click('form[action="/agent/sign-out"] button'),
    ]);
    expect(new URL(page.url()).pathname).toBe('/agent/sign-in');
    await page.goto(`${base}/agent`);
    expect(new URL(page.url()).pathname).toBe('/agent/sign-in');
    expect(violations).toEqual([]);
  }, 60_000);
});
