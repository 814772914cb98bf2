// A PBX that feeds the relay twice, through the WebAPI add-on and through its CRM template's
// journal (ReportCall), makes one call record per call: the journal joins the add-on's call
// (sources[].crm.joinCallsOf). Through the real pipeline, on a real SQLite file and the real
// PostgreSQL of the test run, with the add-on's own golden sample.

import { join } from 'node:path';
import type { CountryCode } from 'libphonenumber-js';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { flowRequests, readFlow } from '../../src/flows.js';
import type { CallRecord } from '../../src/domain/model.js';
import type { RawRequest } from '../../src/domain/request.js';
import { loadAdapterDir } from '../../src/ingest/adapter.js';
import { Pipeline } from '../../src/pipeline/pipeline.js';
import { PostgresStore } from '../../src/store/postgres/index.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import type { Store } from '../../src/store/types.js';
import { ADAPTERS, freshPostgresDatabase, tempDir } from '../support.js';

const adapters = loadAdapterDir(ADAPTERS);
// Outbound calls of extension 105 to 381629759787: 250917194513_46 (declined) and
// 250917195359_47 (answered; its `ai` event is left out here: the journal brings the summary).
const SAMPLE = readFlow(
  join(ADAPTERS, 'cases', '3cx', '3cx-v3-makecall-missed-then-answered-with-ai.json'),
);
const ANSWERED = '250917195359_47';
const ANSWERED_START = '2025-09-17T17:53:59.000Z'; // 19:53:59 in Prague

const addOnRequests = (): RawRequest[] =>
  flowRequests(SAMPLE, 'pbx').filter(
    (r) => r.kind === 'webhook' && !r.body.toString().includes('"event": "ai"'),
  );

const JOURNAL = {
  callType: 'Outbound',
  number: '381629759787',
  agent: '105',
  agentFirstName: 'Petr',
  agentLastName: 'Svoboda',
  // CallStartTimeUTC a second after the add-on's id says: the two clocks round apart.
  start: '20250917175400',
  end: '20250917175405',
  durationSec: '5',
  duration: '00:00:05',
  recordingUrl: 'https://pbx.example.com/recordings/105/250917195359.wav',
  transcription: '',
  summary: '',
  sentiment: '',
};

const journal = (over: Record<string, string> = {}): RawRequest => ({
  source: 'pbx-journal',
  kind: 'webhook',
  receivedAt: '2025-09-17T17:54:06.000Z',
  method: 'POST',
  query: '',
  contentType: 'application/json',
  headers: {},
  body: Buffer.from(JSON.stringify({ ...JOURNAL, ...over })),
});

const settings = (name: string, adapter: string, joinCallsOf?: string) => ({
  name,
  token: `${name}-token-0000`,
  adapter: adapters.get(adapter)!,
  timezone: 'Europe/Prague',
  defaultCountry: 'CZ' as CountryCode,
  ...(joinCallsOf
    ? { crm: { cacheSec: 300, answerWithinMs: 2000, joinCallsOf, joinWithinSec: 10 } }
    : {}),
});

const backends: [string, () => Promise<Store>][] = [
  ['sqlite', async () => new SqliteStore(join(tempDir(), 'relay.db'))],
  ['postgres', async () => PostgresStore.open(await freshPostgresDatabase(inject('pgUrl')))],
];

describe.each(backends)('journal joins the add-on call (%s)', (_name, open) => {
  let store: Store | undefined;
  afterEach(async () => {
    await store?.close();
    store = undefined;
  });

  /** A relay with the add-on's source and a journal source, the add-on's calls already in. */
  async function relay(joinCallsOf: string | null = 'pbx'): Promise<Pipeline> {
    store = await open();
    const p = new Pipeline(store, [
      settings('pbx', '3cx'),
      settings('pbx-journal', '3cx-crm-template', joinCallsOf ?? undefined),
    ]);
    for (const r of addOnRequests()) await p.ingest(r);
    await p.drain();
    return p;
  }

  const calls = async (): Promise<CallRecord[]> =>
    (await store!.listCalls({ limit: 100 }))
      .map((r) => r.record)
      .sort((a, b) => (a.callId < b.callId ? -1 : 1));

  it('a journal that says nothing new makes no second record', async () => {
    const p = await relay();
    const before = await calls();
    expect(before.map((c) => c.callId)).toEqual(['250917194513_46', ANSWERED]);
    const { id, result } = await p.ingest(journal());
    await p.drain();
    expect(result).toEqual({
      status: 'ignored',
      rule: 'joined',
      message: `joined to call ${ANSWERED} of source pbx, which has all this journal says`,
    });
    expect(await store!.getInbox(id)).toMatchObject({
      source: 'pbx-journal',
      provider: '3cx-crm-template',
      state: 'ignored',
      rule: 'joined',
    });
    expect(await calls()).toEqual(before);
    // Replayed, it is filed the same way.
    expect(await p.replay((await store!.getInbox(id))!)).toEqual(result);
    await p.drain();
    expect(await calls()).toEqual(before);
  });

  it("a journal with an AI summary adds it to the add-on's call, and replays the same", async () => {
    const p = await relay();
    const summary = 'The customer accepted the weekend pool discount.';
    const { id, result } = await p.ingest(
      journal({ summary, transcription: 'Hello, this is the call center...', sentiment: '5' }),
    );
    await p.drain();
    expect(result).toEqual({
      status: 'mapped',
      rule: 'joined',
      events: [
        {
          type: 'analysis',
          callId: ANSWERED,
          ai: { summary, transcription: 'Hello, this is the call center...', sentiment: 5 },
        },
      ],
    });
    // Filed under the add-on's source, mapped by the journal's adapter.
    const row = (await store!.getInbox(id))!;
    expect(row).toMatchObject({ source: 'pbx', provider: '3cx-crm-template', state: 'applied' });
    const after = await calls();
    expect(after.map((c) => c.callId)).toEqual(['250917194513_46', ANSWERED]);
    const answered = after[1]!;
    expect(answered).toMatchObject({
      source: 'pbx',
      provider: '3cx',
      startedAt: ANSWERED_START,
      agent: '105',
      outcome: 'answered',
      durationSec: 5,
      ai: { summary, sentiment: 5, hasTranscription: true },
      // The add-on's recording; the journal's own URL is not added: the add-on sends its own.
      recordings: ['https://api.3cx.eu/webapi/recording/250917195359_47-1-1.mp3'],
    });

    expect(await p.replay(row)).toEqual(result);
    await p.drain();
    expect(await store!.getInbox(id)).toMatchObject({ source: 'pbx', state: 'applied' });
    expect(await calls()).toEqual(after);
  });

  it('a journal of another agent, or one a minute off, is a call of its own', async () => {
    const p = await relay();
    const other = await p.ingest(journal({ agent: '106' }));
    const late = await p.ingest(journal({ start: '20250917175459', end: '20250917175504' }));
    await p.drain();
    expect(other.result).toMatchObject({ status: 'mapped', rule: 'report' });
    expect(late.result).toMatchObject({ status: 'mapped', rule: 'report' });
    expect((await calls()).map((c) => `${c.source} ${c.callId}`)).toEqual([
      'pbx 250917194513_46',
      `pbx ${ANSWERED}`,
      'pbx-journal 3cxrc-20250917175400-106-381629759787-outbound',
      'pbx-journal 3cxrc-20250917175459-105-381629759787-outbound',
    ]);
  });

  it('a journal before any add-on event is a call of its own (the known limit); replay joins what it can', async () => {
    store = await open();
    const p = new Pipeline(store, [
      settings('pbx', '3cx'),
      settings('pbx-journal', '3cx-crm-template', 'pbx'),
    ]);
    // The add-on was down: the journals come first.
    const plain = await p.ingest(journal());
    const withAi = await p.ingest(journal({ start: '20250917175402', summary: 'A summary' }));
    await p.drain();
    expect(plain.result).toMatchObject({ status: 'mapped', rule: 'report' });
    for (const r of addOnRequests()) await p.ingest(r);
    await p.drain();
    expect((await calls()).filter((c) => c.source === 'pbx-journal')).toHaveLength(2);
    // Replayed: the one with nothing to add joins and its record goes; the one with a summary
    // cannot move to the add-on's source, and stays a record of its own.
    expect(await p.replay((await store.getInbox(plain.id))!)).toMatchObject({
      status: 'ignored',
      rule: 'joined',
    });
    expect(await p.replay((await store.getInbox(withAi.id))!)).toMatchObject({
      status: 'mapped',
      rule: 'report',
    });
    await p.drain();
    expect((await calls()).map((c) => `${c.source} ${c.callId}`)).toEqual([
      'pbx 250917194513_46',
      `pbx ${ANSWERED}`,
      'pbx-journal 3cxrc-20250917175402-105-381629759787-outbound',
    ]);
  });

  it('a journal without an agent (missed in a queue) joins the one call of its number, direction and time', async () => {
    const p = await relay();
    const before = await calls();
    // [Agent] empty, or unfilled on a PBX that lacks it: either way no agent.
    for (const agent of ['', '[Agent]']) {
      const { result } = await p.ingest(journal({ agent, start: '20250917175401' }));
      await p.drain();
      expect(result, agent).toEqual({
        status: 'ignored',
        rule: 'joined',
        message: `joined to call ${ANSWERED} of source pbx, which has all this journal says`,
      });
    }
    expect(await calls()).toEqual(before);
    // The other direction (a missed inbound call from that number) is another call.
    const inbound = await p.ingest(journal({ agent: '', callType: 'Missed' }));
    await p.drain();
    expect(inbound.result).toMatchObject({ status: 'mapped', rule: 'report' });
  });

  it('a journal without an agent joins no call when two of its number, direction and time are there', async () => {
    const p = await relay();
    // A second outbound call to the same number at the same second, by extension 106.
    for (const r of addOnRequests().filter((x) => x.body.toString().includes(ANSWERED)))
      await p.ingest({
        ...r,
        body: Buffer.from(
          r.body
            .toString()
            .replaceAll('250917195359_47', '250917195359_48')
            .replaceAll('"user": "105"', '"user": "106"')
            .replaceAll('0bdb-88fd0000002f', '0bdb-88fd00000030'),
        ),
      });
    await p.drain();
    expect((await calls()).map((c) => `${c.callId} ${c.agent}`)).toEqual([
      '250917194513_46 105',
      `${ANSWERED} 105`,
      '250917195359_48 106',
    ]);
    const { result } = await p.ingest(journal({ agent: '' }));
    await p.drain();
    expect(result).toMatchObject({ status: 'mapped', rule: 'report' });
    expect((await calls()).filter((c) => c.source === 'pbx-journal')).toHaveLength(1);
    // With its agent, it still finds its own.
    const own = await p.ingest(journal({ agent: '106' }));
    expect(own.result).toMatchObject({
      status: 'ignored',
      message: expect.stringContaining('250917195359_48'),
    });
  });

  it('without joinCallsOf, the journal is a call of its own', async () => {
    const p = await relay(null);
    const { result } = await p.ingest(journal({ summary: 'A summary' }));
    await p.drain();
    expect(result).toMatchObject({ status: 'mapped', rule: 'report' });
    const journaled = (await calls()).find((c) => c.source === 'pbx-journal');
    expect(journaled).toMatchObject({
      callId: '3cxrc-20250917175400-105-381629759787-outbound',
      provider: '3cx-crm-template',
      externalE164: '+381629759787',
      ai: { summary: 'A summary' },
    });
    expect((await calls()).filter((c) => c.source === 'pbx')[1]!.ai).toBeNull();
  });
});
