// Screenshots of the agent's page for the docs (npm run build, then node
// scripts/agent-screenshots.mjs): a relay in this process with a stub HubSpot that knows the
// callers, a few finished 3CX calls of extension 101, then one ringing; Alice signs in through her
// one-time link and the page is taken with the ringing card, and scrolled to My calls. Takes a
// minute: the finished calls' cards go first.
// Writes docs/console/agent-ringing.png and agent-calls.png (or into the folder given first).

import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from '../test/harness/browser.mjs';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
// The built relay (npm run build); by URL, so that type checking leaves dist/ alone.
const { loadConfig } = await import(new URL('../dist/config/load.js', import.meta.url).href);
const { startRelay } = await import(new URL('../dist/runtime.js', import.meta.url).href);
const OUT = resolve(process.argv[2] ?? join(ROOT, 'docs', 'console'));
const ADMIN = 'screenshot-admin-token';
const TOKEN = 'screenshot-3cx-token';

/** The stub HubSpot's people, by the national digits of their number. */
const PEOPLE = {
  774852629: { id: '901', firstname: 'Jana', lastname: 'Nováková', company: 'Acme s.r.o.' },
  603111222: { id: '902', firstname: 'Milan', lastname: 'Horák', company: 'Horák & syn' },
};

// A HubSpot that finds the people above by phone and takes every call engagement.
let nextId = 5100;
const hubspot = createServer((req, res) => {
  let body = '';
  req.on('data', (b) => (body += b));
  req.on('end', () => {
    /** @type {unknown} */
    let answer = { results: [] };
    if (req.url?.includes('/contacts/search')) {
      const digits = body.replace(/\D/g, '');
      const hit = Object.entries(PEOPLE).find(([n]) => digits.includes(n));
      answer = hit
        ? {
            total: 1,
            results: [
              {
                id: hit[1].id,
                properties: { ...hit[1], phone: `+420 ${hit[0]}`, hs_object_id: hit[1].id },
              },
            ],
          }
        : { total: 0, results: [] };
    } else if (req.method === 'POST' || req.method === 'PATCH') answer = { id: String(nextId++) };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  });
});
await new Promise((r) => hubspot.listen(0, '127.0.0.1', () => r(undefined)));
const hubspotUrl = `http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (hubspot.address()).port}`;

const dir = mkdtempSync(join(tmpdir(), 'callrelay-agent-shots-'));
const adapters = join(dir, 'adapters');
mkdirSync(adapters);
writeFileSync(join(adapters, '3cx.yaml'), readFileSync(join(ROOT, 'adapters', '3cx.yaml')));
const file = join(dir, 'relay.yaml');
writeFileSync(
  file,
  `server:
  port: 0
  host: 127.0.0.1
  publicUrl: https://relay.example.com
store:
  sqlite: ./relay.db
admin:
  token: ${ADMIN}
adapters: ./adapters
sources:
  - name: 3cx
    adapter: 3cx
    token: ${TOKEN}
    timezone: Europe/Prague
    defaultCountry: CZ
agents:
  - { extension: "101", name: Alice, email: alice@example.com, groups: ["800"] }
  - { extension: "102", name: Bob, email: bob@example.com, groups: ["800"] }
targets:
  - name: hubspot
    type: hubspot
    token: pat-screenshot-hubspot-token
    baseUrl: ${hubspotUrl}
    portalId: "1234567"
    settleSec: 0
`,
);

const relay = await startRelay(loadConfig(file, {}), undefined, { delivery: { pollMs: 50 } });
const base = `http://127.0.0.1:${relay.port}`;

/** @param {Record<string, unknown>} body */
const post = (body) =>
  fetch(`${base}/hooks/3cx/${TOKEN}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ Did: '', ...body }),
  });

/** A finished call: who rang, who answered (or nobody), how long. */
async function call(
  /** @type {string} */ id,
  /** @type {string} */ from,
  /** @type {string[]} */ rang,
  /** @type {string | null} */ answeredBy,
  /** @type {string} */ duration,
) {
  for (const user of rang)
    await post({ Event: 'ringing', Callerid: from, User: user, Id: `${id}-0` });
  if (answeredBy) {
    await post({ Event: 'incomingcall_started', Callerid: from, User: answeredBy, Id: `${id}-1` });
    await post({
      Event: 'incoming',
      Callerid: from,
      User: answeredBy,
      Finishtype: 'Ok',
      Transfer: 'False',
      Duration: duration,
      Id: `${id}-1`,
    });
    await post({
      Event: 'recording',
      FileUrls: [`https://pbx.example.com:5001/webapi/recording/${id}-1-1.mp3`],
      Callerid: from,
      User: answeredBy,
      Id: `${id}-1`,
    });
  } else
    await post({
      Event: 'incoming',
      Callerid: from,
      User: rang.at(-1),
      Finishtype: 'Missed',
      Transfer: 'False',
      Id: `${id}-0`,
    });
}

/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

await call('261203091500_11', '774852629', ['101'], '101', '04:12');
await call('261204143000_12', '603111222', ['800', '101', '102'], '102', '01:05');
await call('261205101000_13', '774852629', ['800', '101', '102'], null, '00:00');
await call('261205160500_14', '731555010', ['101'], '101', '00:48');
for (let i = 0; i < 200; i++) {
  await relay.pipeline.drain();
  if (!(await relay.store.listDeliveries({ state: 'due', limit: 1 })).length) break;
  await sleep(50);
}

// Ended calls keep their card a minute (src/agents/desk.ts): the picture shows the one ringing.
await sleep(61_000);

mkdirSync(OUT, { recursive: true });
const browser = await launchBrowser({ width: 1280, height: 900 });
try {
  const page = await browser.newPage();
  /** @param {string} name @param {boolean} [fullPage] */
  const shot = async (name, fullPage = false) => {
    await page.screenshot({
      path: /** @type {`${string}.png`} */ (join(OUT, `${name}.png`)),
      fullPage,
    });
    console.log(`wrote ${join(OUT, `${name}.png`)}`);
  };
  const made = await fetch(`${base}/api/agents/101/sign-in-link`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}` },
  });
  const { url } = /** @type {{ url: string }} */ (await made.json());
  await page.goto(`${base}/agent/welcome${new URL(url).search}`);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await page.waitForFunction(
    "document.getElementById('desk-status')?.textContent?.startsWith('Live')",
  );
  await post({ Event: 'ringing', Callerid: '774852629', User: '101', Id: '261206102000_15-0' });
  await page.waitForFunction("document.querySelector('.desk-card .desk-name')");
  await sleep(300);
  await shot('agent-ringing');
  // Alice answers; the card says so, and once the call ends My calls has it at the top.
  await post({
    Event: 'incomingcall_started',
    Callerid: '774852629',
    User: '101',
    Id: '261206102000_15-1',
  });
  await post({
    Event: 'incoming',
    Callerid: '774852629',
    User: '101',
    Finishtype: 'Ok',
    Transfer: 'False',
    Duration: '02:31',
    Id: '261206102000_15-1',
  });
  await page.waitForFunction(
    'document.querySelector(\'#my-calls tr[data-call="3cx/261206102000_15"]\')',
  );
  await sleep(300);
  const calls = await page.$('main');
  await calls?.screenshot({ path: join(OUT, 'agent-calls.png') });
  console.log(`wrote ${join(OUT, 'agent-calls.png')}`);
} finally {
  await browser.close();
  await relay.close();
  hubspot.close();
}
