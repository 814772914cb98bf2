// Signature presets through a real relay: for each provider's scheme a request signed as that
// provider signs is stored, and a wrong one gets 401 (RELAY_ERR_BAD_SIGNATURE), is not stored, is
// kept as the source's refusal and tells neither the secret nor the right digest. Twilio's URL is
// the public one (a proxy in front), Zoom's endpoint validation is answered and never stored, and
// an unknown scheme is a config error listing the supported ones.

import { createHash, createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../src/lib/yaml.js';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { tempDir, writeRelayYaml } from '../support.js';

const PUBLIC = 'https://relay.example.test';
const OWN = 'https://twilio-only.example.test/prefix';
const TOKEN = 'sig-test-source-token-1';
const S = {
  twilio: 'twilio-auth-token-0123456789abcdef',
  sw: `whsec_${Buffer.from('standard-webhooks-test-key-32byt').toString('base64')}`,
  stripe: 'whsec_stripe_style_test_secret_1',
  aircall: 'aircall-webhook-token-45XXYYZZa08',
  zoom: 'zoom-secret-token-abcdef1234',
};

/** A source of the 3cx adapter (any adapter does: the signature is checked before mapping). */
// Sources are named apart from any adapter's name: writeRelayYaml adds one source per adapter.
const named = (name: string): string => `signed-${name}`;
const source = (name: string, signature: string): string =>
  `  - name: ${named(name)}\n    adapter: 3cx\n    token: ${TOKEN}\n    signature:\n${signature}`;

const hmac = (alg: string, key: string | Buffer, text: string): Buffer =>
  createHmac(alg, key).update(text).digest();

describe('signature presets', () => {
  let relay: Relay;
  const base = (): string => `http://127.0.0.1:${relay.port}`;
  const post = (
    name: string,
    body: string,
    headers: Record<string, string>,
    suffix = '',
  ): Promise<Response> =>
    fetch(`${base()}/hooks/${named(name)}/${TOKEN}${suffix}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });
  const stored = async (): Promise<number> =>
    Object.values(await relay.store.countInbox()).reduce((a, b) => a + b, 0);
  /** A 401 that names the problem and leaks neither secret nor the digest that would be right. */
  async function refused(res: Response, why: RegExp, secret: string, right: string): Promise<void> {
    expect(res.status).toBe(401);
    const text = await res.text();
    expect(text).toContain('RELAY_ERR_BAD_SIGNATURE');
    expect(text).toMatch(why);
    expect(text).not.toContain(secret);
    expect(text).not.toContain(right);
  }
  const now = (): number => Math.floor(Date.now() / 1000);
  const ring = (i: number): string =>
    `{"Event":"ringing","Callerid":"1","User":"800","Id":"261301100000_${i}-0"}`;

  beforeAll(async () => {
    const file = writeRelayYaml(tempDir(), {
      server: `  publicUrl: ${PUBLIC}\n`,
      more: [
        source('twilio', `      scheme: twilio\n      secret: ${S.twilio}\n`),
        source(
          'twilio-own',
          `      scheme: twilio\n      secret: ${S.twilio}\n      publicUrl: ${OWN}\n`,
        ),
        source('sw', `      scheme: standard-webhooks\n      secret: "${S.sw}"\n`),
        source(
          'stripe',
          `      scheme: stripe\n      secret: ${S.stripe}\n      header: X-Acme-Signature\n`,
        ),
        source('aircall', `      scheme: payload-token\n      secret: ${S.aircall}\n`),
        source('zoom', `      scheme: zoom\n      secret: ${S.zoom}\n`),
      ].join('\n'),
    });
    relay = await startRelay(loadConfig(file, {}));
  });
  afterAll(async () => {
    await relay?.close();
  });

  it('twilio: the public URL plus path and query, and the sorted form parameters', async () => {
    const form =
      'To=%2B18005551212&CallSid=CA1234567890ABCDE&From=%2B14158675309&CallStatus=ringing';
    const params = 'CallSidCA1234567890ABCDECallStatusringingFrom+14158675309To+18005551212';
    const sign = (url: string, p = params): string =>
      hmac('sha1', S.twilio, url + p).toString('base64');
    const formPost = (name: string, sig: string, suffix = ''): Promise<Response> =>
      post(
        name,
        form,
        { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': sig },
        suffix,
      );
    const before = await stored();
    // server.publicUrl, the token in the path and a query: all of it is what Twilio signed.
    const url = `${PUBLIC}/hooks/signed-twilio/${TOKEN}?leg=child`;
    expect((await formPost('twilio', sign(url), '?leg=child')).status).toBe(200);
    // A source that names its own public URL (a proxy that strips /prefix).
    const own = `${OWN}/hooks/signed-twilio-own/${TOKEN}`;
    expect((await formPost('twilio-own', sign(own))).status).toBe(200);
    // JSON bodies: the URL carries the body's SHA-256 and is signed alone.
    const json = '{"CallSid":"CA1234567890ABCDE","Caller":"+12349013030"}';
    const q = `?bodySHA256=${createHash('sha256').update(json).digest('hex')}`;
    const jsonSig = sign(`${PUBLIC}/hooks/signed-twilio/${TOKEN}${q}`, '');
    expect((await post('twilio', json, { 'x-twilio-signature': jsonSig }, q)).status).toBe(200);
    expect(await stored()).toBe(before + 3);

    // What the relay itself sees (http://127.0.0.1:port) is not what Twilio signed.
    const local = sign(`${base()}/hooks/signed-twilio/${TOKEN}`);
    await refused(
      await formPost('twilio', local),
      /does not match the URL and parameters \(check the Auth Token, and that Twilio calls the relay at https:\/\/relay\.example\.test/,
      S.twilio,
      sign(`${PUBLIC}/hooks/signed-twilio/${TOKEN}`),
    );
    await refused(
      await formPost('twilio', sign(url), '?leg=parent'),
      /does not match/,
      S.twilio,
      sign(`${PUBLIC}/hooks/signed-twilio/${TOKEN}?leg=parent`),
    );
    await refused(
      await post('twilio', `${json} `, { 'x-twilio-signature': jsonSig }, q),
      /does not match its bodySHA256/,
      S.twilio,
      jsonSig,
    );
    expect(await stored()).toBe(before + 3);
  });

  it('standard-webhooks: "<id>.<timestamp>.<body>", any listed v1 signature', async () => {
    const key = Buffer.from(S.sw.slice('whsec_'.length), 'base64');
    const sign = (id: string, ts: number, body: string): string =>
      `v1,${hmac('sha256', key, `${id}.${ts}.${body}`).toString('base64')}`;
    const t = now();
    const headers = (sig: string, ts = t): Record<string, string> => ({
      'webhook-id': 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W',
      'webhook-timestamp': String(ts),
      'webhook-signature': sig,
    });
    const before = await stored();
    const sig = sign('msg_2KWPBgLlAfxdpx2AI54pPJ85f4W', t, ring(1));
    expect((await post('sw', ring(1), headers(`v1,AAAA ${sig}`))).status).toBe(200);
    await refused(
      await post('sw', ring(2), headers(sig)),
      /no signature in webhook-signature matches/,
      S.sw,
      sign('msg_2KWPBgLlAfxdpx2AI54pPJ85f4W', t, ring(2)).slice(3),
    );
    const old = t - 600;
    await refused(
      await post(
        'sw',
        ring(2),
        headers(sign('msg_2KWPBgLlAfxdpx2AI54pPJ85f4W', old, ring(2)), old),
      ),
      /webhook-timestamp is more than 300 s/,
      S.sw,
      'never-there',
    );
    await refused(
      await post('sw', ring(2), headers('v1a,c2lnbmVkIHdpdGggZWQyNTUxOQ==')),
      /only asymmetric \(v1a, ed25519\) signatures, which the relay does not support/,
      S.sw,
      'never-there',
    );
    expect(await stored()).toBe(before + 1);
  });

  it('stripe: "t=<time>,v1=<hex>" in the configured header', async () => {
    const sign = (ts: number, body: string, secret = S.stripe): string =>
      hmac('sha256', secret, `${ts}.${body}`).toString('hex');
    const t = now();
    const before = await stored();
    const ok = `t=${t},v1=${'0'.repeat(64)},v1=${sign(t, ring(3))}`;
    expect((await post('stripe', ring(3), { 'x-acme-signature': ok })).status).toBe(200);
    await refused(
      await post('stripe', ring(4), {
        'x-acme-signature': `t=${t},v1=${sign(t, ring(4), 'whsec_other_secret_1')}`,
      }),
      /no v1 signature in X-Acme-Signature matches the body/,
      S.stripe,
      sign(t, ring(4)),
    );
    await refused(
      await post('stripe', ring(4), { 'stripe-signature': `t=${t},v1=${sign(t, ring(4))}` }),
      /no X-Acme-Signature header/,
      S.stripe,
      'never-there',
    );
    expect(await stored()).toBe(before + 1);
  });

  it('payload-token: Aircall\'s "token" in the body, compared with the secret', async () => {
    const event = (token: string): string =>
      JSON.stringify({
        resource: 'call',
        event: 'call.created',
        timestamp: now(),
        token,
        data: {},
      });
    const before = await stored();
    expect((await post('aircall', event(S.aircall), {})).status).toBe(200);
    await refused(
      await post('aircall', event('aircall-webhook-token-45XXYYZZa09'), {}),
      /the token at token in the body is wrong/,
      S.aircall,
      S.aircall,
    );
    await refused(await post('aircall', ring(5), {}), /no token at token/, S.aircall, S.aircall);
    expect(await stored()).toBe(before + 1);
  });

  it('zoom: x-zm-signature, and its endpoint validation answered, never stored', async () => {
    const sign = (ts: number, body: string, secret = S.zoom): string =>
      `v0=${hmac('sha256', secret, `v0:${ts}:${body}`).toString('hex')}`;
    const t = now();
    const zoomPost = (body: string, sig: string): Promise<Response> =>
      post('zoom', body, { 'x-zm-signature': sig, 'x-zm-request-timestamp': String(t) });
    const before = await stored();
    expect((await zoomPost(ring(6), sign(t, ring(6)))).status).toBe(200);
    expect(await stored()).toBe(before + 1);

    const challenge = JSON.stringify({
      payload: { plainToken: 'qgg8vlvZRS6UYooatFL8Aw' },
      event_ts: t * 1000,
      event: 'endpoint.url_validation',
    });
    const answer = await zoomPost(challenge, sign(t, challenge));
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({
      plainToken: 'qgg8vlvZRS6UYooatFL8Aw',
      encryptedToken: hmac('sha256', S.zoom, 'qgg8vlvZRS6UYooatFL8Aw').toString('hex'),
    });
    // An unsigned challenge gets nothing signed with the secret: it would sign any text.
    const encrypted = hmac('sha256', S.zoom, 'qgg8vlvZRS6UYooatFL8Aw').toString('hex');
    await refused(
      await zoomPost(challenge, sign(t, challenge, 'not-the-zoom-secret')),
      /x-zm-signature does not match the body \(check the Secret Token\)/,
      S.zoom,
      encrypted,
    );
    expect(await stored()).toBe(before + 1);
  });

  it("keeps each refusal as the source's newest, reason and all, without secrets", async () => {
    // Its own wrong requests, one per scheme: this test needs no other to have run before it.
    const t = String(now());
    const wrong: [string, Promise<Response>, RegExp][] = [
      [
        'twilio',
        post(
          'twilio',
          'CallSid=CA1',
          {
            'content-type': 'application/x-www-form-urlencoded',
            'x-twilio-signature': 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=',
          },
          '?newest=1',
        ),
        /does not match the URL and parameters/,
      ],
      [
        'sw',
        post('sw', ring(7), {
          'webhook-id': 'msg_newest',
          'webhook-timestamp': t,
          'webhook-signature': 'v1,AAAA',
        }),
        /no signature in webhook-signature matches/,
      ],
      ['stripe', post('stripe', ring(7), {}), /no X-Acme-Signature header/],
      ['aircall', post('aircall', ring(7), {}), /no token at token/],
      [
        'zoom',
        post('zoom', ring(7), { 'x-zm-signature': 'v0=00', 'x-zm-request-timestamp': t }),
        /x-zm-signature does not match the body/,
      ],
    ];
    for (const [, res] of wrong) expect((await res).status).toBe(401);
    await vi.waitFor(
      async () => {
        const rows = await relay.store.refusals();
        for (const [name, , why] of wrong)
          expect(rows.find((r) => r.source === named(name))).toMatchObject({
            status: 401,
            code: 'RELAY_ERR_BAD_SIGNATURE',
            reason: expect.stringMatching(new RegExp(`^bad signature: .*${why.source}`)),
          });
      },
      { timeout: 15_000, interval: 200 },
    );
    const text = JSON.stringify(await relay.store.refusals());
    for (const secret of Object.values(S)) expect(text).not.toContain(secret);
  });
});

describe('signature config', () => {
  const load = (threecx: string, server = ''): unknown =>
    loadConfig(writeRelayYaml(tempDir(), { threecx, server }), {});

  it('an unknown scheme names its place and the supported ones', () => {
    expect(() => load('    signature:\n      scheme: hmca\n      secret: abcdefgh1\n')).toThrow(
      /relay\.yaml:\d+:\d+ sources\.0\.signature\.scheme: unknown signature scheme "hmca"; supported: hmac, twilio, standard-webhooks, stripe, payload-token, zoom/,
    );
  });

  it('twilio needs a public URL; a Standard Webhooks secret must be one', () => {
    expect(() => load('    signature:\n      scheme: twilio\n      secret: abcdefgh1\n')).toThrow(
      /relay\.yaml:\d+:\d+ Twilio signs the URL it calls: set server\.publicUrl \(or signature\.publicUrl\)/,
    );
    expect(() =>
      load('    signature:\n      scheme: standard-webhooks\n      secret: "whsec_!!not-base64"\n'),
    ).toThrow(ConfigError);
    // The generic form as before: no scheme, the fields it always had.
    expect(() =>
      load('    signature:\n      header: X-Sig\n      secret: abcdefgh1\n'),
    ).not.toThrow();
  });
});
