// Folding is order-independent and idempotent: the events of every golden flow, shuffled or with
// repeats, fold into the same records. Plus the rules the samples hinge on, and those of legs that
// carry random ids (Twilio-like): a leg's end, legs in time order, a lone recording is no call.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { eventKey, foldCall } from '../../src/domain/fold.js';
import { dueTargets } from '../../src/domain/routing.js';
import type { CallEvent, StoredEvent } from '../../src/domain/model.js';
import { flowRequests } from '../../src/flows.js';
import { compileAdapter, loadAdapterDir } from '../../src/ingest/adapter.js';
import { ADAPTERS, goldenCases } from '../support.js';

const adapters = loadAdapterDir(ADAPTERS);

async function storedEvents(
  adapterName: string,
  flow: Parameters<typeof flowRequests>[0],
): Promise<StoredEvent[]> {
  const a = adapters.get(adapterName)!;
  const mapper = compileAdapter(a, {
    name: a.name,
    timezone: a.def.defaults.timezone ?? 'UTC',
    defaultCountry: a.def.defaults.defaultCountry as never,
  });
  const out: StoredEvent[] = [];
  for (const [i, req] of flowRequests(flow, a.name).entries()) {
    const r = await mapper.map(req);
    if (r.status !== 'mapped') continue;
    r.events.forEach((event, idx) =>
      out.push({ inboxId: i + 1, idx, receivedAt: req.receivedAt, key: eventKey(event), event }),
    );
  }
  return out;
}

function foldAll(events: StoredEvent[]): Record<string, unknown> {
  const byCall = new Map<string, StoredEvent[]>();
  for (const e of events)
    if (e.event.callId) byCall.set(e.event.callId, [...(byCall.get(e.event.callId) ?? []), e]);
  return Object.fromEntries(
    [...byCall]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([id, evs]) => [id, foldCall(evs, { source: 's', provider: 'p' })]),
  );
}

describe('folding', () => {
  const cases = goldenCases();

  it.each(cases.map((c) => [`${c.adapter}/${c.flow.name}`, c] as const))(
    '%s: any order, any repeats, same record',
    async (_n, c) => {
      const events = await storedEvents(c.adapter, c.flow);
      const reference = foldAll(events);
      await fc.assert(
        fc.asyncProperty(
          fc.shuffledSubarray(events, { minLength: events.length, maxLength: events.length }),
          fc.array(fc.nat({ max: events.length - 1 }), { maxLength: 8 }),
          async (shuffled, dupIdx) => {
            // A repeat is the same webhook delivered again later: a new inbox id, same content.
            const repeats = dupIdx.map((i, n) => ({
              ...events[i]!,
              inboxId: 1000 + n,
              receivedAt: '2026-06-01T00:00:00.000Z',
            }));
            expect(foldAll([...repeats, ...shuffled])).toEqual(reference);
          },
        ),
        { numRuns: 60 },
      );
    },
  );

  const ev = (inboxId: number, event: CallEvent): StoredEvent => ({
    inboxId,
    idx: 0,
    receivedAt: `2026-01-01T00:00:0${inboxId}.000Z`,
    key: eventKey(event),
    event,
  });
  const ctx = { source: '3cx', provider: '3cx' };

  it('a leg that ends by transfer ends the leg, not the call', () => {
    const rec = foldCall(
      [
        ev(1, { type: 'answered', callId: 'c', legId: 'c-1', agent: '117', direction: 'inbound' }),
        ev(2, {
          type: 'ended',
          callId: 'c',
          legId: 'c-1',
          agent: '117',
          outcome: 'answered',
          transferred: true,
          durationSec: 14,
        }),
      ],
      ctx,
    );
    expect(rec.status).toBe('in-progress');
    expect(rec.endedAt).toBeNull();
    const done = foldCall(
      [
        ev(1, { type: 'answered', callId: 'c', legId: 'c-1', agent: '117' }),
        ev(2, {
          type: 'ended',
          callId: 'c',
          legId: 'c-1',
          agent: '117',
          outcome: 'answered',
          transferred: true,
          durationSec: 14,
        }),
        ev(3, { type: 'answered', callId: 'c', legId: 'c-2', agent: '204' }),
        ev(4, {
          type: 'ended',
          callId: 'c',
          legId: 'c-2',
          agent: '204',
          outcome: 'answered',
          durationSec: 6,
        }),
      ],
      ctx,
    );
    expect(done.status).toBe('ended');
    expect(done.agent).toBe('204');
    expect(done.durationSec).toBe(20);
    // Without a transfer kind on the new leg, the previous leg's transfer still shows.
    expect(done.transfers).toEqual([{ kind: 'unknown', fromAgent: '117', toAgent: '204' }]);
  });

  it('a repeated end event carrying files adds a recording, not a call', async () => {
    const c = goldenCases().find((x) => x.flow.name === '3cx-v1-incoming-answered')!;
    const calls = foldAll(await storedEvents('3cx', c.flow));
    expect(Object.keys(calls)).toEqual(['230115121143_9']);
    const rec = calls['230115121143_9'] as { recordings: string[]; durationSec: number };
    expect(rec.recordings).toHaveLength(1);
    expect(rec.durationSec).toBe(7);
  });

  it('MAKECALL never becomes a number', async () => {
    const c = goldenCases().find((x) => x.flow.name === '3cx-v2-makecall-answered')!;
    const events = await storedEvents('3cx', c.flow);
    const started = events.find((e) => e.event.type === 'answered')!;
    expect(started.event.externalNumber).toBeUndefined();
    expect(started.event.externalE164).toBeUndefined();
    // Even if the answered event were the only one with a number field, MAKECALL stays out.
    const rec = foldCall([started], ctx);
    expect(rec.externalNumber).toBeNull();
  });

  it('a call with only ringing events is ringing, with no outcome yet', () => {
    const rec = foldCall(
      [
        ev(1, { type: 'ringing', callId: 'c', legId: 'c-0', agent: '800' }),
        ev(2, { type: 'ringing', callId: 'c', legId: 'c-0', agent: '117' }),
      ],
      ctx,
    );
    expect(rec).toMatchObject({
      status: 'ringing',
      outcome: null,
      rang: ['800', '117'],
      startedAt: '2026-01-01T00:00:01.000Z',
    });
  });

  it('the report of a call wins over earlier live events', () => {
    const rec = foldCall(
      [
        ev(1, { type: 'answered', callId: 'x', agent: '99' }),
        ev(2, {
          type: 'report',
          callId: 'x',
          agent: '42',
          outcome: 'answered',
          durationSec: 58,
          talkSec: 44,
          endedAt: '2023-01-02T09:03:38.000Z',
        }),
      ],
      ctx,
    );
    expect(rec).toMatchObject({
      status: 'ended',
      agent: '42',
      durationSec: 58,
      talkSec: 44,
      endedAt: '2023-01-02T09:03:38.000Z',
    });
  });

  describe('legs with random ids', () => {
    // Random hex, like Twilio's CallSids: their order says nothing about time.
    const hex = (): string => `CA${randomBytes(16).toString('hex')}`;
    const t = (sec: number): string => new Date(Date.UTC(2026, 2, 1, 10, 0, sec)).toISOString();
    let inbox = 0;
    const stored = (event: CallEvent): StoredEvent => ({
      inboxId: ++inbox,
      idx: 0,
      receivedAt: `2026-03-01T11:00:${String(inbox % 60).padStart(2, '0')}.000Z`,
      key: eventKey(event),
      event,
    });
    /** Every order of the events (and repeats of some) folds to one record, which it returns. */
    async function foldAnyOrder(events: CallEvent[]): Promise<ReturnType<typeof foldCall>> {
      const reference = foldCall(events.map(stored), ctx);
      await fc.assert(
        fc.asyncProperty(
          fc.shuffledSubarray(events, { minLength: events.length, maxLength: events.length }),
          fc.array(fc.nat({ max: events.length - 1 }), { maxLength: 3 }),
          async (shuffled, dupIdx) => {
            // Arrival (inbox ids, receive times) follows the new order, as it would on the wire.
            const evs = [...shuffled, ...dupIdx.map((i) => events[i]!)].map(stored);
            expect(foldCall(evs, ctx)).toEqual({ ...reference, events: expect.any(Array) });
          },
        ),
        { numRuns: 40 },
      );
      return reference;
    }

    it('a leg that ends (scope leg) ends the call only when no other leg is open', async () => {
      const [parent, a, b] = [hex(), hex(), hex()];
      const base = { callId: parent, direction: 'inbound' as const, externalNumber: '+4915100000' };
      // Simultaneous ring: the parent rings two phones, A answers, B is cancelled at once.
      const ringing: CallEvent[] = [
        { ...base, type: 'ringing', legId: parent, at: t(0) },
        { ...base, type: 'ringing', legId: a, agent: '117', at: t(1) },
        { ...base, type: 'ringing', legId: b, agent: '204', at: t(1) },
        { ...base, type: 'answered', legId: a, agent: '117', at: t(8) },
        {
          ...base,
          type: 'ended',
          scope: 'leg',
          legId: b,
          agent: '204',
          outcome: 'missed',
          talkSec: 0,
          at: t(8),
        },
      ];
      const talking = await foldAnyOrder(ringing);
      expect(talking).toMatchObject({
        status: 'in-progress',
        outcome: 'answered',
        endedAt: null,
        agent: '117',
      });

      // A hangs up: the parent leg is still open, so the call is not over yet.
      const aEnds: CallEvent = {
        ...base,
        type: 'ended',
        scope: 'leg',
        legId: a,
        agent: '117',
        outcome: 'answered',
        durationSec: 52,
        talkSec: 52,
        at: t(60),
      };
      expect(await foldAnyOrder([...ringing, aEnds])).toMatchObject({
        status: 'in-progress',
        endedAt: null,
      });

      // The parent's own leg ends last: now the call is over. Its "completed" says only that its
      // script answered, not a person: the adapter leaves the outcome to the agent's leg.
      const parentEnds: CallEvent = {
        ...base,
        type: 'ended',
        scope: 'leg',
        legId: parent,
        providerStatus: 'completed',
        at: t(61),
      };
      expect(await foldAnyOrder([...ringing, aEnds, parentEnds])).toMatchObject({
        status: 'ended',
        outcome: 'answered',
        agent: '117',
        providerStatus: 'completed',
        endedAt: t(61),
        talkSec: 52,
        legs: [{ legId: a, agent: '117', durationSec: 52 }],
      });
    });

    it("a cancelled leg's seconds are not the call's: only answered legs' ends count", async () => {
      const [parent, a, b] = [hex(), hex(), hex()];
      const base = { callId: parent, direction: 'inbound' as const };
      // Simultaneous ring nobody answers: both phones are cancelled, then the parent ends. The
      // legs rang alongside the call, so their seconds are inside the parent's 25, not on top.
      const cancelled = (legId: string, agent: string): CallEvent => ({
        ...base,
        type: 'ended',
        scope: 'leg',
        legId,
        agent,
        outcome: 'missed',
        durationSec: 20,
        talkSec: 4,
        at: t(21),
      });
      const events: CallEvent[] = [
        { ...base, type: 'ringing', legId: parent, at: t(0) },
        { ...base, type: 'ringing', legId: a, agent: '117', at: t(1) },
        { ...base, type: 'ringing', legId: b, agent: '204', at: t(1) },
        cancelled(a, '117'),
        cancelled(b, '204'),
        {
          ...base,
          type: 'ended',
          legId: parent,
          outcome: 'missed',
          durationSec: 25,
          talkSec: 0,
          at: t(25),
        },
      ];
      expect(await foldAnyOrder(events)).toMatchObject({
        status: 'ended',
        outcome: 'missed',
        legs: [],
        durationSec: 25,
        talkSec: 0,
      });
      // Answered: the leg that was answered counts (its end carries no duration here), the one
      // cancelled does not.
      const answered = await foldAnyOrder([
        { ...base, type: 'ringing', legId: parent, at: t(0) },
        { ...base, type: 'answered', legId: a, agent: '117', at: t(5) },
        cancelled(b, '204'),
        {
          ...base,
          type: 'ended',
          scope: 'leg',
          legId: a,
          outcome: 'answered',
          talkSec: 30,
          at: t(35),
        },
        { ...base, type: 'ended', legId: parent, durationSec: 36, at: t(36) },
      ]);
      expect(answered).toMatchObject({ status: 'ended', durationSec: 36, talkSec: 30 });
    });

    it('an end with scope leg but no leg id, or scope call, ends the call', () => {
      const id = hex();
      const ring: CallEvent = { type: 'ringing', callId: id, legId: hex(), agent: '117' };
      for (const end of [
        { type: 'ended', callId: id, scope: 'leg', outcome: 'missed' },
        { type: 'ended', callId: id, legId: hex(), scope: 'call', outcome: 'missed' },
      ] satisfies CallEvent[])
        expect(foldCall([stored(ring), stored(end)], ctx)).toMatchObject({
          status: 'ended',
          outcome: 'missed',
        });
    });

    it('orders legs by time, not id: transfers, the last agent and the final word follow', async () => {
      // The first leg's id sorts after the second's: an id order would turn the call around.
      const first = `f${randomBytes(8).toString('hex')}`;
      const second = `0${randomBytes(8).toString('hex')}`;
      const callId = hex();
      const rec = await foldAnyOrder([
        { type: 'answered', callId, legId: first, agent: '117', answeredAt: t(5), at: t(5) },
        {
          type: 'ended',
          callId,
          legId: first,
          scope: 'leg',
          agent: '117',
          outcome: 'answered',
          providerStatus: 'first-done',
          durationSec: 15,
          at: t(20),
        },
        {
          type: 'answered',
          callId,
          legId: second,
          agent: '204',
          transferKind: 'blind',
          at: t(21),
        },
        {
          type: 'ended',
          callId,
          legId: second,
          scope: 'leg',
          agent: '204',
          outcome: 'answered',
          providerStatus: 'second-done',
          durationSec: 40,
          endedAt: t(61),
        },
      ]);
      expect(rec).toMatchObject({
        status: 'ended',
        agent: '204',
        providerStatus: 'second-done',
        endedAt: t(61),
        durationSec: 55,
        legs: [
          { legId: first, agent: '117', durationSec: 15 },
          { legId: second, agent: '204', durationSec: 40 },
        ],
        transfers: [{ kind: 'blind', fromAgent: '117', toAgent: '204' }],
      });
    });

    it("the call's own end is the final word over a leg's that ends in the same second", async () => {
      // Twilio's times are whole seconds: the dialed leg is busy and the parent completes at once.
      // Whichever CallSid sorts higher, the parent's end speaks for the call.
      for (const [parent, leg] of [
        [`0${hex()}`, `f${hex()}`],
        [`f${hex()}`, `0${hex()}`],
      ] as const) {
        const base = { callId: parent, direction: 'inbound' as const };
        const rec = await foldAnyOrder([
          { ...base, type: 'ringing', legId: parent, at: t(0) },
          { ...base, type: 'ringing', legId: leg, agent: 'alice', at: t(1) },
          {
            ...base,
            type: 'ended',
            scope: 'leg',
            legId: leg,
            agent: 'alice',
            outcome: 'busy',
            providerStatus: 'busy',
            endedAt: t(10),
          },
          {
            ...base,
            type: 'ended',
            scope: 'call',
            legId: parent,
            outcome: 'missed',
            providerStatus: 'completed',
            endedAt: t(10),
          },
        ]);
        expect(rec).toMatchObject({
          status: 'ended',
          outcome: 'missed',
          providerStatus: 'completed',
          agent: 'alice',
        });
      }
    });

    it("an end without a time leaves the others' times in force: the agent is who answered", async () => {
      // Simultaneous ring: bob answers, alice's phone is cancelled; alice's leg id sorts highest
      // and the parent's end carries no time. A leg id order would make alice the agent.
      const [parent, alice, bob] = [`8${hex()}`, `f${hex()}`, `0${hex()}`];
      const base = { callId: parent, direction: 'inbound' as const };
      const rec = await foldAnyOrder([
        { ...base, type: 'ringing', legId: parent, at: t(0) },
        { ...base, type: 'ringing', legId: alice, agent: 'alice', at: t(1) },
        { ...base, type: 'ringing', legId: bob, agent: 'bob', at: t(1) },
        { ...base, type: 'answered', legId: bob, agent: 'bob', at: t(6) },
        {
          ...base,
          type: 'ended',
          scope: 'leg',
          legId: alice,
          agent: 'alice',
          outcome: 'missed',
          providerStatus: 'canceled',
          at: t(6),
        },
        {
          ...base,
          type: 'ended',
          scope: 'leg',
          legId: bob,
          agent: 'bob',
          outcome: 'answered',
          providerStatus: 'completed',
          durationSec: 30,
          at: t(36),
        },
        { ...base, type: 'ended', legId: parent, outcome: 'missed', providerStatus: 'completed' },
      ]);
      expect(rec).toMatchObject({
        status: 'ended',
        outcome: 'answered',
        agent: 'bob',
        endedAt: t(36),
        legs: [{ legId: bob, agent: 'bob', durationSec: 30 }],
      });
      // Among leg ends alone, too: the latest by time is the final word, not the highest id.
      const legsOnly = await foldAnyOrder([
        { ...base, type: 'ringing', legId: alice, agent: 'alice', at: t(1) },
        { ...base, type: 'ringing', legId: bob, agent: 'bob', at: t(1) },
        {
          ...base,
          type: 'ended',
          scope: 'leg',
          legId: alice,
          agent: 'alice',
          outcome: 'missed',
          at: t(6),
        },
        {
          ...base,
          type: 'ended',
          scope: 'leg',
          legId: bob,
          agent: 'bob',
          outcome: 'busy',
          at: t(9),
        },
        { ...base, type: 'ended', scope: 'leg', legId: parent, providerStatus: 'completed' },
      ]);
      expect(legsOnly).toMatchObject({ status: 'ended', outcome: 'busy', agent: 'bob' });
    });

    it('an answer without a time goes among the timed ones by leg id; their times still hold', async () => {
      // alice answered, then bob (by the provider's times, against their ids); carol's answer
      // says no time, and her id places her first. The latest answer is bob's.
      const [alice, bob, carol] = [`5${hex()}`, `3${hex()}`, `1${hex()}`];
      const callId = hex();
      const rec = await foldAnyOrder([
        { type: 'answered', callId, legId: alice, agent: 'alice', at: t(5) },
        { type: 'answered', callId, legId: bob, agent: 'bob', at: t(20) },
        { type: 'answered', callId, legId: carol, agent: 'carol' },
      ]);
      expect(rec).toMatchObject({
        status: 'in-progress',
        agent: 'bob',
        legs: [{ agent: 'carol' }, { agent: 'alice' }, { agent: 'bob' }],
      });
    });

    it('a lone recording (or analysis, or a relay close over only those) is incomplete, never a call', async () => {
      const callId = hex();
      const recording: CallEvent = {
        type: 'recording',
        callId,
        legId: hex(),
        at: t(90),
        recordings: ['https://example.com/r.mp3'],
      };
      const analysis: CallEvent = { type: 'analysis', callId, at: t(95), ai: { summary: 'hi' } };
      const routing = {
        targets: {
          crm: { deliverOn: 'ended' as const, settleSec: 0 },
          hook: { deliverOn: 'change' as const, settleSec: 0 },
        },
        routes: [{ targets: ['crm', 'hook'] }],
      };
      for (const events of [
        [recording],
        [analysis],
        [recording, analysis, { type: 'closed', callId }],
      ] satisfies CallEvent[][]) {
        const rec = await foldAnyOrder(events);
        expect(rec).toMatchObject({
          status: 'incomplete',
          outcome: null,
          closedBy: null,
          endReason: null,
          endedAt: null,
          answeredAt: null,
        });
        expect(dueTargets(rec, routing, new Date())).toEqual([]);
      }
      // A real event makes it a call, which keeps what came before it.
      const rec = foldCall(
        [recording, { type: 'ringing', callId, agent: '117' } satisfies CallEvent].map(stored),
        ctx,
      );
      expect(rec).toMatchObject({
        status: 'in-progress',
        recordings: ['https://example.com/r.mp3'],
      });
      expect(dueTargets(rec, routing, new Date()).map((d) => d.target)).toEqual(['hook']);
    });
  });
});
