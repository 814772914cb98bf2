// Click-to-call for agents through the tel: handler URL (/agent/dial?number=%s), against the fake
// 3CX: the link a browser hands over reaches a confirmation page that dials nothing; the confirmed,
// same-origin POST with the session's CSRF token rings the agent's own extension first (whatever
// the form says), and the call it makes says agent:<extension> placed it. The number rules of
// every path apply, refusals are pages that say what to do, and nobody signed out dials.

import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { FakePbx } from '../fakes/pbx.js';
import {
  ConsoleClient,
  goldenCases,
  sendFlowRequest,
  tempDir,
  TOKENS,
  writeRelayYaml,
} from '../support.js';

const KEY = 'webapi-key-agent-0123';
// The chid the recorded makecall flow's webhooks carry for its answered call.
const FLOW_CHID = '00000000-01dc-27fc-0bdb-88fd0000002f';
const AGENTS = `agents:
  - { extension: "101", name: Alice, email: alice@example.com }
  - { extension: "102", name: Bob }
`;

/** What a browser puts for %s in the handler URL: the whole tel: link, percent-encoded. */
const handler = (tel: string): string => `/agent/dial?number=${encodeURIComponent(tel)}`;

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function setup(opts: { pbx?: boolean; more?: string } = {}): Promise<{
  relay: Relay;
  pbx: FakePbx;
  base: string;
  signIn: (ext: string) => Promise<ConsoleClient>;
}> {
  const pbx = await new FakePbx().start();
  pbx.makecallKey = KEY;
  const file = writeRelayYaml(tempDir(), {
    threecx:
      opts.pbx === false
        ? ''
        : `    pbx:\n      url: ${pbx.url}\n      key: ${KEY}\n      timeoutSec: 2\n`,
    more: `${AGENTS}${opts.more ?? ''}`,
  });
  const relay = await startRelay(loadConfig(file, {}));
  cleanup.push(
    () => pbx.close(),
    () => relay.close(),
  );
  const base = `http://127.0.0.1:${relay.port}`;
  const signIn = async (ext: string): Promise<ConsoleClient> => {
    const made = await fetch(`${base}/api/agents/${ext}/sign-in-link`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.admin}` },
    });
    const { url } = (await made.json()) as { url: string };
    const client = new ConsoleClient(base);
    const res = await client.post('/agent/welcome', { t: new URL(url).searchParams.get('t')! });
    expect(res.status).toBe(303);
    return client;
  };
  return { relay, pbx, base, signIn };
}

/** The page's CSRF token, kept on the client for its posts. */
async function open(
  client: ConsoleClient,
  path: string,
): Promise<{ status: number; html: string }> {
  const res = await client.request(path);
  const html = await res.text();
  const csrf = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  if (csrf) client.csrf = csrf;
  return { status: res.status, html };
}

describe('click-to-call for agents', () => {
  it('a tel: link through the handler URL is confirmed, then rings the agent first', async () => {
    const { relay, pbx, signIn } = await setup();
    pbx.makecallAnswer = { status: 200, body: JSON.stringify({ chid: FLOW_CHID }) };
    const alice = await signIn('101');

    // Opening the handler URL, twice (a prefetch, a reload), dials nothing.
    for (let i = 0; i < 2; i++) {
      const page = await open(alice, handler('tel:+420 774-852-629'));
      expect(page.status).toBe(200);
      expect(page.html).toContain('Call +420 774 852 629?');
      expect(page.html).toContain('Your phone at extension <b>101</b> rings first');
      expect(page.html).toContain('name="number" value="+420774852629"');
      expect(page.html).toContain('method="post" action="/agent/dial"');
    }
    expect(pbx.placed).toEqual([]);

    const res = await alice.post('/agent/dial', { number: '+420774852629' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/agent/dial/placed?number=%2B420774852629');
    expect(pbx.placed).toEqual([
      { first: '101', second: '420774852629', query: 'first=101&second=420774852629' },
    ]);
    const placed = await open(alice, res.headers.get('location')!);
    expect(placed.html).toContain('Calling <b>+420774852629</b>: pick up at extension 101.');

    // The call's own webhooks, as 3CX sends them after the makecall: the call says who placed it.
    const flow = goldenCases().find(
      (c) => c.flow.name === '3cx-v3-makecall-missed-then-answered-with-ai',
    )!.flow;
    for (const r of flow.requests) await sendFlowRequest(relay.port, '3cx', r);
    await relay.pipeline.drain();
    const [answered] = await relay.store.getCalls('250917195359_47', '3cx');
    expect(answered!.record).toMatchObject({ channelId: FLOW_CHID, originatedBy: 'agent:101' });
    expect(await relay.metrics.registry.getSingleMetricAsString('callrelay_dial_total')).toContain(
      'callrelay_dial_total{path="agent",result="placed",reason="none"} 1',
    );
  });

  it('reads the forms of tel: links and typed numbers', async () => {
    const { pbx, signIn } = await setup();
    const alice = await signIn('101');
    const shows = async (path: string): Promise<string> => {
      const page = await open(alice, path);
      expect(page.status, path).toBe(200);
      return /name="number" value="([^"]+)"/.exec(page.html)![1]!;
    };
    expect(await shows(handler('tel:+420.774.852.629'))).toBe('+420774852629');
    // A CRM that encoded its link, encoded again by the browser.
    expect(await shows(handler('tel:%2B420%20774%20852%20629'))).toBe('+420774852629');
    // A local number in its context, and one read in the source's country (CZ).
    expect(await shows(handler('tel:774852629;phone-context=+420'))).toBe('+420774852629');
    expect(await shows('/agent/dial?number=774+852+629')).toBe('+420774852629');
    expect(await shows('/agent/dial?number=(774)%20852%20629')).toBe('+420774852629');
    // An extension at the far end is no part of what is dialled: the page says to key it in.
    const ext = await open(alice, handler('tel:+420-774-852-629;ext=12'));
    expect(ext.html).toContain('name="number" value="+420774852629"');
    expect(ext.html).toContain('The link asks for extension <b>12</b> at the other end');
    const none = await open(alice, '/agent/dial?number=');
    expect(none.status).toBe(400);
    expect(none.html).toContain('there is no number to call');
    expect(pbx.placed).toEqual([]);
  });

  it("dials from the session's own extension, whatever the form names", async () => {
    const { pbx, signIn } = await setup();
    const bob = await signIn('102');
    await open(bob, handler('tel:+420774852629'));
    const res = await bob.post('/agent/dial', {
      number: '+420774852629',
      agent: '101',
      extension: '101',
      first: '101',
      source: 'callerdesk',
    });
    expect(res.status).toBe(303);
    expect(pbx.placed.map((p) => p.first)).toEqual(['102']);
  });

  it('refuses a post without the CSRF token or from another site, and anyone signed out', async () => {
    const { base, pbx, signIn } = await setup();
    const alice = await signIn('101');
    await open(alice, handler('tel:+420774852629'));
    const csrf = alice.csrf;
    alice.csrf = '';
    const noToken = await alice.post('/agent/dial', { number: '+420774852629' });
    expect(noToken.status).toBe(403);
    expect(await noToken.text()).toContain('RELAY_ERR_CSRF');
    alice.csrf = 'a'.repeat(csrf.length);
    expect((await alice.post('/agent/dial', { number: '+420774852629' })).status).toBe(403);
    alice.csrf = csrf;
    const foreign = await alice.request('/agent/dial', {
      method: 'POST',
      headers: { origin: 'https://crm.evil.example', 'sec-fetch-site': 'cross-site' },
      body: new URLSearchParams({ _csrf: csrf, number: '+420774852629' }),
    });
    expect(foreign.status).toBe(403);

    // Signed out: the handler URL goes to sign-in and comes back; a post is refused.
    const url = handler('tel:+420 774 852 629');
    const anon = await fetch(`${base}${url}`, { redirect: 'manual' });
    expect(anon.status).toBe(303);
    expect(anon.headers.get('location')).toBe(`/agent/sign-in?next=${encodeURIComponent(url)}`);
    const anonPost = await fetch(`${base}/agent/dial`, {
      method: 'POST',
      redirect: 'manual',
      headers: { origin: base, 'sec-fetch-site': 'same-origin' },
      body: new URLSearchParams({ _csrf: csrf, number: '+420774852629' }),
    });
    expect(anonPost.status).toBe(401);
    // The admin's console session dials nothing here either.
    const admin = new ConsoleClient(base);
    expect((await admin.post('/console/sign-in', { token: TOKENS.admin })).status).toBe(303);
    const adminGet = await admin.request(url);
    expect(adminGet.status).toBe(303);
    expect(adminGet.headers.get('location')).toMatch(/^\/agent\/sign-in/);
    expect(pbx.placed).toEqual([]);
  });

  it('refuses premium-rate and foreign numbers per dial:, saying what to do', async () => {
    const { pbx, signIn } = await setup();
    const alice = await signIn('101');
    const premium = await open(alice, handler('tel:+420906123456'));
    expect(premium.status).toBe(403);
    expect(premium.html).toContain(
      '+420906123456 is a premium-rate number; click-to-call places only fixed-line, mobile and ' +
        'toll-free numbers (dial.allowTypes)',
    );
    expect(premium.html).toContain('Dial it from your desk phone if you must.');
    expect(premium.html).not.toContain('action="/agent/dial"');
    const foreign = await open(alice, handler('tel:+49 30 901820'));
    expect(foreign.status).toBe(403);
    expect(foreign.html).toContain('+4930901820 is in DE');
    // Posted anyway (an old page, a crafted form): the same rules.
    await open(alice, handler('tel:+420774852629'));
    const posted = await alice.post('/agent/dial', { number: '+420906123456' });
    expect(posted.status).toBe(403);
    expect(await posted.text()).toContain('RELAY_ERR_DIAL_REFUSED');
    expect(pbx.placed).toEqual([]);
  });

  it('counts each agent’s calls a minute, and says when no source can dial', async () => {
    const { pbx, signIn } = await setup({ more: 'dial:\n  perAgentPerMinute: 1\n' });
    const alice = await signIn('101');
    await open(alice, handler('tel:+420774852629'));
    expect((await alice.post('/agent/dial', { number: '+420774852629' })).status).toBe(303);
    const again = await alice.post('/agent/dial', { number: '+420774852629' });
    expect(again.status).toBe(429);
    expect(again.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await again.text()).toContain('Wait a minute, then press Call again.');
    expect(pbx.placed).toHaveLength(1);

    const off = await setup({ pbx: false });
    const bob = await off.signIn('102');
    const page = await open(bob, handler('tel:+420774852629'));
    expect(page.status).toBe(404);
    expect(page.html).toContain('click-to-call is not set up: no source has pbx: in relay.yaml');
    expect(page.html).toContain('ask your administrator to set up click-to-call');
  });
});
