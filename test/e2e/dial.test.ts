// Click-to-call: POST /api/dial asks the fake 3CX exactly as its WebAPI documents (first = the
// extension, second = the number), keeps the PBX's answer as the call's origin, and the recorded
// makecall flow, carrying the chid the PBX gave, folds into a call that says who placed it, on
// SQLite and on PostgreSQL. A PBX that refuses or is down is a 502 that says why, without its key.
// Toll fraud (issue 20): every path (API, CLI, console, dial links) dials only the kinds of number
// and the countries dial: allows, within each link's and each agent's calls a minute; a dial link
// places nothing on a GET, only from its own page's confirmed, same-origin POST.

import { execFile } from 'node:child_process';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { confirmToken } from '../../src/dial/links.js';
import { dialSignature } from '../../src/lib/links.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { callBody } from '../../src/targets/kit/summary.js';
import { FakePbx } from '../fakes/pbx.js';
import {
  ConsoleClient,
  freshPostgresDatabase,
  goldenCases,
  MAIN,
  sendFlowRequest,
  tempDir,
  TOKENS,
  type SourceSettingsMap,
  writeRelayYaml,
} from '../support.js';

const KEY = 'webapi-key-secret-0123';
// The chid the recorded flow's webhooks carry for the answered call.
const FLOW_CHID = '00000000-01dc-27fc-0bdb-88fd0000002f';

/** `callrelay ARGS`, not spawnSync: the relay under test answers from this process's loop. */
const cli = (args: string[]) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, [MAIN, ...args], { encoding: 'utf8' }, (err, stdout, stderr) =>
      resolve({ code: err ? 1 : 0, stdout: stdout.trim(), stderr }),
    ),
  );

/** `callrelay dial` for extension 105 against the relay on `port`. */
const dialCli = (file: string, port: number, number: string) =>
  cli(['dial', '--config', file, '--agent', '105', '--to', `http://127.0.0.1:${port}`, number]);

describe.each(['sqlite', 'postgres'] as const)('click-to-call (%s)', (backend) => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function setup(
    more = '',
    sources?: SourceSettingsMap,
  ): Promise<{
    relay: Relay;
    pbx: FakePbx;
    file: string;
    dial: (b: object) => Promise<Response>;
  }> {
    const pbx = await new FakePbx().start();
    pbx.makecallKey = KEY;
    const file = writeRelayYaml(tempDir(), {
      threecx: `    pbx:\n      url: ${pbx.url}\n      key: ${KEY}\n      timeoutSec: 2\n`,
      more,
      sources,
    });
    const cfg = loadConfig(file, {});
    const store =
      backend === 'postgres'
        ? {
            postgres: await freshPostgresDatabase(inject('pgUrl')),
            maxEventsPerCall: cfg.store.maxEventsPerCall,
            keepRequestsDays: 90,
          }
        : cfg.store;
    const relay = await startRelay({ ...cfg, store });
    cleanup.push(
      () => pbx.close(),
      () => relay.close(),
    );
    const dial = (body: object) =>
      fetch(`http://127.0.0.1:${relay.port}/api/dial`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKENS.admin}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    return { relay, pbx, file, dial };
  }

  it('places the call through the PBX and the call it makes says who placed it', async () => {
    const { relay, pbx, dial } = await setup();
    pbx.makecallAnswer = { status: 200, body: JSON.stringify({ chid: FLOW_CHID }) };
    // A national number: the source's default country (CZ) makes it whole.
    const res = await dial({ source: '3cx', agent: '105', number: '774 852 629', by: 'jana' });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ ok: true, chid: FLOW_CHID, number: '+420774852629' });
    expect(pbx.placed).toEqual([
      { first: '105', second: '420774852629', query: 'first=105&second=420774852629' },
    ]);

    // The call's own webhooks, as 3CX sends them after a makecall (the recorded flow).
    const flow = goldenCases().find(
      (c) => c.flow.name === '3cx-v3-makecall-missed-then-answered-with-ai',
    )!.flow;
    for (const r of flow.requests) await sendFlowRequest(relay.port, '3cx', r);
    await relay.pipeline.drain();
    const [answered] = await relay.store.getCalls('250917195359_47', '3cx');
    expect(answered!.record).toMatchObject({
      channelId: FLOW_CHID,
      outcome: 'answered',
      originatedBy: 'api:jana',
    });
    // Its CRM note says so (the body every CRM target shares).
    expect(callBody(answered!.record, [])).toContain(
      '<b>Placed:</b> from callrelay (click-to-call, api:jana)',
    );
    // The earlier call of the flow had another chid: nobody placed it through the relay.
    const [missed] = await relay.store.getCalls('250917194513_46', '3cx');
    expect(missed!.record.originatedBy).toBeNull();
  });

  it("the console's call page calls the caller back", async () => {
    const { relay, pbx } = await setup();
    const flow = goldenCases().find((c) => c.flow.name === '3cx-v1-incoming-answered')!.flow;
    const { callId, agent } = flow.expect!.calls[0] as { callId: string; agent: string };
    for (const r of flow.requests) await sendFlowRequest(relay.port, '3cx', r);
    await relay.pipeline.drain();
    const client = new ConsoleClient(`http://127.0.0.1:${relay.port}`);
    expect((await client.post('/console/sign-in', { token: TOKENS.admin })).status).toBe(303);
    const page = await (await client.request(`/console/calls/3cx/${callId}`)).text();
    client.csrf = /<meta name="csrf-token" content="([^"]+)"/.exec(page)![1]!;
    expect(page).toContain(`action="/console/calls/3cx/${callId}/dial"`);
    expect(page).toContain(`value="${agent}"`);
    const res = await client.post(`/console/calls/3cx/${callId}/dial`, { agent });
    expect(res.status).toBe(303);
    expect(pbx.placed.map((p) => [p.first, p.second])).toEqual([[agent, '420774852629']]);
    const after = await (await client.request(res.headers.get('location')!)).text();
    expect(after).toContain(`Calling +420774852629: pick up at extension ${agent}.`);
  });

  it('callrelay dial places it through the running relay', async () => {
    const { relay, pbx, file } = await setup();
    const out = await dialCli(file, relay.port, '+420 774 852 629');
    expect(out.stderr).toBe('');
    expect(out.stdout).toMatch(/^3cx: ringing extension 105, then \+420774852629 \(chid /);
    expect(pbx.placed.map((p) => p.second)).toEqual(['420774852629']);
  });

  it('answers what went wrong: a bad request 400, a PBX that refuses or is down 502', async () => {
    const { pbx, dial } = await setup();
    const error = async (r: Response) => [r.status, ((await r.json()) as { error: object }).error];
    expect(await error(await dial({ source: '3cx', agent: '105', number: 'call me' }))).toEqual([
      400,
      {
        code: 'RELAY_ERR_BAD_REQUEST',
        message: '"call me" is not a phone number (numbers without a country code are read as CZ)',
      },
    ]);
    expect(
      await error(await dial({ source: 'callerdesk', agent: '1', number: '+420774852629' })),
    ).toMatchObject([400, { message: expect.stringContaining('has no pbx:') }]);
    expect(await error(await dial({ source: '3cx', number: '+420774852629' }))).toMatchObject([
      400,
      { message: '"agent" is required (a string)' },
    ]);
    expect(pbx.placed).toEqual([]);

    pbx.makecallKey = 'another-key';
    const refused = await dial({ source: '3cx', agent: '105', number: '+420774852629' });
    const text = await refused.text();
    expect(refused.status).toBe(502);
    expect(text).toContain('RELAY_ERR_PBX_FAILED');
    expect(text).toContain('the PBX answered 401: Invalid key');
    expect(text).not.toContain(KEY);

    await pbx.close();
    const down = await dial({ source: '3cx', agent: '105', number: '+420774852629' });
    expect(await error(down)).toMatchObject([
      502,
      { code: 'RELAY_ERR_PBX_FAILED', message: expect.stringMatching(/^the PBX did not answer/) },
    ]);
    // Without the admin token: nobody places calls.
    const anon = await fetch(down.url, { method: 'POST', body: '{}' });
    expect(anon.status).toBe(401);
  });

  it('refuses premium-rate, shared-cost and foreign numbers before asking the PBX', async () => {
    const { relay, pbx, file, dial } = await setup();
    const error = async (r: Response) => [r.status, ((await r.json()) as { error: object }).error];
    const refused = (message: unknown) => [403, { code: 'RELAY_ERR_DIAL_REFUSED', message }];
    const at = (number: string) => dial({ source: '3cx', agent: '105', number });
    expect(await error(await at('+420906123456'))).toEqual(
      refused(
        '+420906123456 is a premium-rate number; click-to-call places only fixed-line, ' +
          'mobile and toll-free numbers (dial.allowTypes)',
      ),
    );
    expect(await error(await at('810 123 456'))).toEqual(
      refused(expect.stringMatching(/^\+420810123456 is a shared-cost number;/)),
    );
    // Only the source's country unless dial.allowCountries says more.
    expect(await error(await at('+43 1 5131234'))).toEqual(
      refused(
        '+4315131234 is in AT; click-to-call dials only numbers in CZ, the defaultCountry of ' +
          'source 3cx (dial.allowCountries widens it)',
      ),
    );
    // A satellite number is in no country at all (a classic of toll fraud).
    expect(await error(await at('+881612345678'))).toEqual(
      refused(expect.stringContaining('in no country')),
    );
    // callrelay dial goes through the same API, so the same rules.
    const viaCli = await dialCli(file, relay.port, '+420906123456');
    expect(viaCli.code).toBe(1);
    expect(viaCli.stderr).toContain('403 +420906123456 is a premium-rate number');
    expect(pbx.placed).toEqual([]);
    const metric = await dialMetric(relay.port);
    expect(metric).toContain('callrelay_dial_total{path="api",result="refused",reason="type"} 3');
    expect(metric).toContain(
      'callrelay_dial_total{path="api",result="refused",reason="country"} 2',
    );
  });

  it('dial.allowCountries and dial.allowTypes widen what it dials', async () => {
    const { pbx, dial } = await setup(
      'dial:\n  allowCountries: [CZ, at]\n  allowTypes: [mobile, fixed-line, shared-cost]\n',
    );
    const at = (number: string) => dial({ source: '3cx', agent: '105', number });
    expect((await at('+43 1 5131234')).status).toBe(202);
    expect((await at('810 123 456')).status).toBe(202);
    expect(await (await at('+49 30 901820')).json()).toEqual({
      error: {
        code: 'RELAY_ERR_DIAL_REFUSED',
        message: '+4930901820 is in DE; dial.allowCountries is CZ, AT',
      },
    });
    const free = await at('800 123 456');
    expect(((await free.json()) as { error: { message: string } }).error.message).toBe(
      '+420800123456 is a toll-free number; click-to-call places only mobile, fixed-line and ' +
        'shared-cost numbers (dial.allowTypes)',
    );
    expect(pbx.placed.map((p) => p.second)).toEqual(['4315131234', '420810123456']);
  });

  it('a source without defaultCountry dials nothing until dial.allowCountries is set', async () => {
    const { pbx, dial } = await setup('', { '3cx': { defaultCountry: '' } });
    const res = await dial({ source: '3cx', agent: '105', number: '+420774852629' });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({
      error: {
        code: 'RELAY_ERR_DIAL_REFUSED',
        message:
          'click-to-call does not know which countries it may call: source 3cx has no ' +
          'defaultCountry; set dial.allowCountries in relay.yaml',
      },
    });
    expect(pbx.placed).toEqual([]);
  });

  it("the console's call-back button refuses a premium-rate caller", async () => {
    const { relay, pbx } = await setup();
    const flow = goldenCases().find((c) => c.flow.name === '3cx-v1-incoming-answered')!.flow;
    const { callId, agent } = flow.expect!.calls[0] as { callId: string; agent: string };
    // The same call, from a premium-rate number.
    const premium = (t: string | undefined) => t?.replaceAll('420774852629', '420906123456');
    for (const r of flow.requests)
      await sendFlowRequest(relay.port, '3cx', {
        ...r,
        body: premium(r.body),
        query: premium(r.query),
      });
    await relay.pipeline.drain();
    const client = new ConsoleClient(`http://127.0.0.1:${relay.port}`);
    expect((await client.post('/console/sign-in', { token: TOKENS.admin })).status).toBe(303);
    const page = await (await client.request(`/console/calls/3cx/${callId}`)).text();
    expect(page).toContain(`action="/console/calls/3cx/${callId}/dial"`);
    client.csrf = /<meta name="csrf-token" content="([^"]+)"/.exec(page)![1]!;
    const res = await client.post(`/console/calls/3cx/${callId}/dial`, { agent });
    expect(res.status).toBe(403);
    const text = await res.text();
    expect(text).toContain('+420906123456 is a premium-rate number');
    expect(text).toContain('RELAY_ERR_DIAL_REFUSED');
    expect(pbx.placed).toEqual([]);
    expect(await dialMetric(relay.port)).toContain(
      'callrelay_dial_total{path="console",result="refused",reason="type"} 1',
    );
  });
});

/** The click-to-call lines of the relay's /metrics. */
async function dialMetric(port: number): Promise<string> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('callrelay_dial_total'))
    .join('\n');
}

describe('click-to-call links for CRMs', () => {
  const SECRET = 'link-secret-0123456789-0123456789-abcdef';
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function setup(more = ''): Promise<{
    relay: Relay;
    pbx: FakePbx;
    file: string;
    base: string;
    /** A link of this relay for `agent` until `until` (seconds), without its number. */
    link: (agent: string, until?: number) => string;
  }> {
    const pbx = await new FakePbx().start();
    pbx.makecallKey = KEY;
    const file = writeRelayYaml(tempDir(), {
      server: `  publicUrl: https://relay.example.test\n  urlSecret: ${SECRET}\n`,
      threecx: `    pbx:\n      url: ${pbx.url}\n      key: ${KEY}\n`,
      more,
    });
    const relay = await startRelay(loadConfig(file, {}));
    cleanup.push(
      () => pbx.close(),
      () => relay.close(),
    );
    const base = `http://127.0.0.1:${relay.port}`;
    const link = (agent: string, until = Math.floor(Date.now() / 1000) + 3600) =>
      `${base}/dial?source=3cx&agent=${agent}&until=${until}&sig=${dialSignature(SECRET, '3cx', agent, until)}&number=`;
    return { relay, pbx, file, base, link };
  }

  /** The confirmation page's form fields. */
  const formOf = (page: string): Record<string, string> =>
    Object.fromEntries(
      [...page.matchAll(/<input type="hidden" name="(\w+)" value="([^"]*)"/g)].map((m) => [
        m[1]!,
        m[2]!,
      ]),
    );

  /** Press Call: the form posted as a browser on the page's own origin does. */
  const post = (base: string, form: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(`${base}/dial`, {
      method: 'POST',
      // An empty value: the header left out.
      headers: Object.fromEntries(
        Object.entries({ origin: base, 'sec-fetch-site': 'same-origin', ...headers }).filter(
          ([, v]) => v,
        ),
      ),
      body: new URLSearchParams(form),
    });

  const confirmAndCall = async (base: string, url: string) =>
    post(base, formOf(await (await fetch(url)).text()));

  it("the attacker's link places nothing: a GET only shows a page, a premium number is refused", async () => {
    const { pbx, file, base, relay } = await setup();
    // Made as the attacker's report made it: no --days.
    const made = await cli(['dial-link', '--config', file, '--agent', '105']);
    expect(made.stdout).toMatch(
      /^https:\/\/relay\.example\.test\/dial\?source=3cx&agent=105&until=\d+&sig=[\w-]+&number=$/,
    );
    // It expires by default, in dial.linkTtlDays (30).
    const until = Number(/until=(\d+)/.exec(made.stdout)![1]);
    expect(until - Date.now() / 1000).toBeGreaterThan(30 * 86400 - 120);
    expect(until - Date.now() / 1000).toBeLessThan(30 * 86400 + 120);
    const local = made.stdout.replace('https://relay.example.test', base);

    const evil = { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' };
    const res = await fetch(`${local}%2B420906123456`, { headers: evil });
    expect(res.status).toBe(403);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const text = await res.text();
    expect(text).toContain(
      '+420906123456 is a premium-rate number; click-to-call places only fixed-line, mobile and ' +
        'toll-free numbers (dial.allowTypes)',
    );
    expect(text).toContain('RELAY_ERR_DIAL_REFUSED');
    // Posting it straight away, as a form on the attacker's page would: refused too.
    const forged = await post(
      base,
      { source: '3cx', agent: '105', until: String(until), sig: /sig=([\w-]+)/.exec(local)![1]! },
      evil,
    );
    expect(forged.status).toBe(403);

    // A number a person has, opened by a link previewer (GET, HEAD): a page, and still no call.
    const preview = await fetch(`${local}%2B420774852629`, { headers: evil });
    expect(preview.status).toBe(200);
    const page = await preview.text();
    expect(page).toContain('<h1>Call +420 774 852 629?</h1>');
    expect(page).toContain('extension <b>105</b>');
    expect(page).toContain('<button type="submit" autofocus>Call</button>');
    expect(page).toMatch(/<form method="post" action="dial">/);
    expect((await fetch(`${local}%2B420774852629`, { method: 'HEAD' })).status).toBe(200);
    for (const r of [res, preview]) {
      expect(r.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(r.headers.get('content-security-policy')).toContain("default-src 'none'");
      expect(r.headers.get('x-frame-options')).toBe('DENY');
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('referrer-policy')).toBe('no-referrer');
      expect(r.headers.get('cache-control')).toBe('no-store');
    }
    expect(pbx.requests.filter((r) => r.path.includes('makecall'))).toEqual([]);
    expect(await dialMetric(relay.port)).toContain(
      'callrelay_dial_total{path="link",result="refused",reason="type"} 1',
    );
  });

  it("the page's Call button places the call", async () => {
    const { relay, pbx, base, link } = await setup();
    const page = await (await fetch(`${link('105')}774%20852%20629`)).text();
    const form = formOf(page);
    expect(form.number).toBe('+420774852629');
    expect(pbx.placed).toEqual([]);
    const res = await post(base, form);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('Calling <b>+420774852629</b>: pick up at extension 105.');
    expect(pbx.placed.map((p) => [p.first, p.second])).toEqual([['105', '420774852629']]);
    const [origin] = await relay.store.listInbox({ limit: 1 });
    expect(origin!.query).toContain('originatedby=link%3A105');
    expect(await dialMetric(relay.port)).toContain(
      'callrelay_dial_total{path="link",result="placed",reason="none"} 1',
    );
  });

  it('refuses a post without the page’s token, with another number, or from elsewhere', async () => {
    const { relay, pbx, base, link } = await setup();
    const form = formOf(await (await fetch(`${link('105')}%2B420774852629`)).text());
    const refused = async (r: Response, what: RegExp) => {
      expect(r.status).toBe(403);
      expect(r.headers.get('content-type')).toMatch(/^text\/html/);
      const text = await r.text();
      expect(text).toContain('RELAY_ERR_CSRF');
      expect(text).toMatch(what);
    };
    const { token: _token, ...noToken } = form;
    await refused(await post(base, noToken), /not confirmed on its own page/);
    await refused(await post(base, { ...form, token: 'x'.repeat(43) }), /not confirmed/);
    // The token is for the number the page showed.
    await refused(await post(base, { ...form, number: '+420774852620' }), /not confirmed/);
    await refused(
      await post(base, { ...form, exp: String(Number(form.exp) + 60) }),
      /not confirmed/,
    );
    // The right form, posted from another site's page (or by a script that says nothing).
    await refused(
      await post(base, form, { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }),
      /cross-site/,
    );
    await refused(
      await fetch(`${base}/dial`, { method: 'POST', body: new URLSearchParams(form) }),
      /does not say where it came from/,
    );
    await refused(
      await post(base, form, { origin: 'https://evil.example', 'sec-fetch-site': '' }),
      /evil\.example/,
    );
    expect(pbx.placed).toEqual([]);
    expect(await dialMetric(relay.port)).toContain(
      'callrelay_dial_total{path="link",result="refused",reason="csrf"} 7',
    );
  });

  it('refuses expired, never-expiring and altered links', async () => {
    const { pbx, base, link, file } = await setup();
    const page = async (url: string) => {
      const r = await fetch(url);
      return [r.status, await r.text()] as const;
    };
    const [status, expired] = await page(
      `${link('105', Math.floor(Date.now() / 1000) - 1)}%2B420774852629`,
    );
    expect(status).toBe(403);
    expect(expired).toContain('RELAY_ERR_LINK_EXPIRED');
    expect(expired).toContain('ask for a new one');
    // Made before links expired by default (until=0): refused, however it is signed.
    const [, forever] = await page(`${link('105', 0)}%2B420774852629`);
    expect(forever).toContain('this link never expires, which click-to-call no longer accepts');
    const [altered, text] = await page(
      `${link('105').replace('agent=105', 'agent=106')}%2B420774852629`,
    );
    expect(altered).toBe(403);
    expect(text).toContain('RELAY_ERR_LINK_INVALID');
    // A page's confirmation still in time, but its link expired since: refused.
    const until = Math.floor(Date.now() / 1000) - 1;
    const expiredLink = {
      source: '3cx',
      agent: '105',
      until,
      sig: dialSignature(SECRET, '3cx', '105', until),
    };
    const late = await post(base, {
      ...expiredLink,
      until: String(until),
      number: '+420774852629',
      ...stringValues(confirmToken(SECRET, expiredLink, '+420774852629')),
    });
    expect(late.status).toBe(403);
    expect(await late.text()).toContain('RELAY_ERR_LINK_EXPIRED');
    // No link that never expires can be made any more.
    const none = await cli(['dial-link', '--config', file, '--agent', '105', '--days', '0']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('--days takes a number of days above 0');
    expect(pbx.placed).toEqual([]);
  });

  it("limits each link's and each agent's calls a minute, across the link and the API", async () => {
    const { relay, pbx, base, link } = await setup(
      // A use comes back after 60 s (link) and 30 s (agent): far beyond the test's run.
      'dial:\n  perLinkPerMinute: 1\n  perAgentPerMinute: 2\n',
    );
    const first = link('105');
    expect((await confirmAndCall(base, `${first}774852621`)).status).toBe(200);
    const limited = await confirmAndCall(base, `${first}774852623`);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    const text = await limited.text();
    expect(text).toContain('RELAY_ERR_DIAL_RATE_LIMITED');
    expect(text).toContain('too many calls from this link');
    // Another link of the same agent has its own allowance, but the agent's is shared...
    const second = link('105', Math.floor(Date.now() / 1000) + 7200);
    expect((await confirmAndCall(base, `${second}774852624`)).status).toBe(200);
    // ...with the API too.
    const api = (agent: string) =>
      fetch(`${base}/api/dial`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKENS.admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ source: '3cx', agent, number: '+420774852625' }),
      });
    const apiLimited = await api('105');
    expect(apiLimited.status).toBe(429);
    expect(Number(apiLimited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await apiLimited.json()) as { error: { code: string } }).error.code).toBe(
      'RELAY_ERR_DIAL_RATE_LIMITED',
    );
    expect((await api('106')).status).toBe(202);
    expect(pbx.placed.map((p) => [p.first, p.second])).toEqual([
      ['105', '420774852621'],
      ['105', '420774852624'],
      ['106', '420774852625'],
    ]);
    const metric = await dialMetric(relay.port);
    expect(metric).toContain(
      'callrelay_dial_total{path="link",result="rate_limited",reason="none"} 1',
    );
    expect(metric).toContain(
      'callrelay_dial_total{path="api",result="rate_limited",reason="none"} 1',
    );
    expect(metric).toContain('callrelay_dial_total{path="link",result="placed",reason="none"} 2');
  });
});

const stringValues = (o: Record<string, unknown>): Record<string, string> =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [k, String(v)]));
