// No call left behind: a call whose end webhook never came is closed by the relay after
// calls.closeAfterMin without events, delivered to the CRM as ended, kept closed by replays, and
// updated in place (one CRM call, never two) when the real end turns up late. A call of nothing but
// a recording is no call: never closed, never a missed call in the CRM (issue 25). A real relay
// against the fake HubSpot; the closer's clock is moved forward instead of waiting two hours.

import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { CallRecord } from '../../src/domain/model.js';
import { readFlow } from '../../src/flows.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import {
  ADAPTERS,
  sendFlowRequest,
  settleDeliveries,
  tempDir,
  TOKENS,
  writeRelayYaml,
} from '../support.js';

const HS_TOKEN = 'pat-eu1-stale-calls-0001';
// Three rings (IVR, queue, phone), then the answer and the end: the last two are "lost" at first.
const flow = readFlow(join(ADAPTERS, 'cases/3cx/3cx-get-incoming-answered.json'));
const CALL = String(flow.expect!.calls[0]!.callId);
const RINGS = flow.requests.slice(0, 3);
const LATE_END = flow.requests.slice(3, 5);
const MIN = 60_000;

describe('calls whose end never came', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function open(
    o: { closeAfterMin?: number; hubspot?: string } = {},
  ): Promise<{ hs: FakeHubspot; relay: Relay; clock: { shift: number } }> {
    const hs = await new FakeHubspot(HS_TOKEN).start();
    hs.addContact({ phone: '+420774852629', firstname: 'Jana' });
    const config = writeRelayYaml(tempDir(), {
      more:
        `targets:\n  - name: hubspot\n    type: hubspot\n    token: ${HS_TOKEN}\n` +
        `    baseUrl: ${hs.url}\n    searchLagSec: 0.3\n${o.hubspot ?? ''}` +
        `calls:\n  closeAfterMin: ${o.closeAfterMin ?? 120}\n`,
    });
    const clock = { shift: 0 };
    const relay = await startRelay(loadConfig(config, {}), undefined, {
      delivery: { pollMs: 20 },
      closer: { now: () => Date.now() + clock.shift, everyMs: 25 },
    });
    cleanup.push(
      () => hs.close(),
      () => relay.close(),
    );
    return { hs, relay, clock };
  }

  const record = async (relay: Relay): Promise<CallRecord> =>
    (await relay.store.getCalls(CALL, '3cx'))[0]!.record;

  const api = (relay: Relay, path: string, method = 'GET'): Promise<Response> =>
    fetch(`http://127.0.0.1:${relay.port}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKENS.admin}` },
    });

  async function until(what: string, ok: () => Promise<boolean>): Promise<void> {
    for (const t0 = Date.now(); Date.now() - t0 < 10_000;) {
      if (await ok()) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  it('closes a ringing call after closeAfterMin, delivers it, and a late end updates it in place', async () => {
    const { hs, relay, clock } = await open();
    for (const r of RINGS) expect((await sendFlowRequest(relay.port, '3cx', r))!.status).toBe(200);
    await settleDeliveries(relay);
    expect((await record(relay)).status).toBe('ringing');
    expect(hs.calls.size).toBe(0);

    // Not yet: two minutes short of the limit, the sweeps leave it open.
    clock.shift = 118 * MIN;
    expect(await relay.closer.sweep()).toBe(0);
    await settleDeliveries(relay);
    expect((await record(relay)).status).toBe('ringing');

    // Past it: the next periodic sweep closes it, and it is delivered as a missed call.
    clock.shift = 121 * MIN;
    await until('the close', async () => (await record(relay)).status === 'ended');
    await settleDeliveries(relay);
    const closed = await record(relay);
    expect(closed).toMatchObject({
      status: 'ended',
      outcome: 'missed',
      closedBy: 'relay',
      endReason: 'timeout',
      endedAt: null,
      talkSec: null,
      rang: ['800', '804', '102'],
    });
    expect(hs.calls.size).toBe(1);
    const [engagement] = [...hs.calls.values()];
    expect(engagement!.properties).toMatchObject({
      hs_call_status: 'NO_ANSWER',
      hs_call_duration: '0',
    });
    expect(engagement!.properties.hs_call_body).toContain(
      'End:</b> not reported by the phone system; closed by the relay',
    );
    expect((await relay.metrics.scrape()).body).toContain(
      'callrelay_calls_closed_total{source="3cx"} 1',
    );

    // Replays refold the call from its stored events: the close stays, nothing is sent again.
    const revision = (await relay.store.getCalls(CALL, '3cx'))[0]!.revision;
    const inbox = (await relay.store.listInbox({ limit: 100 })).filter((r) => r.source === '3cx');
    expect(inbox.map((r) => r.kind)).toEqual(['webhook', 'webhook', 'webhook', 'relay-close']);
    for (const r of inbox) {
      const res = await api(relay, `/api/inbox/${r.id}/replay`, 'POST');
      expect(res.status).toBe(200);
    }
    await settleDeliveries(relay);
    expect(await record(relay)).toEqual(closed);
    expect((await relay.store.getCalls(CALL, '3cx'))[0]!.revision).toBe(revision);

    // The real end, late: the record shows it, and the same CRM call is updated.
    for (const r of LATE_END) await sendFlowRequest(relay.port, '3cx', r);
    await settleDeliveries(relay);
    expect(await record(relay)).toMatchObject({
      status: 'ended',
      outcome: 'answered',
      closedBy: null,
      durationSec: 7,
      agent: '102',
    });
    expect((await record(relay)).endedAt).not.toBeNull();
    expect(hs.calls.size).toBe(1);
    const updated = hs.calls.get(engagement!.id)!;
    expect(updated.properties).toMatchObject({
      hs_call_status: 'COMPLETED',
      hs_call_duration: '7000',
    });
    expect(updated.properties.hs_call_body).not.toContain('not reported');
    // Later sweeps leave an ended call alone.
    clock.shift = 1000 * MIN;
    expect(await relay.closer.sweep()).toBe(0);
  });

  it('never closes a call with closeAfterMin: 0', async () => {
    const config = writeRelayYaml(tempDir(), { more: 'calls:\n  closeAfterMin: 0\n' });
    const relay = await startRelay(loadConfig(config, {}), undefined, {
      closer: { now: () => Date.now() + 1000 * MIN, everyMs: 25 },
    });
    cleanup.push(() => relay.close());
    for (const r of RINGS) await sendFlowRequest(relay.port, '3cx', r);
    await relay.pipeline.drain();
    expect(await relay.closer.sweep()).toBe(0);
    await new Promise((r) => setTimeout(r, 100));
    expect((await record(relay)).status).toBe('ringing');
  });

  it('never makes a call of a lone recording: not closed, no missed call or task in the CRM', async () => {
    // As the issue saw it: closeAfterMin 1, missed-call tasks on, a recording and nothing else.
    const { hs, relay, clock } = await open({
      closeAfterMin: 1,
      hubspot: '    missedCallTask: true\n',
    });
    const id = '260305101010_7';
    const post = (body: object): Parameters<typeof sendFlowRequest>[2] => ({
      method: 'POST',
      contentType: 'application/json',
      body: JSON.stringify({ Callerid: '420774852629', User: '117', ...body }),
    });
    const recording = post({
      Event: 'recording',
      FileUrls: [`https://pbx.example.com:5001/webapi/recording/${id}-1-1.mp3`],
      Id: `${id}-1`,
    });
    expect((await sendFlowRequest(relay.port, '3cx', recording))!.status).toBe(200);
    await settleDeliveries(relay);
    const lone = (await relay.store.getCalls(id, '3cx'))[0]!.record;
    expect(lone).toMatchObject({ status: 'incomplete', outcome: null, closedBy: null });

    // Two minutes later (and later still), sweeps leave it alone: nothing is invented.
    for (const min of [2, 60, 1000]) {
      clock.shift = min * MIN;
      // Two sweeps: at least one began after the clock moved (a periodic one may be under way).
      await relay.closer.sweep();
      expect(await relay.closer.sweep()).toBe(0);
      await settleDeliveries(relay);
    }
    expect((await relay.store.getCalls(id, '3cx'))[0]!.record).toEqual(lone);
    const inbox = (await relay.store.listInbox({ limit: 100 })).filter((r) => r.source === '3cx');
    expect(inbox.map((r) => r.kind)).toEqual(['webhook']);
    expect(await relay.store.listDeliveries({ limit: 10 })).toEqual([]);
    expect(hs.calls.size).toBe(0);
    expect(hs.tasks.size).toBe(0);

    // The call's real events come after all: now it is a call (missed), with its recording.
    clock.shift = 0;
    for (const body of [
      { Event: 'ringing', Usertype: 'ext', Did: '', Id: `${id}-0` },
      { Event: 'incoming', Finishtype: 'Missed', Transfer: 'False', Did: '', Id: `${id}-0` },
    ])
      expect((await sendFlowRequest(relay.port, '3cx', post(body)))!.status).toBe(200);
    await settleDeliveries(relay);
    expect((await relay.store.getCalls(id, '3cx'))[0]!.record).toMatchObject({
      status: 'ended',
      outcome: 'missed',
      closedBy: null,
      recordings: [`https://pbx.example.com:5001/webapi/recording/${id}-1-1.mp3`],
    });
    expect(hs.calls.size).toBe(1);
    expect(hs.tasks.size).toBe(1);
  });
});
