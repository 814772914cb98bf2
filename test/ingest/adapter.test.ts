// Adapter behaviour beyond the golden cases: the documented example works as documented,
// ignore rules, coercion errors, what unmapped requests say, which events may lack a call id,
// and the shipped 3CX adapter's start time guessed from the call id.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EVENT_TYPES, LEG_JOINED_TYPES, RELAY_EVENT_TYPES } from '../../src/domain/constants.js';
import { joinsByLeg } from '../../src/domain/refold.js';
import { compileAdapter, loadAdapter, type CompiledAdapter } from '../../src/ingest/adapter.js';
import { runFlow } from '../../src/flows.js';
import { ROOT, tempDir } from '../support.js';
import type { RawRequest } from '../../src/domain/request.js';

function adapterFrom(yaml: string): CompiledAdapter {
  const file = join(tempDir(), 'a.yaml');
  writeFileSync(file, yaml);
  const a = loadAdapter(file);
  return compileAdapter(a, {
    name: 'src',
    timezone: a.def.defaults.timezone ?? 'UTC',
    defaultCountry: a.def.defaults.defaultCountry as never,
  });
}

const post = (body: string, contentType = 'application/json'): RawRequest => ({
  source: 'src',
  kind: 'webhook',
  receivedAt: '2026-01-01T00:00:00.000Z',
  method: 'POST',
  query: '',
  contentType,
  headers: {},
  body: Buffer.from(body),
});

describe('the example in docs/adapters.md', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'adapters.md'), 'utf8');
  const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)![1]!;
  const acme = adapterFrom(yaml);

  it('maps, ignores and refuses as the guide says', async () => {
    expect(
      await acme.map(
        post(
          '{"Status":"completed","Call_ID":"a1","Direction":"in","From":"030 1234567","Extension":"12","Duration":"58","Recording_URL":"https://x/1.mp3"}',
        ),
      ),
    ).toEqual({
      status: 'mapped',
      rule: 'ended',
      events: [
        {
          type: 'ended',
          callId: 'a1',
          externalNumber: '030 1234567',
          externalE164: '+49301234567',
          agent: '12',
          outcome: 'answered',
          durationSec: 58,
          recordings: ['https://x/1.mp3'],
        },
      ],
    });
    expect(await acme.map(post('{"test":true}'))).toEqual({
      status: 'ignored',
      rule: 'ping',
      message: 'ignored by rule ping',
    });
    expect(await acme.map(post('{"status":"on-hold","call_id":"a1"}'))).toMatchObject({
      status: 'unmapped',
      code: 'RELAY_ERR_UNKNOWN_EVENT',
      message: expect.stringContaining('fields: status, call_id'),
    });
  });
});

describe('the emit example in docs/adapters.md', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'adapters.md'), 'utf8');
  const yaml = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => m[1]!)
    .find((y) => y.startsWith('adapter: acme-transfers'))!;

  it('makes the end of one leg and the answer of the next of one transfer', async () => {
    const a = adapterFrom(yaml);
    const body = { event: 'call.transferred', timestamp: 1281427337, data: { id: 9 } };
    expect(
      await a.map(
        post(JSON.stringify({ ...body, data: { id: 9, from_user: 'u1', to_user: 'u2' } })),
      ),
    ).toEqual({
      status: 'mapped',
      rule: 'transferred',
      events: [
        {
          type: 'ended',
          callId: '9',
          legId: 'u1',
          scope: 'leg',
          transferred: true,
          at: '2010-08-10T08:02:17.000Z',
        },
        { type: 'answered', callId: '9', legId: 'u2', agent: 'u2', at: '2010-08-10T08:02:17.000Z' },
      ],
    });
    expect(
      await a.map(post(JSON.stringify({ ...body, data: { id: 9, from_user: 'u1' } }))),
    ).toMatchObject({ status: 'mapped', events: [{ type: 'ended', legId: 'u1' }] });
  });
});

describe('field coercion', () => {
  const a = adapterFrom(
    `adapter: t\nversion: 1\nfields:\n  callId: id\nevents:\n  - name: e\n    when: "true"\n    type: ended\n    fields:\n      durationSec: d\n      transferred: tr\n      direction: dir\n`,
  );

  it('coerces what is unambiguous and names the field otherwise', async () => {
    expect(await a.map(post('{"id":1,"d":"58","tr":"True","dir":"Inbound"}'))).toMatchObject({
      status: 'mapped',
      events: [{ callId: '1', durationSec: 58, transferred: true, direction: 'inbound' }],
    });
    expect(await a.map(post('{"id":"x","d":"soon"}'))).toEqual({
      status: 'unmapped',
      rule: 'e',
      code: 'RELAY_ERR_MAPPING_FAILED',
      message: 'rule e, field durationSec: expected a number, got "soon"',
    });
    // A duration no call has (1e308, or a timestamp sent as seconds) is refused, not folded.
    for (const d of ['1e308', '1700000000'])
      expect(await a.map(post(`{"id":"x","d":${d}}`)), d).toMatchObject({
        status: 'unmapped',
        code: 'RELAY_ERR_MAPPING_FAILED',
        message: expect.stringMatching(/durationSec.*at most 604800 seconds/),
      });
    expect(await a.map(post('{"id":"x","dir":"sideways"}'))).toMatchObject({
      status: 'unmapped',
      code: 'RELAY_ERR_MAPPING_FAILED',
      message: expect.stringMatching(/^rule e, field direction: /),
    });
    expect(await a.map(post('{"d":"1"}'))).toEqual({
      status: 'unmapped',
      rule: 'e',
      code: 'RELAY_ERR_MISSING_CALL_ID',
      message: 'rule e (ended) found no call id',
    });
    expect(await a.map(post('{"id":'))).toMatchObject({
      status: 'unmapped',
      code: 'RELAY_ERR_UNPARSEABLE_BODY',
    });
  });
});

describe('time fields', () => {
  const a = adapterFrom(
    [
      'adapter: t',
      'version: 1',
      'fields:',
      '  callId: id',
      '  at: $toUtc(ts)',
      "  startedAt: $toUtc(start, ['yyyyMMddHHmmss', 'd.M.yyyy H:mm'])",
      // $string is outside the fast path: the same refusal must come through jsonata.
      '  answeredAt: $toUtc($string(picked))',
      '  endedAt: end',
      'events:',
      '  - name: e',
      '    when: "true"',
      '    type: ended',
      '',
    ].join('\n'),
  );
  const map = (body: Record<string, unknown>): ReturnType<CompiledAdapter['map']> =>
    a.map(post(JSON.stringify({ id: 'c1', ...body })));

  it('reads what it can, and leaves out a time that is not given', async () => {
    expect(
      await map({
        ts: 'Tue, 10 Aug 2010 08:02:17 +0000',
        start: '6.12.2026 11:15',
        picked: 1281427337,
        end: '2010-08-10T08:05:00Z',
      }),
    ).toEqual({
      status: 'mapped',
      rule: 'e',
      events: [
        {
          type: 'ended',
          callId: 'c1',
          at: '2010-08-10T08:02:17.000Z',
          startedAt: '2026-12-06T11:15:00.000Z',
          answeredAt: '2010-08-10T08:02:17.000Z',
          endedAt: '2010-08-10T08:05:00Z',
        },
      ],
    });
    expect(await map({ ts: '', start: null })).toEqual({
      status: 'mapped',
      rule: 'e',
      events: [{ type: 'ended', callId: 'c1' }],
    });
  });

  it('makes the request unmapped when a time does not parse, naming the field and the text', async () => {
    const unmapped = (message: string): unknown => ({
      status: 'unmapped',
      rule: 'e',
      code: 'RELAY_ERR_MAPPING_FAILED',
      message,
    });
    expect(await map({ ts: 'tomorrow at noon' })).toEqual(
      unmapped(
        'rule e, field at: $toUtc: "tomorrow at noon" is not a time (read as ISO, SQL, RFC 2822, HTTP or Unix seconds)',
      ),
    );
    expect(await map({ start: '2026-12-06' })).toEqual(
      unmapped(
        `rule e, field startedAt: $toUtc: "2026-12-06" is not a time (read as 'yyyyMMddHHmmss', 'd.M.yyyy H:mm')`,
      ),
    );
    expect(await map({ picked: `${'9'.repeat(8)}x${'9'.repeat(100)}` })).toEqual(
      unmapped(
        `rule e, field answeredAt: $toUtc: "${'9'.repeat(8)}x${'9'.repeat(31)}…" is not a time (read as ISO, SQL, RFC 2822, HTTP or Unix seconds)`,
      ),
    );
    // A provider's time put into a time field as it came.
    expect(await map({ end: 'Tue, 10 Aug 2010 08:02:17 +0000' })).toEqual(
      unmapped(
        'rule e, field endedAt: "Tue, 10 Aug 2010 08:02:17 +0000" is not an ISO time with an offset (read it with $toUtc)',
      ),
    );
  });
});

describe('rules that make several events (emit)', () => {
  const a = adapterFrom(
    [
      'adapter: t',
      'version: 1',
      'fields:',
      '  callId: data.id',
      'events:',
      '  - name: transferred',
      "    when: event = 'call.transferred'",
      '    fields:',
      '      at: $toUtc(timestamp)',
      '    emit:',
      '      - type: ended',
      '        fields: { legId: data.from_leg, transferred: "true", scope: "\'LEG\'" }',
      '      - type: answered',
      '        when: $exists(data.to_leg)',
      '        fields: { legId: data.to_leg, agent: data.to_user }',
      '  - name: recording',
      "    when: event = 'recording'",
      '    type: recording',
      '    fields: { callId: "undefined", legId: leg, recordings: url }',
      '',
    ].join('\n'),
  );

  it('makes each event in order, sharing the rule and adapter fields', async () => {
    const body = {
      event: 'call.transferred',
      timestamp: 1767225600,
      data: { id: 7, from_leg: 'a', to_leg: 'b', to_user: 'Ann' },
    };
    expect(await a.map(post(JSON.stringify(body)))).toEqual({
      status: 'mapped',
      rule: 'transferred',
      events: [
        {
          type: 'ended',
          callId: '7',
          legId: 'a',
          transferred: true,
          scope: 'leg',
          at: '2026-01-01T00:00:00.000Z',
        },
        { type: 'answered', callId: '7', legId: 'b', agent: 'Ann', at: '2026-01-01T00:00:00.000Z' },
      ],
    });
    // An event whose own condition does not hold is left out; none left: ignored, saying why.
    const { to_leg: _, ...noTo } = body.data;
    expect(await a.map(post(JSON.stringify({ ...body, data: noTo })))).toMatchObject({
      status: 'mapped',
      events: [{ type: 'ended', legId: 'a' }],
    });
  });

  it('names the emitted event a field of which is wrong', async () => {
    const body = { event: 'call.transferred', data: { id: 7, from_leg: 'a', to_leg: { x: 1 } } };
    expect(await a.map(post(JSON.stringify(body)))).toEqual({
      status: 'unmapped',
      rule: 'transferred',
      code: 'RELAY_ERR_MAPPING_FAILED',
      message: 'rule transferred, emit 1, field legId: expected a text value, got an object',
    });
  });

  it('lets through without a call id exactly the events the store joins by their leg', async () => {
    // One truth (domain/constants.ts): what the adapter accepts with only a leg id is what the
    // store then joins to the leg's call; anything else would wait for a call that never comes.
    const types = EVENT_TYPES.filter(
      (t) => t !== 'originated' && !(RELAY_EVENT_TYPES as readonly string[]).includes(t),
    );
    const byType = adapterFrom(
      [
        'adapter: t',
        'version: 1',
        'fields: { legId: leg }',
        'events:',
        ...types.flatMap((t) => [`  - name: ${t}`, `    when: kind = '${t}'`, `    type: ${t}`]),
        '',
      ].join('\n'),
    );
    for (const t of types) {
      const r = await byType.map(post(JSON.stringify({ kind: t, leg: 'CA0f3e' })));
      expect([t, r.status]).toEqual([t, LEG_JOINED_TYPES.has(t) ? 'mapped' : 'unmapped']);
      if (r.status === 'mapped') expect(r.events.every(joinsByLeg)).toBe(true);
    }
    expect([...LEG_JOINED_TYPES].sort()).toEqual(['analysis', 'recording']);
  });

  it("is what the canonical model's callId row says may go without a call id", () => {
    const doc = readFileSync(join(ROOT, 'docs', 'canonical-model.md'), 'utf8');
    const row = /^\| `callId` \|(.*)$/m.exec(doc)![1]!;
    for (const t of ['originated', ...LEG_JOINED_TYPES]) expect(row).toContain(`\`${t}\``);
  });

  it('lets a recording name only its leg, and nothing else go without a call id', async () => {
    expect(await a.map(post('{"event":"recording","leg":"b","url":"https://r/1.mp3"}'))).toEqual({
      status: 'mapped',
      rule: 'recording',
      events: [{ type: 'recording', legId: 'b', recordings: ['https://r/1.mp3'] }],
    });
    expect(await a.map(post('{"event":"recording","url":"https://r/1.mp3"}'))).toMatchObject({
      status: 'unmapped',
      code: 'RELAY_ERR_MISSING_CALL_ID',
    });
    const body = { event: 'call.transferred', data: { from_leg: 'a' } };
    expect(await a.map(post(JSON.stringify(body)))).toMatchObject({
      status: 'unmapped',
      code: 'RELAY_ERR_MISSING_CALL_ID',
      message: 'rule transferred, emit 0 (ended) found no call id',
    });
  });
});

describe('the shipped 3CX adapter: the start inside the call id', () => {
  const threecx = loadAdapter(join(ROOT, 'adapters', '3cx.yaml'));
  const a = compileAdapter(threecx, {
    name: '3cx',
    timezone: 'Europe/Prague',
    defaultCountry: 'CZ',
  });
  const end = (id: string): string =>
    JSON.stringify({
      Event: 'incoming',
      Callerid: '420774852629',
      User: '117',
      Finishtype: 'Ok',
      Transfer: 'False',
      Did: '',
      Duration: '00:12',
      Id: id,
    });

  it('reads it when the id begins with a time', async () => {
    expect(await a.map(post(end('230307142318_40-1')))).toMatchObject({
      status: 'mapped',
      events: [{ type: 'ended', callId: '230307142318_40', startedAt: '2023-03-07T13:23:18.000Z' }],
    });
  });

  // The id is only a hint: a PBX whose ids are no time (hour 30 here) must still have its calls.
  it('maps a request whose id is not a time, leaving the start out', async () => {
    const r = await a.map(post(end('260701300000_1-1')));
    expect(r).toMatchObject({
      status: 'mapped',
      rule: 'ended',
      events: [{ type: 'ended', callId: '260701300000_1', legId: '260701300000_1-1' }],
    });
    expect(r.status === 'mapped' && r.events[0]).not.toHaveProperty('startedAt');

    // Through the pipeline: one call, started when the relay got its first request.
    const { steps, calls } = await runFlow(
      {
        name: 'id-not-a-time',
        requests: [
          {
            method: 'POST',
            contentType: 'application/json',
            body: '{"Event":"ringing","Callerid":"420774852629","User":"117","Usertype":"ext","Did":"","Id":"261399250000_7-0"}',
          },
          { method: 'POST', contentType: 'application/json', body: end('261399250000_7-1') },
        ],
      },
      threecx,
      { timezone: 'Europe/Prague', defaultCountry: 'CZ' },
    );
    expect(steps.map((s) => s.result.status)).toEqual(['mapped', 'mapped']);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({
      callId: '261399250000_7',
      outcome: 'answered',
      startedAt: '2026-01-01T00:00:00.000Z',
    });
  });
});
