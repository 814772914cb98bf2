// Folding is order-independent and idempotent: the events of every golden flow, shuffled or with
// repeats, fold into the same records. Plus the rules the samples hinge on.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { eventKey, foldCall } from '../../src/domain/fold.js';
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
});
