// Wrong tokens on the admin surfaces, against a real relay on a real socket: the console sign-in,
// /api and /metrics share one throttle per client address; the client is the socket's peer unless
// that peer is a trusted proxy (a spoofed X-Forwarded-For buys nothing); the right token always
// gets in, however many wrong ones came before; every refusal is counted in /metrics.

import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { tempDir, TOKENS, writeRelayYaml } from '../support.js';

const METRICS_TOKEN = 'metrics-scrape-token-7c41e9';

describe('wrong tokens on the admin surfaces', () => {
  let relay: Relay | undefined;
  afterEach(async () => {
    await relay?.close();
    relay = undefined;
  });

  async function open(server = '', more = ''): Promise<Relay> {
    relay = await startRelay(loadConfig(writeRelayYaml(tempDir(), { server, more }), {}));
    return relay;
  }

  const signIn = (r: Relay, token: string, forwardedFor?: string): Promise<Response> =>
    fetch(`http://127.0.0.1:${r.port}/console/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        origin: `http://127.0.0.1:${r.port}`,
        ...(forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}),
      },
      body: new URLSearchParams({ token, next: '/console' }),
    });
  const api = (r: Relay, token: string): Promise<Response> =>
    fetch(`http://127.0.0.1:${r.port}/api/calls`, {
      headers: { authorization: `Bearer ${token}` },
    });
  const metrics = (r: Relay, token: string): Promise<Response> =>
    fetch(`http://127.0.0.1:${r.port}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  const counted = async (r: Relay, name: string, surface: string): Promise<number> => {
    const text = await r.metrics.registry.metrics();
    const m = new RegExp(`^${name}\\{surface="${surface}"\\} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };

  it('100 wrong tokens with spoofed X-Forwarded-For from one peer lock out nobody but that peer', async () => {
    // All 100 at once on their own connections: above the per-address connection cap, which is a
    // defence of its own (test/http/connections.test.ts) and would refuse some before the throttle.
    const r = await open('  maxConnectionsPerAddress: 128\n');
    const wrong = await Promise.all(
      Array.from({ length: 100 }, (_, i) => signIn(r, `wrong-guess-${i}`, `198.51.100.${i}`)),
    );
    const statuses = wrong.map((res) => res.status);
    // The header is not believed without server.trustProxy: one client, ten tries.
    expect(statuses.filter((s) => s === 401)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(90);
    const limited = wrong.find((res) => res.status === 429)!;
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(500);
    expect(await limited.text()).toContain('too many wrong tokens');
    // A new spoofed address is the same client still.
    expect((await signIn(r, 'wrong-again', '203.0.113.99')).status).toBe(429);
    // The right token gets in at once, from the same peer, whatever it claims.
    const ok = await signIn(r, TOKENS.admin, '203.0.113.100');
    expect(ok.status).toBe(303);
    expect(ok.headers.get('set-cookie')).toMatch(/^callrelay_console=/);
    expect(await counted(r, 'callrelay_auth_failures_total', 'console')).toBe(101);
    expect(await counted(r, 'callrelay_auth_throttled_total', 'console')).toBe(91);
  });

  it('believes X-Forwarded-For from a trusted proxy: each client behind it counts alone', async () => {
    const r = await open('  trustProxy: [127.0.0.1]\n');
    const first = await Promise.all(
      Array.from({ length: 10 }, (_, i) => signIn(r, `guess-${i}`, '198.51.100.7')),
    );
    expect(first.map((res) => res.status)).toEqual(Array(10).fill(401));
    expect((await signIn(r, 'guess-11', '198.51.100.7')).status).toBe(429);
    // Another client behind the same proxy is not held up by the first.
    expect((await signIn(r, 'guess-12', '198.51.100.8')).status).toBe(401);
    expect((await signIn(r, TOKENS.admin, '198.51.100.7')).status).toBe(303);
  });

  it('/api: wrong bearers get 429 after the limit, the right one still works, nothing is cached', async () => {
    const r = await open();
    const wrong = await Promise.all(Array.from({ length: 12 }, (_, i) => api(r, `bad-${i}`)));
    expect(wrong.map((res) => res.status).sort()).toEqual([...Array(10).fill(401), 429, 429]);
    const limited = wrong.find((res) => res.status === 429)!;
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe(
      'RELAY_ERR_TOO_MANY_ATTEMPTS',
    );
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(500);
    for (const res of wrong) expect(res.headers.get('cache-control')).toBe('no-store');
    const ok = await api(r, TOKENS.admin);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('cache-control')).toBe('no-store');
    // Served over plain HTTP: no HSTS (that is for server.tls, test/http/tls.test.ts).
    expect(ok.headers.get('strict-transport-security')).toBeNull();
    expect(await counted(r, 'callrelay_auth_failures_total', 'api')).toBe(12);
    expect(await counted(r, 'callrelay_auth_throttled_total', 'api')).toBe(2);
    // One throttle: the console sign-in from the same client is held too.
    expect((await signIn(r, 'one-more-guess')).status).toBe(429);
  });

  it('/metrics: wrong metrics tokens get 429 after the limit, the right one still scrapes', async () => {
    const r = await open('', `metrics:\n  token: ${METRICS_TOKEN}\n`);
    const wrong = await Promise.all(Array.from({ length: 11 }, (_, i) => metrics(r, `no-${i}`)));
    expect(wrong.map((res) => res.status).sort()).toEqual([...Array(10).fill(401), 429]);
    const ok = await metrics(r, METRICS_TOKEN);
    expect(ok.status).toBe(200);
    const text = await ok.text();
    expect(text).toMatch(/^callrelay_auth_failures_total\{surface="metrics"\} 11$/m);
    expect(text).toMatch(/^callrelay_auth_throttled_total\{surface="metrics"\} 1$/m);
    // The admin token is no metrics token, and the client is still over its limit.
    expect((await metrics(r, TOKENS.admin)).status).toBe(429);
  });
});
