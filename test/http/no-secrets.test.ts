// No configured secret leaves through the HTTP API: every GET route of the admin API, /metrics,
// /healthz and /readyz, after webhooks whose bodies carry secrets and a CRM that echoes its token.

import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { secretsOf } from '../../src/config/secrets.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import {
  settleDeliveries,
  sourceToken,
  tempDir,
  TOKENS,
  writeRelayYaml,
  secretBearingCall,
} from '../support.js';

const HS_TOKEN = 'pat-eu1-never-shown-0003';

describe('secrets in HTTP answers', () => {
  let relay: Relay | undefined;
  let hs: FakeHubspot | undefined;
  afterEach(async () => {
    await relay?.close();
    await hs?.close();
  });

  it('no admin API answer, metrics or health answer contains one', async () => {
    hs = await new FakeHubspot(HS_TOKEN).start();
    const file = writeRelayYaml(tempDir(), {
      threecx: '    recordings:\n      bearer: pbx-bearer-never-shown\n',
      more: `targets:\n  - name: hubspot\n    type: hubspot\n    token: ${HS_TOKEN}\n    baseUrl: ${hs.url}\n`,
    });
    const cfg = loadConfig(file, {});
    const secrets = secretsOf(cfg);
    expect(secrets).toEqual(expect.arrayContaining([TOKENS.admin, HS_TOKEN, sourceToken('3cx')]));
    relay = await startRelay(cfg, undefined, {
      delivery: { pollMs: 20, backoff: { baseMs: 40, maxMs: 80 } },
    });
    hs.faults.push({
      match: 'POST /crm/v3/objects/calls',
      fault: { status: 400, body: { message: `Bad token ${HS_TOKEN} for pbx-bearer-never-shown` } },
    });
    const hook = `http://127.0.0.1:${relay.port}/hooks/3cx/${sourceToken('3cx')}`;
    // A provider that puts secrets in its own payloads (a misconfigured PBX template).
    const id = '260101120000_9';
    for (const body of [...secretBearingCall(id, HS_TOKEN), { nonsense: sourceToken('3cx') }])
      await fetch(`${hook}?token=${sourceToken('3cx')}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': TOKENS.admin },
        body: JSON.stringify(body),
      });
    await settleDeliveries(relay);

    const auth = { authorization: `Bearer ${TOKENS.admin}` };
    const get = async (path: string): Promise<string> => {
      const res = await fetch(`http://127.0.0.1:${relay!.port}${path}`, { headers: auth });
      expect(res.status, path).toBe(200);
      return res.text();
    };
    const inbox = JSON.parse(await get('/api/inbox')) as { requests: { id: number }[] };
    expect(inbox.requests.length).toBe(3);
    const deliveries = JSON.parse(await get('/api/deliveries')) as { deliveries: { id: string }[] };
    expect(deliveries.deliveries.length).toBe(1);
    const paths = [
      '/api/calls',
      `/api/calls/${id}`,
      `/api/calls/${id}/deliveries`,
      '/api/inbox',
      ...inbox.requests.map((r) => `/api/inbox/${r.id}`),
      '/api/deliveries',
      `/api/deliveries/${deliveries.deliveries[0]!.id}/attempts`,
      '/api/stats',
      '/metrics',
      '/healthz',
      '/readyz',
    ];
    let redacted = 0;
    for (const p of paths) {
      const text = await get(p);
      for (const s of secrets) expect(text, `${p} shows a secret`).not.toContain(s);
      if (text.includes('[redacted]')) redacted++;
    }
    // The secrets were there to leak: the answers that carried them say [redacted] instead.
    expect(redacted).toBeGreaterThanOrEqual(4);
  });
});
