// Source protection at the webhook edge, against a real relay: allowIps (with and without trusted
// proxies, and a spoofed X-Forwarded-For), HMAC signatures (right, wrong, missing, stale), the
// per-source rate limit (429 with Retry-After, not used up by requests without the token), and
// the refusal of public example tokens on an address others can reach.

import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { freePort, MAIN, sourceToken, startAndStop, tempDir, writeRelayYaml } from '../support.js';

const TOKEN = sourceToken('3cx');
const SECRET = 'whsec-guard-test-secret-1';
const ring = (i: number): string =>
  `{"Event":"ringing","Callerid":"1","User":"800","Id":"261301100000_${i}-0"}`;

describe('source protection', () => {
  let relay: Relay | undefined;
  afterEach(async () => {
    await relay?.close();
    relay = undefined;
  });

  async function open(threecx: string, server = ''): Promise<Relay> {
    relay = await startRelay(loadConfig(writeRelayYaml(tempDir(), { threecx, server }), {}));
    return relay;
  }
  const post = (
    r: Relay,
    i: number,
    headers: Record<string, string> = {},
    token = TOKEN,
  ): Promise<Response> =>
    fetch(`http://127.0.0.1:${r.port}/hooks/3cx/${token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: ring(i),
    });
  const stored = async (r: Relay): Promise<number> =>
    Object.values(await r.store.countInbox()).reduce((a, b) => a + b, 0);
  const codeOf = async (res: Response): Promise<string> =>
    ((await res.json()) as { error: { code: string; message: string } }).error.code;

  it('allowIps: only listed senders get in, before their token is looked at', async () => {
    const r = await open('    allowIps: [192.0.2.0/24, "2001:db8::/32"]\n');
    const res = await post(r, 1);
    expect(res.status).toBe(403);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('RELAY_ERR_FORBIDDEN_ADDRESS');
    expect(body.error.message).toMatch(/127\.0\.0\.1 is not in sources\[3cx\]\.allowIps/);
    // A wrong token from outside is refused for its address, telling nothing about the token.
    expect(await codeOf(await post(r, 2, {}, 'wrong-token-xyz'))).toBe(
      'RELAY_ERR_FORBIDDEN_ADDRESS',
    );
    // Other sources are not restricted.
    const other = await fetch(`http://127.0.0.1:${r.port}/hooks/callerdesk`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sourceToken('callerdesk')}` },
      body: 'x=1',
    });
    expect(other.status).toBe(200);
    expect(await stored(r)).toBe(1);
    const metrics = await (await fetch(`http://127.0.0.1:${r.port}/metrics`)).text();
    expect(metrics).toMatch(/callrelay_ingest_requests_total\{source="3cx",result="forbidden"\} 2/);
  });

  it('allowIps: a listed sender gets in', async () => {
    const r = await open('    allowIps: [127.0.0.1]\n');
    expect((await post(r, 1)).status).toBe(200);
  });

  it('X-Forwarded-For counts only from a trusted proxy, and cannot be spoofed past it', async () => {
    // No trusted proxy: the header is ignored.
    let r = await open('    allowIps: [203.0.113.7]\n');
    expect((await post(r, 1, { 'x-forwarded-for': '203.0.113.7' })).status).toBe(403);
    await r.close();
    // The relay sits behind a proxy on 127.0.0.1.
    r = await open('    allowIps: [203.0.113.7]\n', '  trustProxy: [127.0.0.1]\n');
    expect((await post(r, 2, { 'x-forwarded-for': '203.0.113.7' })).status).toBe(200);
    // A client that writes the allowed address itself: the proxy appends the real one.
    expect((await post(r, 3, { 'x-forwarded-for': '203.0.113.7, 198.51.100.9' })).status).toBe(403);
    expect((await post(r, 4)).status).toBe(403);
    expect(await stored(r)).toBe(1);
  });

  it('signature: only a right, fresh HMAC of the body is stored', async () => {
    const r = await open(
      `    signature:\n      header: X-Sig\n      prefix: "sha256="\n      secret: ${SECRET}\n` +
        '      timestampHeader: X-Ts\n      toleranceSec: 60\n',
    );
    const sign = (ts: number, body: string, secret = SECRET): string =>
      `sha256=${createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex')}`;
    const now = Math.floor(Date.now() / 1000);
    const ok = await post(r, 1, { 'x-ts': String(now), 'x-sig': sign(now, ring(1)) });
    expect(ok.status).toBe(200);
    const refused: [string, Record<string, string>, RegExp][] = [
      ['missing', { 'x-ts': String(now) }, /no X-Sig header/],
      [
        'wrong secret',
        { 'x-ts': String(now), 'x-sig': sign(now, ring(2), 'other-secret-1') },
        /does not match/,
      ],
      ['another body', { 'x-ts': String(now), 'x-sig': sign(now, ring(1)) }, /does not match/],
      ['stale', { 'x-ts': String(now - 600), 'x-sig': sign(now - 600, ring(2)) }, /more than 60 s/],
      ['no time', { 'x-sig': sign(now, ring(2)) }, /no Unix time in X-Ts/],
      ['bad encoding', { 'x-ts': String(now), 'x-sig': 'sha256=zz' }, /does not match/],
    ];
    for (const [what, headers, why] of refused) {
      const res = await post(r, 2, headers);
      expect(res.status, what).toBe(401);
      const text = await res.text();
      expect(text, what).toContain('RELAY_ERR_BAD_SIGNATURE');
      expect(text, what).toMatch(why);
      // Never the value that would have been right.
      expect(text, what).not.toContain(sign(now, ring(2)).slice(7, 20));
    }
    expect(await stored(r)).toBe(1);
  });

  it('rateLimit: 429 with Retry-After beyond the rate, never used up without the token', async () => {
    const r = await open('    rateLimit: { perSecond: 1, burst: 2 }\n');
    // Somebody without the token cannot spend the source's allowance.
    for (let i = 0; i < 5; i++)
      expect((await post(r, 100 + i, {}, 'wrong-token-xyz')).status).toBe(401);
    expect((await post(r, 1)).status).toBe(200);
    expect((await post(r, 2)).status).toBe(200);
    const limited = await post(r, 3);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await codeOf(limited)).toBe('RELAY_ERR_RATE_LIMITED');
    expect(await stored(r)).toBe(2);
    await new Promise((res) => setTimeout(res, 1100));
    expect((await post(r, 4)).status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${r.port}/metrics`)).text();
    expect(metrics).toMatch(/callrelay_ingest_requests_total\{source="3cx",result="limited"\} 1/);
  });
});

describe('example tokens', () => {
  /** A relay.yaml whose one token falls back to its example default. */
  function config(host: string, port: number): string {
    const file = join(tempDir(), 'relay.yaml');
    writeFileSync(
      file,
      `server:\n  port: ${port}\n  host: ${host}\nstore:\n  sqlite: ./relay.db\n` +
        // /metrics needs its own token on such a host (test/config/exposure.test.ts).
        'metrics:\n  enabled: false\nsources:\n' +
        '  - name: 3cx\n    adapter: 3cx\n' +
        '    token: ${GUARD_TEST_UNSET_TOKEN:-change-me-example-token}\n',
    );
    return file;
  }

  it('a relay others can reach refuses them, and says where and how to fix it', async () => {
    const file = config('0.0.0.0', 0);
    const env = { ...process.env, GUARD_TEST_UNSET_TOKEN: undefined };
    for (const cmd of ['start', 'check']) {
      const r = spawnSync(process.execPath, [MAIN, cmd, '--config', file], {
        encoding: 'utf8',
        env,
        timeout: 10_000,
      });
      expect(r.status, cmd).toBe(1);
      expect(r.stderr, cmd).toMatch(
        /relay\.yaml:11:\d+ sources\.0\.token is the example default of \$\{GUARD_TEST_UNSET_TOKEN\}, while server\.host 0\.0\.0\.0 lets others reach the relay: set the variable/,
      );
      expect(r.stderr, cmd).not.toContain('change-me-example-token');
    }
    // Set, it starts.
    const ok = spawnSync(process.execPath, [MAIN, 'check', '--config', file], {
      encoding: 'utf8',
      env: { ...process.env, GUARD_TEST_UNSET_TOKEN: 'a-real-token-8f3b2c91d4e7a605' },
    });
    expect(ok.status).toBe(0);
  });

  it('on loopback, or told to, it starts (with a warning)', async () => {
    const env = { ...process.env, GUARD_TEST_UNSET_TOKEN: undefined };
    const local = spawnSync(process.execPath, [MAIN, 'check', '--config', config('127.0.0.1', 0)], {
      encoding: 'utf8',
      env,
    });
    expect(local.status).toBe(0);
    const port = await freePort();
    const out = await startAndStop(
      ['--config', config('0.0.0.0', port), '--insecure-example-tokens'],
      port,
      env,
    );
    expect(out).toMatch(/is the example default of .*anybody who read relay\.yaml can use it/);
  });
});
