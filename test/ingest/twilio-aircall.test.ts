// The Twilio and Aircall adapters (adapters/twilio.yaml, aircall.yaml) beyond their golden cases,
// which show calls once over: how a call stands while it goes on, and what each one leaves alone.

import { describe, expect, it } from 'vitest';
import type { RawRequest } from '../../src/domain/request.js';
import { runFlow, type Flow } from '../../src/flows.js';
import { compileAdapter, loadAdapterDir } from '../../src/ingest/adapter.js';
import { ADAPTERS, goldenCases } from '../support.js';

const adapters = loadAdapterDir(ADAPTERS);
const golden = (adapter: string, name: string): Flow =>
  goldenCases().find((c) => c.adapter === adapter && c.flow.name === name)!.flow;
/** The first `n` requests of a golden case: the call as it stands at that moment. */
const upTo = (flow: Flow, n: number): Flow => ({ ...flow, requests: flow.requests.slice(0, n) });

describe('twilio adapter', () => {
  const twilio = adapters.get('twilio')!;

  it('keeps a simultaneous ring going while the winner talks: the losers end only their legs', async () => {
    const flow = golden('twilio', 'twilio-inbound-simultaneous-ring');
    // Everything up to alice's and carol's cancellation; bob still talks.
    const talking = flow.requests.findIndex((r) => r.label === 'dialed leg client:bob completed');
    const { steps, calls } = await runFlow(upTo(flow, talking), twilio);
    expect(steps.every((s) => s.result.status === 'mapped')).toBe(true);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({
      status: 'in-progress',
      outcome: 'answered',
      agent: 'bob',
      endedAt: null,
      talkSec: null,
    });
  });

  it("keeps a call open after the agent's no-answer while the caller leaves a voicemail", async () => {
    const flow = golden('twilio', 'twilio-inbound-missed-voicemail');
    const noAnswer = flow.requests.findIndex(
      (r) => r.label === 'dialed leg client:alice no-answer',
    );
    const { calls } = await runFlow(upTo(flow, noAnswer + 1), twilio);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ status: 'ringing', outcome: null, endedAt: null });
  });

  it('makes no call of a recording callback alone: it names only a leg', async () => {
    const flow = golden('twilio', 'twilio-recording-after-end');
    const recording = flow.requests.filter((r) => r.label?.startsWith('recording'));
    expect(recording).toHaveLength(1);
    const { steps, calls } = await runFlow({ ...flow, requests: recording }, twilio);
    expect(steps[0]!.result).toMatchObject({
      status: 'mapped',
      events: [{ type: 'recording', legId: expect.stringMatching(/^CA/) }],
    });
    expect(steps[0]!.result.status === 'mapped' && steps[0]!.result.events[0]!.callId).toBe(
      undefined,
    );
    expect(calls).toEqual([]);
  });
});

describe('aircall adapter', () => {
  const aircall = compileAdapter(adapters.get('aircall')!, {
    name: 'aircall',
    timezone: 'UTC',
    defaultCountry: undefined,
  });
  const post = (body: Record<string, unknown>): RawRequest => ({
    source: 'aircall',
    kind: 'webhook',
    receivedAt: '2026-03-02T14:00:00.000Z',
    method: 'POST',
    query: '',
    contentType: 'application/json',
    headers: {},
    body: Buffer.from(JSON.stringify(body)),
  });
  const call = { id: 7, direction: 'inbound', raw_digits: '+33 6 12 34 56 78', user: null };

  it('leaves call.hungup (call.ended brings the totals) and other resources alone', async () => {
    const hungup = { resource: 'call', event: 'call.hungup', timestamp: 1772460095, data: call };
    expect(await aircall.map(post(hungup))).toMatchObject({
      status: 'ignored',
      rule: 'other-call-events',
    });
    const contact = { resource: 'contact', event: 'contact.updated', timestamp: 1772460095 };
    expect(await aircall.map(post({ ...contact, data: { id: 3 } }))).toMatchObject({
      status: 'ignored',
      rule: 'not-a-call',
    });
  });

  it('makes of a transfer to a team only the end of the transferring leg', async () => {
    const alice = { id: 1003, name: 'Alice Martin', email: 'alice@acme.example' };
    const team = { id: 42, name: 'Support' };
    const body = {
      resource: 'call',
      event: 'call.transferred',
      timestamp: 1772460070,
      data: { ...call, user: alice, transferred_by: alice, transferred_to: team },
    };
    expect(await aircall.map(post(body))).toMatchObject({
      status: 'mapped',
      events: [
        {
          type: 'ended',
          callId: '7',
          legId: '7-1003',
          scope: 'leg',
          transferred: true,
          agent: alice.email,
          at: '2026-03-02T14:01:10.000Z',
        },
      ],
    });
  });
});
