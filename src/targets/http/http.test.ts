// The generic HTTP target end to end: webhooks into a real relay, CloudEvents out to a fake
// receiver on 127.0.0.1 that checks the Standard Webhooks signature; faults and dead letters.

import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { startRelay, type Relay } from '../../runtime.js';
import { WebhookReceiver } from './fake.js';
import { MAIN, tempDir, TOKENS, writeRelayYaml } from '../../../test/support.js';

const SECRET = 'whsec_' + Buffer.from('a-test-signing-secret-0123456789').toString('base64');

const call = (id: string): string[] => [
  `{"Event":"ringing","Callerid":"05552221133","User":"800","Usertype":"other","Did":"","Id":"${id}-0"}`,
  `{"Event":"incomingcall_started","Callerid":"05552221133","User":"117","Trtype":"NotDef","Did":"","Id":"${id}-1"}`,
  `{"Event":"incoming","Callerid":"05552221133","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:06","Id":"${id}-1"}`,
];
const recording = (id: string): string =>
  `{"Event":"recording","FileUrls":["https://pbx/webapi/recording/${id}-1-1.mp3"],"Callerid":"05552221133","User":"117","Id":"${id}-1"}`;

async function relayTo(
  receiver: WebhookReceiver,
  target = '',
  routes = '',
): Promise<{ relay: Relay; post: (b: string) => Promise<void>; config: string }> {
  const dir = tempDir();
  const config = writeRelayYaml(dir, {
    more: `targets:\n  - name: hook\n    type: http\n    url: ${receiver.url}\n    secret: ${SECRET}\n    timeoutSec: 0.5\n${target}${routes}`,
  });
  const relay = await startRelay(loadConfig(config, {}), undefined, {
    delivery: { pollMs: 20, backoff: { baseMs: 40, maxMs: 200 } },
  });
  const post = async (body: string): Promise<void> => {
    const res = await fetch(`http://127.0.0.1:${relay.port}/hooks/3cx/${TOKENS.threecx}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(res.status).toBe(200);
  };
  return { relay, post, config };
}

describe('HTTP target', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  async function setup(
    target = '',
    routes = '',
  ): Promise<{
    receiver: WebhookReceiver;
    relay: Relay;
    post: (b: string) => Promise<void>;
    config: string;
  }> {
    const receiver = await new WebhookReceiver(SECRET).start();
    cleanup.push(() => receiver.close());
    const r = await relayTo(receiver, target, routes);
    cleanup.push(() => r.relay.close());
    return { receiver, ...r };
  }

  it('posts each change of a call as a signed CloudEvent, in order', async () => {
    const { receiver, post } = await setup('    deliverOn: change\n');
    for (const b of call('260401100000_1')) await post(b);
    await receiver.waitFor(() => receiver.received.some((r) => r.json.data.status === 'ended'));
    await post(recording('260401100000_1'));
    await receiver.waitFor(() =>
      receiver.received.some((r) => r.json.data.recordings.length === 1),
    );
    for (const r of receiver.received) {
      expect(r.signatureOk).toBe(true);
      expect(r.headers['content-type']).toBe('application/cloudevents+json');
      expect(r.headers['webhook-id']).toBe(r.json.id);
      expect(r.json).toMatchObject({
        specversion: '1.0',
        source: 'callrelay/3cx',
        subject: '260401100000_1',
        datacontenttype: 'application/json',
      });
      expect(r.json.id).toBe(`3cx:260401100000_1:${r.json.callrelayrevision}`);
      expect(r.json.type).toBe(`callrelay.call.${r.json.data.status}`);
    }
    // Changes coalesce, but what arrives is in revision order and ends with the whole call.
    const revs = receiver.received.map((r) => r.json.callrelayrevision as number);
    expect(revs).toEqual([...revs].sort((a, b) => a - b));
    expect(receiver.received.at(-1)!.json.data).toMatchObject({
      status: 'ended',
      outcome: 'answered',
      agent: '117',
      durationSec: 6,
    });
  });

  it('sends only what a route lets through', async () => {
    const { receiver, post, relay } = await setup(
      '',
      '\nroutes:\n  - targets: [hook]\n    filter: { direction: [inbound], outcome: [answered], minDurationSec: 5 }\n',
    );
    const short = call('260401100000_3').map((b) => b.replace('00:06', '00:03'));
    for (const b of [...call('260401100000_2'), ...short]) await post(b);
    await receiver.waitFor(() => receiver.received.length >= 1);
    await relay.pipeline.drain();
    await relay.delivery.settle();
    expect(receiver.received.map((r) => [r.json.subject, r.json.data.status])).toEqual([
      ['260401100000_2', 'ended'],
    ]);
  });

  it('retries 429 (with and without Retry-After), 5xx, timeouts and resets, then delivers', async () => {
    const { receiver, post, relay } = await setup('    deliverOn: ended\n');
    receiver.script.push(
      { status: 429, headers: { 'retry-after': '1' } },
      { status: 429 },
      { status: 503, body: '{"message":"try later"}' },
      { hang: true },
      { reset: true },
    );
    const t0 = Date.now();
    for (const b of call('260401100000_4')) await post(b);
    await receiver.waitFor(() => receiver.received.length >= 6, 20_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000); // Retry-After: 1 was honoured
    await relay.delivery.settle();
    const [d] = await relay.store.listDeliveries({ limit: 10 });
    const [c] = await relay.store.getCalls('260401100000_4');
    expect(d).toMatchObject({
      state: 'done',
      attempts: 0,
      lastError: null,
      remote: { lastRevision: c!.revision },
    });
    // Every try carried the same event id, so a receiver keeps one.
    expect(new Set(receiver.received.map((r) => r.json.id)).size).toBe(1);
    expect(receiver.distinct()).toHaveLength(1);
  });

  it("sends a 4xx to the dead-letter list with the receiver's reason, and replays it", async () => {
    const { receiver, post, relay, config } = await setup('    deliverOn: ended\n');
    receiver.script.push({ status: 422, body: '{"message":"unknown agent 117"}' });
    for (const b of call('260401100000_5')) await post(b);
    await receiver.waitFor(() => receiver.received.length >= 1);
    await relay.delivery.settle();
    const [dead] = await relay.store.listDeliveries({ state: 'dead', limit: 10 });
    expect(dead!.lastError).toMatch(
      /^delivering call 260401100000_5 \(3cx\) to hook: posting callrelay.call.ended \(revision \d+\): 422 unknown agent 117$/,
    );

    const listed = execFileSync(process.execPath, [MAIN, 'dead', '--config', config], {
      encoding: 'utf8',
    });
    expect(listed).toMatch(
      new RegExp(
        `^dl-${dead!.id}\\s+hook\\s+3cx\\s+260401100000_5\\s+1\\s+.*422 unknown agent 117$`,
        'm',
      ),
    );
    const api = (await (
      await fetch(`http://127.0.0.1:${relay.port}/api/deliveries?state=dead`, {
        headers: { authorization: `Bearer ${TOKENS.admin}` },
      })
    ).json()) as { deliveries: { id: string }[] };
    expect(api.deliveries.map((d) => d.id)).toEqual([`dl-${dead!.id}`]);

    const res = await fetch(`http://127.0.0.1:${relay.port}/api/deliveries/dl-${dead!.id}/retry`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.admin}` },
    });
    expect(((await res.json()) as { retried: number }).retried).toBe(1);
    await receiver.waitFor(() => receiver.received.length >= 2);
    await relay.delivery.settle();
    expect((await relay.store.getDelivery(dead!.id))!.state).toBe('done');
  });

  it('re-arms a dead letter when the call changes again', async () => {
    const { receiver, post, relay } = await setup('    deliverOn: ended\n');
    receiver.script.push({ status: 400, body: '{"message":"bad"}' });
    for (const b of call('260401100000_7')) await post(b);
    await receiver.waitFor(() => receiver.received.length >= 1);
    await relay.delivery.settle();
    expect((await relay.store.listDeliveries({ state: 'dead', limit: 10 })).length).toBe(1);
    await post(recording('260401100000_7'));
    await receiver.waitFor(() => receiver.received.length >= 2);
    await relay.delivery.settle();
    const [d] = await relay.store.listDeliveries({ limit: 10 });
    expect(d).toMatchObject({
      state: 'done',
      doneRev: (await relay.store.getCalls('260401100000_7'))[0]!.revision,
    });
    expect(receiver.received.at(-1)!.json.data.recordings).toHaveLength(1);
  });

  it('sends a body built by a JSONata template instead of the CloudEvent', async () => {
    const { receiver, post } = await setup(
      `    deliverOn: ended\n    template: '{"text": "Call " & call.callId & " by " & call.agent & ": " & call.outcome, "revision": event.callrelayrevision}'\n`,
    );
    for (const b of call('260401100000_8')) await post(b);
    await receiver.waitFor(() => receiver.received.length >= 1);
    const [r] = receiver.received;
    expect(r!.headers['content-type']).toBe('application/json');
    expect(r!.json).toEqual({
      text: 'Call 260401100000_8 by 117: answered',
      revision: expect.any(Number),
    });
    expect(r!.signatureOk).toBe(true);
  });

  it('gives up after retryForHours and says why', async () => {
    const { receiver, post, relay } = await setup(
      '    deliverOn: ended\n    retryForHours: 0.0002\n',
    ); // under a second
    for (let i = 0; i < 40; i++) receiver.script.push({ status: 500, body: 'boom' });
    for (const b of call('260401100000_6')) await post(b);
    await receiver.waitFor(() => receiver.received.length >= 2);
    for (
      let t = 0;
      t < 100 && !(await relay.store.listDeliveries({ state: 'dead', limit: 1 })).length;
      t++
    )
      await new Promise((r) => setTimeout(r, 50));
    const [dead] = await relay.store.listDeliveries({ state: 'dead', limit: 1 });
    expect(dead!.lastError).toMatch(/: 500 boom$/);
    expect(dead!.attempts).toBeGreaterThanOrEqual(1);
  });
});
