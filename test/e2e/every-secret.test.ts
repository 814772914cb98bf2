// Every configured secret, sent through every error path of a real relay process, and looked for
// (as written, URL-encoded, base64, and as the PBX's Basic credentials) in everything the relay
// lets out: its log, the CLI's messages, admin API answers and console pages. The paths: CRMs that
// quote the credentials they received in errors and lose answers, webhooks that carry secrets in
// bodies, headers and URLs, clients that abort mid-body, tokens sent to the wrong source, a PBX
// that quotes its credentials when it refuses a recording, broken config files next to the
// secrets, and a PostgreSQL that cannot be reached.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { secretsOf } from '../../src/config/secrets.js';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import { FakePipedrive } from '../../src/targets/pipedrive/fake.js';
import { waitHealthy } from '../harness/relay-process.mjs';
import {
  ConsoleClient,
  freePort,
  MAIN,
  secretBearingCall,
  sourceToken,
  tempDir,
  TOKENS,
  writeRelayYaml,
} from '../support.js';

const HS_TOKEN = 'pat-eu1-every-secret-0001';
const PD_TOKEN = 'pd-every-secret-token-0002';
const PBX_USER = 'relay-pbx';
const PBX_PASSWORD = 'pbx-password-every-0003';
const METRICS_TOKEN = 'metrics-every-secret-0004';
const PG_PASSWORD = 'pg-password-every-0005';

/** Each secret in the forms a text could carry it. */
function forms(secrets: string[]): string[] {
  const out = new Set<string>();
  for (const s of [...secrets, `${PBX_USER}:${PBX_PASSWORD}`]) {
    out.add(s);
    out.add(encodeURIComponent(s));
    out.add(Buffer.from(s).toString('base64').replace(/=+$/, ''));
  }
  return [...out];
}

function expectClean(label: string, text: string, secrets: string[]): void {
  for (const s of forms(secrets)) expect(text, `${label} shows ${s}`).not.toContain(s);
}

const until = async (what: string, ok: () => boolean, ms = 15_000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe('every secret through every error path', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('leaves no trace in the log, the CLI, the API or the console', async () => {
    const hs = await new FakeHubspot(HS_TOKEN).start();
    const pd = await new FakePipedrive(PD_TOKEN).start();
    cleanup.push(
      () => hs.close(),
      () => pd.close(),
    );
    // A PBX that refuses recordings and quotes what it was sent.
    let pbxHits = 0;
    const pbx: Server = createServer((req, res) => {
      pbxHits++;
      res.writeHead(401, { 'content-type': 'text/plain' });
      res.end(`refused ${req.headers.authorization} for ${req.url}`);
    });
    await new Promise<void>((r) => pbx.listen(0, '127.0.0.1', r));
    cleanup.push(() => {
      pbx.closeAllConnections();
      pbx.close();
    });
    const pbxUrl = `http://127.0.0.1:${(pbx.address() as AddressInfo).port}`;

    const dir = tempDir();
    const port = await freePort();
    const file = writeRelayYaml(dir, {
      port,
      threecx:
        `    recordings:\n      allowHosts: ["${pbxUrl}"]\n` +
        `      basic: { user: ${PBX_USER}, password: ${PBX_PASSWORD} }\n`,
      more: `targets:
  - name: hubspot
    type: hubspot
    token: ${HS_TOKEN}
    baseUrl: ${hs.url}
    settleSec: 0
    searchLagSec: 0.3
  - name: pipedrive
    type: pipedrive
    token: ${PD_TOKEN}
    baseUrl: ${pd.url}
    settleSec: 0
metrics:
  token: ${METRICS_TOKEN}
`,
    });
    // Everything the relay can log.
    const yaml = readFileSync(file, 'utf8');
    writeFileSync(file, yaml.replace('level: warn', 'level: trace'));
    const secrets = secretsOf(loadConfig(file, {}));
    expect(secrets).toEqual(
      expect.arrayContaining([
        TOKENS.admin,
        HS_TOKEN,
        PD_TOKEN,
        PBX_PASSWORD,
        METRICS_TOKEN,
        sourceToken('3cx'),
        sourceToken('callerdesk'),
      ]),
    );

    const relay: ChildProcess = spawn(process.execPath, [MAIN, 'start', '--config', file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    relay.stdout!.on('data', (b: Buffer) => (log += b.toString()));
    relay.stderr!.on('data', (b: Buffer) => (log += b.toString()));
    cleanup.push(() => {
      relay.kill('SIGKILL');
    });
    await waitHealthy(port, { child: relay, timeoutMs: 10_000 });
    const base = `http://127.0.0.1:${port}`;

    // CRMs that quote the credentials in their errors and lose an answer, then take the call.
    const echo = `Bad token ${HS_TOKEN} (${PD_TOKEN})`;
    for (const status of [500, 429])
      hs.faults.push({
        match: 'POST /crm/v3/objects/calls',
        fault: { status, body: { message: echo } },
      });
    hs.faults.push({ match: 'POST /crm/v3/objects/calls', fault: { resetAfterProcessing: true } });
    pd.faults.push(
      {
        match: 'POST /api/v1/callLogs',
        fault: { status: 500, body: { success: false, error: echo } },
      },
      { match: 'POST /api/v1/callLogs', fault: { resetAfterProcessing: true } },
    );

    // Webhooks that carry secrets in bodies, headers and URLs, with a recording on the PBX.
    const hook = `${base}/hooks/3cx/${sourceToken('3cx')}`;
    const id = '260101120000_77';
    for (const body of [
      ...secretBearingCall(id, HS_TOKEN),
      {
        Event: 'recording',
        FileUrls: [`${pbxUrl}/rec/a.wav?key=${METRICS_TOKEN}`],
        User: '102',
        Id: `${id}-1`,
      },
      { nonsense: sourceToken('3cx'), more: PD_TOKEN },
    ]) {
      const res = await fetch(`${hook}?token=${sourceToken('3cx')}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': PBX_PASSWORD },
        body: JSON.stringify(body),
      });
      expectClean('a webhook answer', await res.text(), secrets);
    }
    // Tokens in the wrong places: another source's token, the admin token as a source token.
    for (const url of [
      `${base}/hooks/callerdesk/${sourceToken('3cx')}`,
      `${base}/hooks/3cx/${TOKENS.admin}`,
      `${base}/hooks/3cx?token=${METRICS_TOKEN}`,
      `${base}/hooks/${HS_TOKEN}/${sourceToken('3cx')}`,
      `${base}/hooks/3cx/${sourceToken('3cx')}/`,
      `${base}/api/calls?token=${TOKENS.admin}`,
      `${base}/metrics?token=${METRICS_TOKEN}`,
    ]) {
      const res = await fetch(url, { method: 'POST', body: '{}' });
      expect(res.ok, url).toBe(false);
      expectClean(`the answer to ${url}`, await res.text(), secrets);
    }
    // Clients that abort mid-body, with the token in the path.
    for (let i = 0; i < 3; i++)
      await new Promise<void>((resolve) => {
        const s = connect(port, '127.0.0.1', () => {
          s.write(
            `POST /hooks/3cx/${sourceToken('3cx')}?token=${PD_TOKEN} HTTP/1.1\r\nHost: x\r\n` +
              `Authorization: Bearer ${HS_TOKEN}\r\nContent-Length: 9999\r\n\r\n{"a":`,
          );
          setTimeout(() => {
            s.destroy();
            resolve();
          }, 50);
        });
      });

    // Every path ran: both CRMs answered with their errors, the PBX refused the recording.
    await until('the CRM faults and the recording', () => {
      return hs.faults.length === 0 && pd.faults.length === 0 && pbxHits > 0;
    });
    // Then CRMs that refuse a call for good, quoting the credentials: dead letters.
    hs.faults.push({
      match: 'POST /crm/v3/objects/calls',
      fault: { status: 400, body: { message: echo } },
    });
    pd.faults.push({
      match: 'POST /api/v1/callLogs',
      fault: { status: 400, body: { success: false, error: echo } },
    });
    for (const body of secretBearingCall('260101120000_78', PD_TOKEN))
      await fetch(hook, { method: 'POST', body: JSON.stringify(body) });
    await until('the refusals', () => hs.faults.length === 0 && pd.faults.length === 0);
    await until('the dead letters logged', () => (log.match(/dead letter/g) ?? []).length >= 2);

    // The API and the console, after all that.
    const auth = { authorization: `Bearer ${TOKENS.admin}` };
    for (const path of [
      '/api/calls',
      `/api/calls/${id}`,
      `/api/calls/${id}/deliveries`,
      '/api/inbox',
      '/api/deliveries',
      '/api/stats',
    ]) {
      const res = await fetch(`${base}${path}`, { headers: auth });
      expect(res.status, path).toBe(200);
      expectClean(path, await res.text(), secrets);
    }
    const metrics = await fetch(`${base}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    expectClean('/metrics', await metrics.text(), secrets);
    const client = new ConsoleClient(base);
    expect((await client.post('/console/sign-in', { token: TOKENS.admin })).status).toBe(303);
    for (const path of [
      '/console',
      `/console/calls/3cx/${id}`,
      '/console/failures',
      '/console/setup',
    ])
      expectClean(path, await (await client.request(path)).text(), secrets);

    relay.kill('SIGTERM');
    await new Promise((r) => relay.once('exit', r));
    // The paths above were logged (so the log was there to leak), and nothing secret is in it.
    expect(log).toContain('refused a webhook');
    expect(log).toMatch(/pipedrive.*(400|500)/);
    expectClean('the log', log, secrets);

    // Config errors next to the secrets, and a PostgreSQL that cannot be reached.
    const cli = (config: string): string => {
      const r = spawnSync(process.execPath, [MAIN, 'check', '--config', config], {
        encoding: 'utf8',
      });
      expect(r.status, r.stdout + r.stderr).not.toBe(0);
      return r.stdout + r.stderr;
    };
    const broken = join(dir, 'broken.yaml');
    const good = readFileSync(file, 'utf8');
    for (const variant of [
      // A quote left open on the token's line.
      good.replace(`token: ${HS_TOKEN}`, `token: "${HS_TOKEN}`),
      // A misspelt key beside the token.
      good.replace(`token: ${PD_TOKEN}`, `tokne: ${PD_TOKEN}`),
      // A token where a number goes.
      good.replace('settleSec: 0', `settleSec: ${HS_TOKEN}`),
      // A store URL that is not one.
      good.replace('sqlite: ./relay.db', `postgres: mysql://relay:${PG_PASSWORD}@db/relay`),
    ]) {
      writeFileSync(broken, variant);
      expectClean('a config error', cli(broken), [...secrets, PG_PASSWORD]);
    }
    const closed = await freePort();
    writeFileSync(
      broken,
      good.replace(
        'sqlite: ./relay.db',
        `postgres: postgres://relay:${PG_PASSWORD}@127.0.0.1:${closed}/relay`,
      ),
    );
    const pg = spawnSync(process.execPath, [MAIN, 'start', '--config', broken], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(pg.status).not.toBe(0);
    expect(pg.stdout + pg.stderr).toMatch(/ECONNREFUSED|connect/);
    expectClean('the PostgreSQL error', pg.stdout + pg.stderr, [...secrets, PG_PASSWORD]);
  }, 90_000);
});
