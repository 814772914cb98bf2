// Delivery attempts are data: every request a run makes to the CRM is a row an admin can read
// (operation, status, duration, the CRM's request id, the next try), written with the run's
// outcome, and no configured secret survives into a row or an API answer even when the CRM
// echoes one back. Runs a real relay against the fake HubSpot.

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { readFlow } from '../../src/flows.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import {
  ADAPTERS,
  MAIN,
  sendFlowRequest,
  settleDeliveries,
  tempDir,
  TOKENS,
  writeRelayYaml,
} from '../support.js';

const HS_TOKEN = 'pat-eu1-attempts-secret-0001';
const PBX_PASSWORD = 'pbx-recording-password-77';
const flow = readFlow(join(ADAPTERS, 'cases/3cx/3cx-get-incoming-answered.json'));
const CALL = String(flow.expect!.calls[0]!.callId);

interface Attempt {
  operation: string;
  method: string | null;
  path: string | null;
  status: number | null;
  requestId: string | null;
  result: string;
  error: string | null;
  retryAt: string | null;
  durationMs: number;
}
interface DeliveryView {
  id: string;
  state: string;
  retrying: boolean;
  attempts: Attempt[];
  crm: { id: string; url: string | null } | null;
}

describe('delivery attempts', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function open(): Promise<{
    hs: FakeHubspot;
    relay: Relay;
    config: string;
    contact: string;
  }> {
    const hs = await new FakeHubspot(HS_TOKEN).start();
    // The caller is a contact: the console's link opens the contact whose timeline shows the call.
    const contact = hs.addContact({ phone: '+420774852629', firstname: 'Jana' });
    const config = writeRelayYaml(tempDir(), {
      threecx: `    recordings:\n      basic: { user: admin, password: ${PBX_PASSWORD} }\n`,
      more: `targets:\n  - name: hubspot\n    type: hubspot\n    token: ${HS_TOKEN}\n    baseUrl: ${hs.url}\n    portalId: 4242\n    searchLagSec: 0.3\n`,
    });
    const relay = await startRelay(loadConfig(config, {}), undefined, {
      delivery: { pollMs: 20, backoff: { baseMs: 40, maxMs: 80 } },
    });
    cleanup.push(
      () => hs.close(),
      () => relay.close(),
    );
    return { hs, relay, config, contact };
  }

  const api = async (relay: Relay, path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(`http://127.0.0.1:${relay.port}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${TOKENS.admin}` },
    });

  const deliveries = async (relay: Relay): Promise<DeliveryView[]> => {
    const res = await api(relay, `/api/calls/${CALL}/deliveries?source=3cx`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { deliveries: DeliveryView[] }).deliveries;
  };

  it('records each request of a failing run, then the one that delivers, newest first', async () => {
    const { hs, relay, contact } = await open();
    // The CRM fails twice, echoing the token and the PBX password back in its error text.
    for (let i = 0; i < 2; i++)
      hs.faults.push({
        match: 'POST /crm/v3/objects/calls',
        fault: {
          status: 503,
          headers: { 'x-hubspot-correlation-id': `corr-${i}` },
          body: { status: 'error', message: `upstream said Bearer ${HS_TOKEN} ${PBX_PASSWORD}` },
        },
      });
    for (const r of flow.requests) await sendFlowRequest(relay.port, '3cx', r);
    await settleDeliveries(relay);

    const [d] = await deliveries(relay);
    expect(d!.state).toBe('done');
    expect(d!.crm).toEqual({
      id: expect.stringMatching(/^call \d+$/),
      url: `https://app.hubspot.com/contacts/4242/record/0-1/${contact}`,
    });
    const creates = d!.attempts.filter((a) => a.operation.includes('creating the call'));
    // Newest first: the create that worked, then the 503. A create answered 5xx may have been
    // made, so it is not sent again blindly: the next run searches first, and the second 503
    // (its fault matches the search path too) lands on that search.
    expect(creates.map((a) => a.status)).toEqual([201, 503]);
    expect(
      d!.attempts.filter((a) => a.operation === 'searching calls').map((a) => a.status),
    ).toContain(503);
    expect(creates[0]!.result).toBe('delivered');
    for (const a of creates.slice(1)) {
      expect(['error', 'retry']).toContain(a.result);
      expect(a.method).toBe('POST');
      expect(a.path).toBe('/crm/v3/objects/calls');
      expect(a.requestId).toMatch(/^corr-\d$/);
      expect(a.error).toContain('503');
      expect(a.error).toContain('[redacted]');
      expect(a.durationMs).toBeGreaterThanOrEqual(0);
    }
    const body = JSON.stringify(d);
    expect(body).not.toContain(HS_TOKEN);
    expect(body).not.toContain(PBX_PASSWORD);
    // Scrubbed before it is stored, not only when it is shown.
    const stored = JSON.stringify(await relay.store.listAttempts({ limit: 100 }));
    expect(stored).toContain('[redacted]');
    expect(stored).not.toContain(HS_TOKEN);
    expect(stored).not.toContain(PBX_PASSWORD);
  });

  it('a run that gives up says why, when it retries next, and keeps secrets out', async () => {
    const { hs, relay, config } = await open();
    // Every create fails until healed: the run ends "retry" with the next try.
    for (let i = 0; i < 200; i++)
      hs.faults.push({
        match: 'POST /crm/v3/objects/calls',
        fault: { status: 500, body: { message: `token ${HS_TOKEN} rejected upstream` } },
      });
    for (const r of flow.requests) await sendFlowRequest(relay.port, '3cx', r);
    await relay.pipeline.drain();
    let d: DeliveryView | undefined;
    for (let i = 0; i < 200; i++) {
      [d] = await deliveries(relay);
      if (d?.attempts.some((a) => a.result === 'retry')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const retry = d!.attempts.find((a) => a.result === 'retry')!;
    expect(retry.status).toBe(500);
    expect(retry.retryAt).not.toBeNull();
    expect(retry.error).toMatch(/^delivering call .* to hubspot: creating the call/);
    expect(d!.state).toBe('due');
    expect(d!.retrying).toBe(true);

    // Every admin answer that shows deliveries stays clean.
    for (const path of [
      '/api/deliveries?state=retrying',
      `/api/calls?source=3cx`,
      `/api/calls/${CALL}/deliveries?source=3cx`,
      `/api/deliveries/${d!.id}/attempts`,
    ]) {
      const res = await api(relay, path);
      expect(res.status, path).toBe(200);
      const text = await res.text();
      expect(text, path).not.toContain(HS_TOKEN);
      expect(text, path).toContain('[redacted]');
    }
    const listed = (await (await api(relay, '/api/deliveries?state=retrying')).json()) as {
      deliveries: { id: string }[];
    };
    expect(listed.deliveries.map((x) => x.id)).toEqual([d!.id]);
    // The command line says the same: retrying, the next try, and why.
    const table = execFileSync(process.execPath, [MAIN, 'deliveries', '--config', config], {
      encoding: 'utf8',
    });
    expect(table).toMatch(
      new RegExp(
        `${d!.id}\\s+hubspot\\s+3cx\\s+${CALL}\\s+retrying \\(\\d+ failed\\), next .* 500`,
      ),
    );
    expect(table).not.toContain(HS_TOKEN);

    hs.faults.splice(0);
    await settleDeliveries(relay);
    expect(hs.calls.size).toBe(1);
    const calls = execFileSync(process.execPath, [MAIN, 'calls', '--config', config], {
      encoding: 'utf8',
    });
    expect(calls).toMatch(new RegExp(`${CALL}\\s.*hubspot:delivered`));
  });

  it('deliver again updates the same CRM object; retry now brings a waiting try forward', async () => {
    const { hs, relay } = await open();
    for (const r of flow.requests) await sendFlowRequest(relay.port, '3cx', r);
    await settleDeliveries(relay);
    const [d] = await deliveries(relay);
    const delivered = d!.attempts.filter((a) => a.result === 'delivered').length;
    const before = hs.log.length;
    const again = await api(relay, `/api/deliveries/${d!.id}/redeliver`, { method: 'POST' });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { redelivered: number }).redelivered).toBe(1);
    await settleDeliveries(relay);
    expect(hs.calls.size).toBe(1);
    expect(hs.log.slice(before).some((r) => r.method === 'PATCH')).toBe(true);
    const [after] = await deliveries(relay);
    expect(after!.attempts.filter((a) => a.result === 'delivered')).toHaveLength(delivered + 1);

    // A delivery that is done is not "retried".
    const retry = await api(relay, `/api/deliveries/${d!.id}/retry`, { method: 'POST' });
    expect(((await retry.json()) as { retried: number }).retried).toBe(0);
    expect(
      (await api(relay, '/api/deliveries/dl-999999/redeliver', { method: 'POST' })).status,
    ).toBe(404);
  });
});
