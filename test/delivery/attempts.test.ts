// Delivery attempts are data: every request a run makes to the CRM is a row an admin can read
// (operation, status, duration, the CRM's request id, the next try), written with the run's
// outcome, and no configured secret survives into a row or an API answer even when the CRM
// echoes one back. Runs a real relay against the fake HubSpot.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { readFlow } from '../../src/flows.js';
import { createApp } from '../../src/http/app.js';
import { Pipeline } from '../../src/pipeline/pipeline.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
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
  remote: { pendingCreate?: { at: string } };
}

/**
 * The command line's output. Not execFileSync: that would stop the relay under test, which runs in
 * this process, for as long as the command takes, and a keep-alive connection that timed out
 * meanwhile was then reset under the next request.
 */
const cli = async (...args: string[]): Promise<string> =>
  (await promisify(execFile)(process.execPath, [MAIN, ...args], { encoding: 'utf8' })).stdout;

describe('delivery attempts', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function open(backoff = { baseMs: 40, maxMs: 80 }): Promise<{
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
      delivery: { pollMs: 20, backoff },
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
    // The first run's retry is half a minute away, so that what is read below is that run's end.
    // With a quick backoff the next runs went on meanwhile: the next one only waits for HubSpot's
    // search lag (no status, no token in its error), so each answer read a different run.
    const { hs, relay, config } = await open({ baseMs: 60_000, maxMs: 60_000 });
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
    const table = await cli('deliveries', '--config', config);
    expect(table).toMatch(
      new RegExp(
        `${d!.id}\\s+hubspot\\s+3cx\\s+${CALL}\\s+retrying \\(\\d+ failed\\), next .* 500`,
      ),
    );
    expect(table).not.toContain(HS_TOKEN);

    // Healed: the next try, brought forward once the lost create can be looked for (searchLagSec),
    // finds nothing and creates the call.
    hs.faults.splice(0);
    const [before] = await deliveries(relay);
    const lostAt = Date.parse(before!.remote.pendingCreate!.at);
    while (Date.now() < lostAt + 300) await new Promise((r) => setTimeout(r, 20));
    const retried = await api(relay, `/api/deliveries/${d!.id}/retry`, { method: 'POST' });
    expect(((await retried.json()) as { retried: number }).retried).toBe(1);
    await settleDeliveries(relay);
    expect(hs.calls.size).toBe(1);
    const calls = await cli('calls', '--config', config);
    expect(calls).toMatch(new RegExp(`${CALL}\\s.*hubspot:delivered`));
    // And the call alone: its delivery, then every request of it, oldest first.
    const one = await cli('calls', CALL, '--config', config);
    expect(one).toMatch(/hubspot:delivered\n[^]*retry +creating the call[^]*delivered +creating/);
    expect(one).not.toContain(HS_TOKEN);
  });

  it('never shows a delivery older than the attempts listed with it', async () => {
    // A run of the engine ends while an answer is being read: its failure commits at the moment
    // the attempts are read, through a store that hands every call to the real one. Reading the
    // delivery before its attempts showed the run's retry next to a delivery not failed yet
    // ("retrying: false"), as the test above did now and then when its poll met a run's end.
    const dir = tempDir();
    const cfg = loadConfig(
      writeRelayYaml(dir, {
        more: `targets:\n  - name: hubspot\n    type: hubspot\n    token: ${HS_TOKEN}\n`,
      }),
      {},
    );
    const real = new SqliteStore(join(dir, 'relay.db'), { routing: cfg.routing });
    let runEnds: (() => Promise<void>) | undefined;
    const store = new Proxy(real, {
      get(target, prop) {
        if (prop === 'listAttempts')
          return async (q: Parameters<SqliteStore['listAttempts']>[0]) => {
            const end = runEnds;
            runEnds = undefined;
            await end?.();
            return target.listAttempts(q);
          };
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const pipeline = new Pipeline(store, cfg.sources);
    const app = createApp({ pipeline, bodyLimit: 1 << 20, adminToken: TOKENS.admin });
    cleanup.push(async () => {
      await pipeline.stop();
      await real.close();
    });
    for (const r of flow.requests) {
      if (r.direction === 'to-pbx') continue;
      const path = `/hooks/3cx/${TOKENS.threecx}`;
      const res =
        r.method === 'GET'
          ? await app.request(`${path}?${(r.query ?? '').replace(/ /g, '%20')}`)
          : await app.request(path, {
              method: r.method,
              headers: r.contentType ? { 'content-type': r.contentType } : {},
              body: r.body ?? '',
            });
      expect(res.status).toBe(200);
    }
    await pipeline.drain();
    const [due] = await real.deliveriesOf([{ source: '3cx', callId: CALL }]);
    await real.retryDeliveries([due!.id]); // due now, whatever its settle window
    const [job] = await real.claimDeliveries({ limit: 1, owner: 'engine-a', leaseMs: 60_000 });
    const retryAt = new Date(Date.now() + 60_000).toISOString();
    const error = 'creating the call: HubSpot answered 500';
    runEnds = () =>
      real.finishDelivery(job!.id, 'engine-a', { ok: false, dead: false, retryAt, error }, [
        {
          operation: 'creating the call',
          method: 'POST',
          path: '/crm/v3/objects/calls',
          startedAt: new Date().toISOString(),
          durationMs: 5,
          status: 500,
          requestId: null,
          result: 'retry',
          error,
          retryAt,
          sent: null,
        },
      ]);

    const res = await app.request(`/api/calls/${CALL}/deliveries?source=3cx`, {
      headers: { authorization: `Bearer ${TOKENS.admin}` },
    });
    expect(res.status).toBe(200);
    const [d] = ((await res.json()) as { deliveries: DeliveryView[] }).deliveries;
    expect(runEnds, 'the run ended while the answer was read').toBeUndefined();
    expect(d!.attempts.map((a) => a.result)).toEqual(['retry']);
    expect(d!.state).toBe('due');
    expect(d!.retrying).toBe(true);
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
