// Each signature preset against a test vector from its provider's documentation or official
// library (the source is named at each), so that a request the provider really signed passes;
// and what a near miss (another body, secret, time or URL) is told, never the right value.

import { describe, expect, it } from 'vitest';
import {
  signatureProblem,
  twilioParams,
  zoomChallenge,
  type SignatureSettings,
  type SignedRequest,
} from './signature.js';

const request = (
  headers: Record<string, string>,
  body: string,
  url = '/hooks/x',
): SignedRequest => ({
  header: (name) =>
    Object.entries(headers).find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1],
  body: Buffer.from(body),
  url,
});

describe('twilio', () => {
  // https://www.twilio.com/docs/usage/webhooks/webhooks-security (auth token 12345), as the
  // official twilio-python tests hold it: tests/unit/test_request_validator.py.
  const twilio: SignatureSettings = {
    scheme: 'twilio',
    secret: '12345',
    publicUrl: 'https://mycompany.com',
  };
  const form =
    'CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309' +
    '&To=%2B18005551212';
  const url = '/myapp.php?foo=1&bar=2';

  it("accepts the documentation's form-encoded request", () => {
    const sig = { 'x-twilio-signature': 'RSOYDt4T1cUTdK1PDd93/VVr8B8=' };
    expect(signatureProblem(twilio, request(sig, form, url))).toBeUndefined();
    // The same signed with the default port (twilio-python's "adds port on https" case).
    const port = { 'x-twilio-signature': 'kvajT1Ptam85bY51eRf/AJRuM3w=' };
    expect(signatureProblem(twilio, request(port, form, url))).toBeUndefined();
    // The docs' current snippet (TwilioDevEd/api-snippets security/signature_validation, 3.x).
    const current = { 'x-twilio-signature': 'GvWf1cFY/Q7PnoempGyD5oXAezc=' };
    expect(
      signatureProblem(twilio, request(current, form.replaceAll('8675309', '8675310'), url)),
    ).toBeUndefined();
  });

  it('sorts parameters by name, then each distinct value once (twilio-python duplicates case)', () => {
    const dup = 'Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234';
    expect(twilioParams(new URLSearchParams(dup))).toBe(
      'Digits1234Digits5678SidCA123SidAccountAC123',
    );
    const sig = { 'x-twilio-signature': 'IK+Dwps556ElfBT0I3Rgjkr1wJU=' };
    expect(signatureProblem(twilio, request(sig, dup, url))).toBeUndefined();
  });

  it('accepts a JSON body signed through bodySHA256 (twilio-python body case)', () => {
    const body = '{"property": "value", "boolean": true}';
    const withHash =
      url + '&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620';
    const sig = { 'x-twilio-signature': 'a9nBmqA0ju/hNViExpshrM61xv4=' };
    expect(signatureProblem(twilio, request(sig, body, withHash))).toBeUndefined();
    // Another body under the same signed URL.
    expect(signatureProblem(twilio, request(sig, `${body} `, withHash))).toMatch(
      /does not match its bodySHA256/,
    );
  });

  it('refuses another URL, parameter or token, naming what to check', () => {
    const sig = { 'x-twilio-signature': 'RSOYDt4T1cUTdK1PDd93/VVr8B8=' };
    const wrong = [
      signatureProblem(twilio, request(sig, form, '/myapp.php?foo=1&bar=3')),
      signatureProblem(twilio, request(sig, form.replace('1234&', '1235&'), url)),
      signatureProblem({ ...twilio, secret: '54321' }, request(sig, form, url)),
      signatureProblem({ ...twilio, publicUrl: 'https://proxy.internal' }, request(sig, form, url)),
    ];
    for (const p of wrong)
      expect(p).toMatch(/does not match the URL and parameters \(check the Auth Token/);
    expect(wrong[3]).toContain('https://proxy.internal');
    expect(signatureProblem(twilio, request({}, form, url))).toBe('no X-Twilio-Signature header');
  });
});

describe('standard-webhooks', () => {
  // The test vector of the Standard Webhooks reference libraries ("sign function works"):
  // https://github.com/standard-webhooks/standard-webhooks libraries/javascript/src/webhook.test.ts
  const sw: SignatureSettings = {
    scheme: 'standard-webhooks',
    secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    toleranceSec: 300,
  };
  const at = 1614265330 * 1000;
  const body = '{"test": 2432232314}';
  const headers = (sig: string, ts = '1614265330'): Record<string, string> => ({
    'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
    'webhook-timestamp': ts,
    'webhook-signature': sig,
  });
  const right = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';

  it('accepts the reference vector, alone or among other signatures', () => {
    expect(signatureProblem(sw, request(headers(right), body), at)).toBeUndefined();
    const rotated = `v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= ${right}`;
    expect(signatureProblem(sw, request(headers(rotated), body), at)).toBeUndefined();
  });

  it('refuses another body, a stale time and asymmetric-only signatures, plainly', () => {
    expect(signatureProblem(sw, request(headers(right), `${body} `), at)).toMatch(
      /no signature in webhook-signature matches/,
    );
    expect(signatureProblem(sw, request(headers(right), body), at + 301_000)).toMatch(
      /webhook-timestamp is more than 300 s/,
    );
    expect(
      signatureProblem(sw, request(headers('v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw=='), body), at),
    ).toMatch(/only asymmetric \(v1a, ed25519\) signatures, which the relay does not support/);
  });
});

describe('stripe', () => {
  // Stripe's scheme (https://docs.stripe.com/webhooks#verify-manually): the payload and secret of
  // stripe-node's test/Webhook.spec.ts, the time of the docs' example header; the signature as
  // stripe-node 23.2.0's own webhooks.generateTestHeaderString makes it for them.
  const stripe: SignatureSettings = {
    scheme: 'stripe',
    secret: 'whsec_test_secret',
    header: 'Stripe-Signature',
    toleranceSec: 300,
  };
  const body = JSON.stringify({ id: 'evt_test_webhook', object: 'event' }, null, 2);
  const at = 1492774577 * 1000;
  const v1 = 'c2f890decbc5ede7c5060bb9a6d31e0626a4342bacb9aeae2adb1bcea72f9812';

  it("accepts stripe-node's header, among other v1 and v0 signatures", () => {
    const h = (v: string): Record<string, string> => ({ 'stripe-signature': v });
    expect(signatureProblem(stripe, request(h(`t=1492774577,v1=${v1}`), body), at)).toBeUndefined();
    const rolled = `t=1492774577,v1=${'0'.repeat(64)},v1=${v1},v0=6ffbb59b2300aae6`;
    expect(signatureProblem(stripe, request(h(rolled), body), at)).toBeUndefined();
    expect(
      signatureProblem(stripe, request(h(`t=1492774577,v1=${v1}`), body), at + 400_000),
    ).toMatch(/more than 300 s/);
    expect(signatureProblem(stripe, request(h(`t=1492774578,v1=${v1}`), body), at)).toMatch(
      /no v1 signature in Stripe-Signature matches the body/,
    );
    expect(signatureProblem(stripe, request(h(`v1=${v1}`), body), at)).toMatch(/no t=<time>/);
  });

  it('reads the header it is told to', () => {
    const other = { ...stripe, header: 'X-Acme-Signature' };
    const h = { 'x-acme-signature': `t=1492774577,v1=${v1}` };
    expect(signatureProblem(other, request(h, body), at)).toBeUndefined();
  });
});

describe('payload-token', () => {
  // Aircall's documented webhook payload (https://developer.aircall.io/api-references/, the
  // webhooks' number.closed sample: "token": "45XXYYZZa08" at the top level of every event).
  const aircall: SignatureSettings = {
    scheme: 'payload-token',
    secret: '45XXYYZZa08',
    path: 'token',
  };
  const body = JSON.stringify({
    resource: 'number',
    event: 'number.closed',
    timestamp: 1585001020,
    token: '45XXYYZZa08',
    data: { id: 456, name: 'My first Aircall Number', open: false },
  });

  it('accepts the documented payload and refuses another token or none', () => {
    expect(signatureProblem(aircall, request({}, body))).toBeUndefined();
    expect(signatureProblem(aircall, request({}, body.replace('a08', 'a09')))).toBe(
      'the token at token in the body is wrong',
    );
    expect(signatureProblem(aircall, request({}, '{"event":"x"}'))).toBe(
      'no token at token in the body',
    );
    expect(signatureProblem(aircall, request({}, 'token=45XXYYZZa08'))).toMatch(/not JSON/);
  });

  it('finds a token under a nested path', () => {
    const nested = { ...aircall, path: 'meta.auth.token' };
    const b = JSON.stringify({ meta: { auth: { token: '45XXYYZZa08' } } });
    expect(signatureProblem(nested, request({}, b))).toBeUndefined();
  });
});

describe('zoom', () => {
  // https://developers.zoom.us/docs/api/webhooks/#validate-your-webhook-endpoint: the example
  // challenge's encryptedToken is the HMAC-SHA256 of its plainToken under the secret
  // "SECRET_TOKEN" (the docs leave the secret out; this one reproduces their answer exactly).
  const zoom: SignatureSettings = { scheme: 'zoom', secret: 'SECRET_TOKEN', toleranceSec: 300 };
  const challenge =
    '{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,' +
    '"event":"endpoint.url_validation"}';

  it("answers the docs' challenge as the docs do", () => {
    expect(zoomChallenge(zoom, Buffer.from(challenge))).toEqual({
      plainToken: 'qgg8vlvZRS6UYooatFL8Aw',
      encryptedToken: '23a89b634c017e5364a1c8d9c8ea909b60dd5599e2bb04bb1558d9c3a121faa5',
    });
    expect(zoomChallenge(zoom, Buffer.from('{"event":"meeting.started"}'))).toBeUndefined();
    expect(
      zoomChallenge(
        { scheme: 'payload-token', secret: 'x', path: 'token' },
        Buffer.from(challenge),
      ),
    ).toBeUndefined();
  });

  it('checks x-zm-signature: v0= and the HMAC of "v0:<timestamp>:<body>"', () => {
    // Zoom's docs give the message format, not a signed example: this digest is the HMAC-SHA256
    // of "v0:1654503850:" + the challenge above under "SECRET_TOKEN".
    const sig = 'v0=577ba7040da3b1407f48fab3474a1b098c17039b1a2eadecb1b98a62abefc951';
    const h = { 'x-zm-signature': sig, 'x-zm-request-timestamp': '1654503850' };
    const at = 1654503850 * 1000;
    expect(signatureProblem(zoom, request(h, challenge), at)).toBeUndefined();
    expect(signatureProblem(zoom, request(h, `${challenge} `), at)).toMatch(
      /does not match the body \(check the Secret Token\)/,
    );
    expect(signatureProblem(zoom, request(h, challenge), at + 301_000)).toMatch(/more than 300 s/);
  });
});
