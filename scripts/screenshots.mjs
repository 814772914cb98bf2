// Screenshots of the console for the docs (npm run screenshots): a relay in this process with
// stub CRMs and a stub PBX on 127.0.0.1, golden call flows posted to it, one CRM outage that
// ends in a dead letter, one request no adapter rule knows, a PBX with a stale token, an agent
// HubSpot has no user for, a Pipedrive dry run; then each
// page at desktop width, and the call list and a call at a phone's (375 px).
// Writes docs/console/*.png (or into the folder given as the first argument).

import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, toneWav } from '../test/harness/browser.mjs';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
// The built relay (npm run build); by URL, so that type checking leaves dist/ alone.
const { loadConfig } = await import(new URL('../dist/config/load.js', import.meta.url).href);
const { startRelay } = await import(new URL('../dist/runtime.js', import.meta.url).href);
const OUT = resolve(process.argv[2] ?? join(ROOT, 'docs', 'console'));
const ADMIN = 'screenshot-admin-token';

/**
 * A local HTTP server answering with `handler`'s status and JSON body.
 * @param {(method: string, path: string) => [number, unknown]} handler
 */
async function stub(handler) {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const [status, body] = handler(req.method ?? 'GET', req.url ?? '/');
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', () => r(undefined)));
  const port = /** @type {import('node:net').AddressInfo} */ (server.address()).port;
  return { server, url: `http://127.0.0.1:${port}` };
}

/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A HubSpot that knows one contact for every number, and can be down.
let hubspotDown = false;
let nextId = 5100;
const hubspot = await stub((method, path) => {
  if (hubspotDown)
    return [
      503,
      { status: 'error', message: 'Service temporarily unavailable', category: 'INTERNAL' },
    ];
  if (path.endsWith('/search'))
    return [200, { total: 1, results: [{ id: '901', properties: {} }] }];
  if (method === 'POST' || method === 'PATCH') return [200, { id: String(nextId++) }];
  return [200, { results: [] }];
});
const webhook = await stub(() => [200, {}]);

const wav = toneWav(3);
const pbx = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'audio/wav', 'content-length': wav.length }).end(wav);
});
await new Promise((r) => pbx.listen(0, '127.0.0.1', () => r(undefined)));
const pbxHost = `http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (pbx.address()).port}`;

const dir = mkdtempSync(join(tmpdir(), 'callrelay-shots-'));
const adapters = join(dir, 'adapters');
mkdirSync(adapters);
for (const name of ['3cx.yaml', 'callerdesk.yaml'])
  writeFileSync(join(adapters, name), readFileSync(join(ROOT, 'adapters', name)));
const file = join(dir, 'relay.yaml');
writeFileSync(
  file,
  `server:
  port: 0
  host: 127.0.0.1
store:
  sqlite: ./relay.db
admin:
  token: ${ADMIN}
adapters: ./adapters
sources:
  - name: 3cx
    adapter: 3cx
    token: screenshot-3cx-token
    timezone: Europe/Prague
    defaultCountry: CZ
    recordings:
      allowHosts: ["${pbxHost}"]
  - name: callerdesk
    adapter: callerdesk
    token: screenshot-callerdesk-token
targets:
  - name: hubspot
    type: hubspot
    token: pat-screenshot-hubspot-token
    baseUrl: ${hubspot.url}
    portalId: "1234567"
    settleSec: 0
    retryForHours: 0.0005
    agents:
      "117": bob@acme-ofice.cz
  - name: pipedrive
    type: pipedrive
    dryRun: true
    token: \${PIPEDRIVE_TOKEN:-dry-run-needs-no-token}
    settleSec: 0
  - name: webhook
    type: http
    url: ${webhook.url}/calls
`,
);

const relay = await startRelay(loadConfig(file, {}), undefined, {
  delivery: { pollMs: 50, backoff: { baseMs: 100, maxMs: 200 } },
});
const base = `http://127.0.0.1:${relay.port}`;
const tokens = { '3cx': 'screenshot-3cx-token', callerdesk: 'screenshot-callerdesk-token' };

/**
 * Post a golden flow's requests as the PBX would, with its recordings on the stub PBX.
 * @param {'3cx' | 'callerdesk'} source
 * @param {string} name
 */
async function postFlow(source, name) {
  const flow = JSON.parse(
    readFileSync(join(ROOT, 'adapters', 'cases', source, `${name}.json`), 'utf8'),
  );
  for (const r of flow.requests) {
    if (r.direction === 'to-pbx') continue;
    const body = r.body?.replace(/https:\/\/FQDN:5001\/webapi\/recording\//g, `${pbxHost}/rec/`);
    const url = `${base}/hooks/${source}/${tokens[source]}`;
    if (r.method === 'GET') await fetch(`${url}?${(r.query ?? '').replace(/ /g, '%20')}`);
    else
      await fetch(url, {
        method: r.method,
        headers: r.contentType ? { 'content-type': r.contentType } : {},
        body: body ?? '',
      });
  }
}

async function settle() {
  for (let i = 0; i < 200; i++) {
    await relay.pipeline.drain();
    if (!(await relay.store.listDeliveries({ state: 'due', limit: 1 })).length) return;
    await sleep(50);
  }
}

for (const name of [
  '3cx-v2-incoming-answered',
  '3cx-v2-outgoing-missed',
  '3cx-v2-ringgroup-answered',
  'callerdesk-incoming-answered',
  'callerdesk-incoming-missed',
  '3cx-v2-incoming-missed-queue',
])
  await postFlow(name.startsWith('3cx') ? '3cx' : 'callerdesk', name);
await settle();
// HubSpot is down while this call ends: retried, then given up.
hubspotDown = true;
await postFlow('callerdesk', 'callerdesk-outgoing-answered');
await sleep(2500);
await settle();
hubspotDown = false;
await postFlow('3cx', '3cx-v2-incoming-attended-transfer');
await fetch(`${base}/hooks/3cx/${tokens['3cx']}`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: '{"event":"ai","id":"230307142318_40-2","summary":"Customer asked about the invoice.","sentiment_score":"4"}',
});
// An event the 3CX adapter has no rule for: kept, listed under failures, replayable.
await fetch(`${base}/hooks/3cx/${tokens['3cx']}`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: '{"event":"parked","id":"230307142318_40-2","user":"204"}',
});
await settle();
// A PBX still posting with an old token: refused, and shown on Setup.
await fetch(`${base}/hooks/3cx/an-old-token-from-last-year`, { method: 'POST', body: '{}' });
for (let i = 0; i < 100 && !(await relay.store.refusals()).length; i++) await sleep(50);

mkdirSync(OUT, { recursive: true });
const browser = await launchBrowser({ width: 1280, height: 900 });
try {
  const page = await browser.newPage();
  /**
   * @param {string} name
   * @param {boolean} [fullPage] false: what a screen shows first
   */
  const shot = async (name, fullPage = true) => {
    await page.screenshot({
      path: /** @type {`${string}.png`} */ (join(OUT, `${name}.png`)),
      fullPage,
    });
    console.log(`wrote ${join(OUT, `${name}.png`)}`);
  };
  await page.goto(`${base}/console`);
  await shot('sign-in');
  await page.type('#token', 'not-the-admin-token');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await shot('sign-in-wrong-token');
  await page.type('#token', ADMIN);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);

  await page.waitForSelector('#live-status');
  await sleep(300);
  await shot('calls');
  await page.goto(`${base}/console/calls/3cx/230307142318_40`);
  await page.click('details.raw summary');
  await shot('call');
  await page.goto(`${base}/console/calls/callerdesk/1672651234.9605678`);
  await shot('call-missed');
  await page.goto(`${base}/console/failures`);
  await shot('failures');
  await page.goto(`${base}/console/failures/confirm?action=retry-dead`);
  await shot('failures-confirm');
  await page.goto(`${base}/console/setup`);
  await page.click('form[data-reveal] button');
  await page.waitForFunction("!document.querySelector('code.url').textContent.includes('••')");
  await shot('setup');
  await page.goto(`${base}/console/setup/targets/webhook/backfill?since=2023-01-01`);
  await shot('backfill');
  await page.goto(`${base}/console/no-such-page`);
  await shot('not-found');
  await page.setViewport({ width: 375, height: 740 });
  await page.goto(`${base}/console`);
  await shot('calls-phone');
  await page.goto(`${base}/console/calls/3cx/230307142318_40`);
  await shot('call-phone', false);
} finally {
  await browser.close();
  await relay.close();
  for (const s of [hubspot.server, webhook.server, pbx]) s.close();
}
