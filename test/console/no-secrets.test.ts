// No configured secret leaves through the console: every page, fragment, live stream, flash
// message and error of the console, after webhooks that carry secrets in their bodies, headers
// and recording URLs, a CRM that echoes its token in errors and in a failed connection test. The
// one answer that shows a secret on purpose (a source's webhook URL, revealed) is checked apart.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { secretsOf } from '../../src/config/secrets.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import {
  ConsoleClient,
  settleDeliveries,
  sourceToken,
  tempDir,
  TOKENS,
  writeRelayYaml,
  secretBearingCall,
} from '../support.js';

const HS_TOKEN = 'pat-eu1-console-never-shown-07';
const PBX_BEARER = 'pbx-bearer-console-never-shown';
const METRICS_TOKEN = 'metrics-token-never-shown-1';

describe('secrets in the console', () => {
  let relay: Relay | undefined;
  let hs: FakeHubspot | undefined;
  let pbx: Server | undefined;
  afterEach(async () => {
    await relay?.close();
    await hs?.close();
    pbx?.closeAllConnections();
    pbx?.close();
  });

  it('no page, fragment, stream, message or error shows one', async () => {
    hs = await new FakeHubspot(HS_TOKEN).start();
    pbx = createServer(
      (_req, res) => void res.writeHead(200, { 'content-type': 'audio/wav' }).end('RIFF'),
    );
    await new Promise<void>((r) => pbx!.listen(0, '127.0.0.1', r));
    const pbxHost = `http://127.0.0.1:${(pbx.address() as AddressInfo).port}`;
    const file = writeRelayYaml(tempDir(), {
      threecx: `    recordings:\n      allowHosts: ["${pbxHost}"]\n      bearer: ${PBX_BEARER}\n`,
      more: `targets:
  - name: hubspot
    type: hubspot
    token: ${HS_TOKEN}
    baseUrl: ${hs.url}
    settleSec: 0
metrics:
  token: ${METRICS_TOKEN}
`,
    });
    const cfg = loadConfig(file, {});
    const secrets = secretsOf(cfg);
    expect(secrets).toEqual(
      expect.arrayContaining([
        TOKENS.admin,
        HS_TOKEN,
        PBX_BEARER,
        METRICS_TOKEN,
        sourceToken('3cx'),
      ]),
    );
    relay = await startRelay(cfg, undefined, {
      delivery: { pollMs: 20, backoff: { baseMs: 40, maxMs: 80 } },
    });
    const base = `http://127.0.0.1:${relay.port}`;
    // The CRM refuses every call and quotes the secrets back (every time: a later event re-arms
    // a dead delivery, so one refusal could be followed by a create that works).
    for (let i = 0; i < 50; i++)
      hs.faults.push({
        match: 'POST /crm/v3/objects/calls',
        fault: { status: 400, body: { message: `Bad token ${HS_TOKEN} for ${PBX_BEARER}` } },
      });
    // A misconfigured PBX template that puts secrets in its payloads, headers and URLs.
    const id = '260101120000_9';
    const hook = `${base}/hooks/3cx/${sourceToken('3cx')}`;
    for (const body of [
      ...secretBearingCall(id, HS_TOKEN),
      {
        Event: 'recording',
        FileUrls: [`${pbxHost}/rec/a.wav?key=${METRICS_TOKEN}`],
        User: '102',
        Id: `${id}-1`,
      },
      {
        event: 'ai',
        id: `${id}-1`,
        summary: `Caller read out ${PBX_BEARER}`,
        sentiment_score: '2',
      },
      { nonsense: sourceToken('3cx'), more: TOKENS.admin },
      // A call whose agent, as the PBX names it, is a secret: it shows in the call list's rows.
      {
        event: 'incoming',
        id: '260101120000_10-1',
        callerid: '420774852630',
        user: PBX_BEARER,
        finishtype: 'Ok',
        transfer: 'False',
        did: '',
      },
    ])
      await fetch(`${hook}?token=${sourceToken('3cx')}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': HS_TOKEN },
        body: JSON.stringify(body),
      });
    await settleDeliveries(relay);
    expect((await relay.store.listDeliveries({ state: 'dead', limit: 5 })).length).toBeGreaterThan(
      0,
    );

    const client = new ConsoleClient(base);
    const signIn = await client.post('/console/sign-in', { token: TOKENS.admin });
    expect(signIn.status).toBe(303);
    const pages: [string, string][] = [];
    const read = async (label: string, res: Response | Promise<Response>): Promise<string> => {
      const text = await (await res).text();
      pages.push([label, text]);
      return text;
    };
    const calls = await read('calls', client.request('/console'));
    client.csrf = /<meta name="csrf-token" content="([^"]+)"/.exec(calls)![1]!;
    const [dead] = await relay.store.listDeliveries({ state: 'dead', limit: 1 });
    const [unmapped] = await relay.store.listInbox({ state: 'unmapped', limit: 1 });
    for (const path of [
      '/console/calls/rows',
      `/console?number=420774&agent=102`,
      `/console/calls/3cx/${id}`,
      `/console/calls/3cx/${id}/recordings/0`,
      `/console/calls/3cx/${id}/recordings/7`,
      '/console/failures',
      '/console/failures/confirm?action=retry-dead',
      '/console/failures/confirm?action=replay-unmapped',
      '/console/setup',
      '/console/no-such-page',
      `/console/calls/3cx/${TOKENS.admin}`,
      `/console/calls/3cx/${TOKENS.admin}/recordings/0`,
      '/console?direction=sideways',
    ])
      await read(path, client.request(path));
    expect(pages.find(([p]) => p === `/console/calls/3cx/${id}`)![1]).toContain('[redacted]');

    // The live stream, as far as its first events.
    const events = await client.request('/console/events');
    const reader = events.body!.getReader();
    await fetch(hook, {
      method: 'POST',
      body: JSON.stringify({
        event: 'ringing',
        id: '260101120000_8-0',
        user: '800',
        did: TOKENS.admin,
      }),
    });
    let stream = '';
    while (!stream.includes('event: changed')) {
      const { done, value } = await reader.read();
      if (done) break;
      stream += new TextDecoder().decode(value);
    }
    await reader.cancel();
    expect(stream).toContain('event: changed');
    pages.push(['events', stream]);

    // Every action, and the page its message lands on.
    hs.failing = { status: 401, body: { message: `token ${HS_TOKEN} was revoked` } };
    for (const [path, back] of [
      ['/console/setup/targets/hubspot/check', '/console/setup'],
      [`/console/deliveries/${dead!.id}/retry`, `/console/calls/3cx/${id}`],
      [`/console/inbox/${unmapped!.id}/replay`, '/console/failures'],
      ['/console/failures/replay-unmapped', '/console/failures'],
      ['/console/adapters/reload', '/console/failures'],
      ['/console/failures/retry-dead', '/console/failures'],
    ] as const) {
      const res = await client.post(path);
      expect(res.status, path).toBe(303);
      expect(res.headers.get('location')).toBe(back);
      const landed = await read(`${path} -> ${back}`, client.request(back));
      expect(landed, path).toMatch(/class="notice/);
    }
    expect(pages.at(-6)![1]).toContain('hubspot failed: ');
    expect(pages.at(-6)![1]).toContain('token [redacted] was revoked');
    // Refused ones, as pages and as JSON.
    await read('csrf', client.post('/console/failures/retry-dead', { _csrf: 'forged' }));
    await read(
      'reveal refused',
      client.request('/console/setup/sources/3cx/reveal', {
        method: 'POST',
        headers: { accept: 'application/json' },
      }),
    );
    await read(
      'reveal of no source',
      client.request(`/console/setup/sources/${HS_TOKEN}/reveal`, {
        method: 'POST',
        headers: { accept: 'application/json', 'x-csrf-token': client.csrf },
      }),
    );
    await read('sign-in page', new ConsoleClient(base).request('/console/sign-in'));
    await read(
      'wrong token',
      new ConsoleClient(base).post('/console/sign-in', { token: HS_TOKEN }),
    );

    let redacted = 0;
    for (const [label, text] of pages) {
      for (const s of secrets) expect(text, `${label} shows a secret`).not.toContain(s);
      if (text.includes('[redacted]')) redacted++;
    }
    // The secrets were there to leak: the pages that carried them say [redacted] instead.
    expect(redacted).toBeGreaterThanOrEqual(6);

    // The one answer made to show a secret: the webhook URL, on an explicit request.
    const reveal = await client.request('/console/setup/sources/3cx/reveal', {
      method: 'POST',
      headers: { accept: 'application/json', 'x-csrf-token': client.csrf },
    });
    expect(await reveal.json()).toEqual({ source: '3cx', url: `${hook}` });
  });
});
