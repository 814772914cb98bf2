// Pipedrive delivery through a real relay into a fake Pipedrive: one call log per call after the
// settle window, person and user found, the recording streamed from the PBX and uploaded, later
// arrivals as a note, missed-call activities once, lost creates found instead of duplicated.

import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import type { Flow } from '../../flows.js';
import { startRelay, type Relay } from '../../runtime.js';
import { FakePbx } from '../../../test/fakes/pbx.js';
import { FakePipedrive } from './fake.js';
import {
  goldenCases,
  sameParty,
  sendFlowRequest,
  settleDeliveries,
  tempDir,
  writeRelayYaml,
  type SourceSettingsMap,
} from '../../../test/support.js';

const PD_TOKEN = 'pd-test-token-0123456789';
const PBX_TOKEN = 'pbx-secret-token';
type Req = Flow['requests'][number];

async function setup(
  o: {
    target?: string;
    source?: string;
    settle?: number;
    sources?: SourceSettingsMap;
  } = {},
): Promise<{
  pd: FakePipedrive;
  pbx: FakePbx;
  relay: Relay;
  send: (source: string, r: Req) => Promise<void>;
  settle: () => Promise<void>;
  /** relay.yaml, for a test that names its places. */
  config: string;
}> {
  const pd = await new FakePipedrive(PD_TOKEN).start();
  const pbx = await new FakePbx(PBX_TOKEN).start();
  const config = writeRelayYaml(tempDir(), {
    sources: o.sources,
    threecx:
      o.source?.replace('PBX_URL', pbx.url) ??
      `    recordings:\n      allowHosts: ["${pbx.url}"]\n      bearer: ${PBX_TOKEN}\n`,
    more: `targets:\n  - name: pipedrive\n    type: pipedrive\n    token: ${PD_TOKEN}\n    baseUrl: ${pd.url}\n    settleSec: ${o.settle ?? 0}\n${o.target ?? ''}`,
  });
  const relay = await startRelay(loadConfig(config, {}), undefined, {
    delivery: { pollMs: 20, backoff: { baseMs: 50, maxMs: 400 } },
  });
  const send = async (source: string, r: Flow['requests'][number]): Promise<void> => {
    const res = await sendFlowRequest(relay.port, source, r);
    if (res) expect(res.status).toBe(200);
  };
  const settle = (): Promise<void> => settleDeliveries(relay);
  return { pd, pbx, relay, send, settle, config };
}

const post = (body: string): Req => ({ method: 'POST', contentType: 'application/json', body });

describe('Pipedrive target', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  const open = async (
    o: Parameters<typeof setup>[0] = {},
  ): Promise<Awaited<ReturnType<typeof setup>>> => {
    const s = await setup(o);
    cleanup.push(
      () => s.pd.close(),
      () => s.pbx.close(),
      () => s.relay.close(),
    );
    return s;
  };

  it('in a dry run builds exactly the call log Pipedrive gets and sends nothing', async () => {
    const flow = goldenCases().find((c) => c.flow.name === '3cx-v2-incoming-answered')!.flow;
    const target = '    agents:\n      "202": alice@example.com\n';
    const real = await open({ settle: 0.5, target });
    real.pd.users.push({ id: 17, email: 'alice@example.com', name: 'Alice' });
    const dry = await open({ settle: 0.5, target: `${target}    dryRun: true\n` });
    for (const { send, settle } of [real, dry]) {
      for (const r of flow.requests) await send('3cx', r);
      await settle();
    }
    expect(dry.pd.log).toEqual([]);
    const [log] = [...real.pd.callLogs.values()];
    const attempts = await dry.relay.store.listAttempts({ limit: 50 });
    const sent = attempts.filter((a) => a.path === '/api/v1/callLogs');
    expect(sent).toHaveLength(1);
    // Ids differ (the sandbox makes its own), and the end is when each relay received it.
    const differ = ['activity_id', 'user_id', 'person_id', 'end_time'];
    const without = (b: Record<string, unknown>) =>
      Object.fromEntries(Object.entries(b).filter(([k]) => !differ.includes(k)));
    expect(without(JSON.parse(sent[0]!.sent!) as Record<string, unknown>)).toEqual(
      without(log!.body),
    );
    expect(attempts.map((a) => `${a.method} ${a.path}`).sort()).toEqual(
      real.pd.log.map((l) => `${l.method} ${l.path}`).sort(),
    );
  });

  it('notes on each call an agent Pipedrive has no user for; the call goes without one', async () => {
    const flow = goldenCases().find((c) => c.flow.name === '3cx-v2-incoming-answered')!.flow;
    const { pd, send, settle, relay } = await open({
      settle: 0.5,
      target: '    agents:\n      "202": bob@acme-ofice.cz\n',
    });
    for (const r of flow.requests) await send('3cx', r);
    await settle();
    const [log] = [...pd.callLogs.values()];
    expect(log!.body.user_id).toBeUndefined();
    const attempts = await relay.store.listAttempts({ limit: 50 });
    expect(attempts.filter((a) => a.method === null && a.error)).toEqual([
      expect.objectContaining({
        operation: "finding the agent's CRM user",
        result: 'ok',
        error: 'agent 202 (bob@acme-ofice.cz) is not a Pipedrive user: the call has no owner',
      }),
    ]);
  });

  it.each(goldenCases().map((c) => [`${c.adapter}/${c.flow.name}`, c] as const))(
    '%s ends as exactly its call logs',
    async (_n, c) => {
      // The whole flow must be in before the call log (which cannot be updated). A settle window
      // cannot promise that here: it counts from the call's end as the provider dates it, and a
      // recorded sample's end is long past. So Pipedrive takes no write (500s, retried) while the
      // flow arrives, and takes them again once it is folded and no attempt is under way. Reads
      // keep working: a read answered 500 is retried within the attempt (the client's quick
      // retries, about a second), which each case would wait out before Pipedrive could be back;
      // a failed create goes straight back to the relay's schedule (here 50-400 ms).
      const { pd, relay, send, settle } = await open({ sources: { [c.adapter]: c.flow.source } });
      pd.setChaos({ match: ['POST '], fail: 1, lost: 0, seed: 1 });
      for (const r of c.flow.requests) await send(c.adapter, r);
      await relay.pipeline.drain();
      await relay.delivery.settle();
      pd.setChaos(undefined);
      await settle();
      const expected = c.flow.expect!.calls;
      expect(pd.callLogs.size).toBe(expected.length);
      for (const e of expected) {
        const log = [...pd.callLogs.values()].find((l) =>
          String(l.body.note).includes(`callrelay ${c.adapter}/${String(e.callId)}`),
        );
        expect(log, String(e.callId)).toBeDefined();
        expect(log!.body.outcome).toBe(
          { answered: 'connected', missed: 'no_answer', busy: 'busy' }[e.outcome as string],
        );
        const talk = e.outcome === 'answered' ? (e.talkSec ?? e.durationSec) : 0;
        if (typeof talk === 'number') expect(log!.body.duration).toBe(String(talk));
        if (e.startedAt)
          expect(log!.body.start_time).toBe(String(e.startedAt).slice(0, 19).replace('T', ' '));
        const party =
          e.direction === 'outbound' ? log!.body.to_phone_number : log!.body.from_phone_number;
        expect(
          sameParty(party, e.externalNumber),
          `${String(party)}: ${String(e.externalNumber)}`,
        ).toBe(true);
        // Recording URLs are listed in the note (these samples' hosts are not allowed, so no
        // upload).
        for (const u of (e.recordings as string[] | undefined) ?? [])
          expect(log!.body.note).toContain(u.replace(/&/g, '&amp;'));
        expect(log!.recording).toBeUndefined();
      }
      expect(pd.tooManyRequests).toBe(0);
    },
  );

  it('finds the person and the user, streams the recording from the PBX into the call log', async () => {
    const { pd, pbx, relay, send, settle } = await open({
      target: '    agents:\n      "117": bob@example.com\n',
    });
    pd.users.push({ id: 7, email: 'bob@example.com', name: 'Bob' });
    const near = pd.addPerson('Near', ['+420 774 852 620']);
    const jana = pd.addPerson('Jana', ['774852629']);
    const audio = Buffer.alloc(300_000, 7);
    pbx.files.set('/webapi/recording/260701100000_1-1-1.mp3', audio);
    const id = '260701100000_1';
    for (const body of [
      `{"Event":"incomingcall_started","Callerid":"420774852629","User":"117","Trtype":"NotDef","Did":"","Id":"${id}-1"}`,
      `{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:12","Id":"${id}-1"}`,
      `{"Event":"recording","FileUrls":["${pbx.url}/webapi/recording/${id}-1-1.mp3"],"Id":"${id}-1"}`,
    ])
      await send('3cx', post(body));
    await settle();
    expect(pd.callLogs.size).toBe(1);
    const [log] = [...pd.callLogs.values()];
    expect(log!.body).toMatchObject({
      person_id: jana,
      user_id: 7,
      outcome: 'connected',
      from_phone_number: '+420774852629',
      duration: '12',
    });
    expect(log!.body.person_id).not.toBe(near);
    expect(log!.recording).toMatchObject({ filename: `${id}-1-1.mp3`, contentType: 'audio/mpeg' });
    expect(log!.recording!.bytes.equals(audio)).toBe(true);
    expect(pbx.requests.every((r) => r.authorization === `Bearer ${PBX_TOKEN}`)).toBe(true);
    // The attempts show the PBX fetch and the upload, in the order they happened.
    const ops = (await relay.store.listAttempts({ limit: 50 }))
      .reverse()
      .map((a) => `${a.operation} ${a.status}`);
    expect(ops).toContain('fetching the recording from the PBX 200');
    expect(ops.indexOf('fetching the recording from the PBX 200')).toBeLessThan(
      ops.findIndex((o) => o.startsWith('uploading')),
    );
  });

  it('logs a shared number on the person made first and names the others in the note', async () => {
    const { pd, send, settle } = await open();
    // A shared office line stored three ways; the person made first is not the one the E.164
    // search finds. A look-alike from Slovakia (+421) must never be listed.
    const founder = pd.addPerson('Eva Founder', ['774 852 629']);
    const reception = pd.addPerson('Reception', ['+420 774 852 629']);
    const sales = pd.addPerson('Petr Sales', ['420774852629']);
    const slovak = pd.addPerson('Look-alike', ['+421 774 852 629']);
    await send(
      '3cx',
      post(
        '{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:12","Id":"260701100000_21-1"}',
      ),
    );
    await settle();
    const [log] = [...pd.callLogs.values()];
    expect(log!.body.person_id).toBe(founder);
    expect(pd.activities.map((a) => a.person_id)).toEqual([founder]);
    expect(log!.body.note).toContain(
      `<b>Also on this number:</b> Reception (id ${reception}), Petr Sales (id ${sales})`,
    );
    expect(log!.body.note).not.toContain(`id ${slovak}`);
    expect(log!.body.note).not.toContain('Look-alike');
  });

  it('uploads a recording whose URL name is hostile or malformed under a safe name', async () => {
    const { pd, pbx, send, settle } = await open();
    const path = '/r/bad%E0%A4%A%0d%0aX-Injected:%201.mp3';
    pbx.files.set(path, Buffer.from('ID3 audio'));
    const id = '260701100000_7';
    for (const body of [
      `{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:12","Id":"${id}-1"}`,
      `{"Event":"recording","FileUrls":["${pbx.url}${path}"],"Id":"${id}-1"}`,
    ])
      await send('3cx', post(body));
    await settle();
    const [log] = [...pd.callLogs.values()];
    expect(log!.recording, 'uploaded').toBeDefined();
    expect(log!.recording!.filename).toMatch(/^bad.*\.mp3$/);
    expect(log!.recording!.filename).not.toMatch(/[\r\n:"]/);
    expect(Object.keys(log!.recording!.headers).sort()).toEqual([
      'content-disposition',
      'content-type',
    ]);
  });

  it('a recording the PBX will not give costs that recording only: the call log is delivered', async () => {
    // The PBX answers with a file over recordings.maxMB: never retried, never uploaded.
    const { pd, pbx, relay, send, settle } = await open({
      source: `    recordings:\n      allowHosts: ["PBX_URL"]\n      bearer: ${PBX_TOKEN}\n      maxMB: 0.001\n`,
    });
    pbx.files.set('/r/big.mp3', Buffer.alloc(10_000, 1));
    // The same file streamed without Content-Length: found too big only during the upload.
    pbx.files.set('/r/streamed.mp3', Buffer.alloc(10_000, 1));
    pbx.chunked.add('/r/streamed.mp3');
    for (const [id, file] of [
      ['260701100000_8', 'big.mp3'],
      ['260701100000_9', 'streamed.mp3'],
    ] as const)
      for (const body of [
        `{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:12","Id":"${id}-1"}`,
        `{"Event":"recording","FileUrls":["${pbx.url}/r/${file}"],"Id":"${id}-1"}`,
      ])
        await send('3cx', post(body));
    await settle();
    expect(pd.callLogs.size).toBe(2);
    for (const log of pd.callLogs.values()) expect(log.recording).toBeUndefined();
    const ds = await relay.store.listDeliveries({ limit: 5 });
    expect(ds).toHaveLength(2);
    for (const d of ds) {
      expect(d.state).toBe('done');
      expect(d.remote.uploadFailed).toMatch(/over recordings\.maxMB/);
    }
    // Each file was fetched once: a recording too big is no reason to try again.
    expect(pbx.requests.filter((r) => r.path.startsWith('/r/'))).toHaveLength(2);
  });

  it('gets the same normalised numbers as HubSpot: the DID in E.164, never an extension', async () => {
    const { pd, send, settle } = await open();
    for (const [id, did] of [
      ['260701100000_11', 'DID-420222000320'],
      ['260701100000_12', ''],
    ])
      await send(
        '3cx',
        post(
          `{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"${did}","Duration":"00:12","Id":"${id}-1"}`,
        ),
      );
    await settle();
    const to = [...pd.callLogs.values()].map((l) => l.body.to_phone_number).sort();
    expect(to).toEqual(['+420222000320', 'unknown']);
  });

  it('waits the settle window, so a recording that comes soon after the end is in the one call log', async () => {
    const { pd, pbx, send, settle } = await open({ settle: 1 });
    pbx.files.set('/r/a.mp3', Buffer.from('ID3 audio'));
    const id = '260701100000_2';
    await send(
      '3cx',
      post(
        `{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:05","Id":"${id}-1"}`,
      ),
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(pd.callLogs.size).toBe(0);
    await send(
      '3cx',
      post(`{"Event":"recording","FileUrls":["${pbx.url}/r/a.mp3"],"Id":"${id}-1"}`),
    );
    await new Promise((r) => setTimeout(r, 1200));
    await settle();
    expect(pd.callLogs.size).toBe(1);
    expect([...pd.callLogs.values()][0]!.recording?.bytes.toString()).toBe('ID3 audio');
  });

  it('puts what arrives after the call log into a note on the person; never fetches from other hosts', async () => {
    const { pd, pbx, send, settle } = await open({
      source: '    recordings:\n      allowHosts: [pbx.example.com]\n',
    });
    const person = pd.addPerson('Jana', ['+420774852629']);
    const id = '260701100000_3';
    await send(
      '3cx',
      post(
        `{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:05","Id":"${id}-1"}`,
      ),
    );
    await settle();
    expect(pd.callLogs.size).toBe(1);
    await send(
      '3cx',
      post(`{"Event":"recording","FileUrls":["${pbx.url}/r/late.mp3"],"Id":"${id}-1"}`),
    );
    await send(
      '3cx',
      post(
        `{"event":"ai","id":"${id}-1","summary":"Wants a quote for 40 seats.","transcription":"...","sentiment_score":"4"}`,
      ),
    );
    await settle();
    expect(pd.callLogs.size).toBe(1);
    expect(pd.notes.length).toBeGreaterThanOrEqual(1);
    const text = pd.notes.map((n) => n.content).join('\n');
    expect(text).toContain('Wants a quote for 40 seats.');
    expect(text).toContain(`${pbx.url}/r/late.mp3`);
    expect(pd.notes.every((n) => n.person_id === person)).toBe(true);
    expect(pbx.requests).toEqual([]); // 127.0.0.1 is not in this source's allowHosts
  });

  it('links only http(s) recordings in call logs and notes; others are shown as text', async () => {
    const { pd, pbx, send, settle } = await open();
    pd.addPerson('Jana', ['+420774852629']);
    pbx.files.set('/r/b.mp3', Buffer.from('ID3 audio'));
    const id = '260701100000_4';
    const call = (extra: object): Req =>
      post(
        JSON.stringify({
          Event: 'incoming',
          Callerid: '420774852629',
          User: '117',
          Finishtype: 'Ok',
          Duration: '00:05',
          Id: `${id}-1`,
          ...extra,
        }),
      );
    await send('3cx', call({ FileUrls: ['javascript:alert(document.domain)//a.mp3'] }));
    await settle();
    await send(
      '3cx',
      post(
        JSON.stringify({
          Event: 'recording',
          Id: `${id}-1`,
          FileUrls: ['JAVASCRIPT:alert(2)', 'vbscript:msgbox(3)', `${pbx.url}/r/b.mp3`],
        }),
      ),
    );
    await settle();
    const log = [...pd.callLogs.values()][0]!;
    const html = [String(log.body.note), ...pd.notes.map((n) => n.content)].join('\n');
    expect(html).toContain('<b>Recording:</b> javascript:alert(document.domain)//a.mp3');
    expect(html).toContain('<b>Recording:</b> JAVASCRIPT:alert(2)');
    expect(html).toContain('<b>Recording:</b> vbscript:msgbox(3)');
    const hrefs = [...html.matchAll(/href="([^"]*)"/g)].map((m) => m[1]);
    expect(hrefs).toEqual([`${pbx.url}/r/b.mp3`]);
  });

  it('creates one follow-up activity per missed call', async () => {
    const { pd, send, settle } = await open({ target: '    missedCallActivity: true\n' });
    const flow = goldenCases().find((c) => c.flow.name === '3cx-get-incoming-missed')!.flow;
    for (const r of flow.requests) await send('3cx', r);
    await settle();
    await send(
      '3cx',
      post(
        '{"Event":"recording","FileUrls":["https://pbx.example.com/r/x.mp3"],"Id":"230102104542_15-0"}',
      ),
    );
    await settle();
    const followUps = pd.activities.filter((a) => !a.done);
    expect(followUps).toHaveLength(1);
    expect(followUps[0]).toMatchObject({
      type: 'call',
      done: false,
      subject: 'Call back +420774852629',
    });
  });

  it('finds a call log whose create answer was lost instead of creating another', async () => {
    const { pd, send, settle, relay } = await open();
    pd.faults.push({ match: 'POST /api/v1/callLogs', fault: { resetAfterProcessing: true } });
    const flow = goldenCases().find((c) => c.flow.name === '3cx-v2-outgoing-missed')!.flow;
    for (const r of flow.requests) await send('3cx', r);
    await settle();
    expect(pd.callLogs.size).toBe(1);
    expect(pd.count('GET', '/api/v1/callLogs')).toBeGreaterThanOrEqual(1);
    const [d] = await relay.store.listDeliveries({ limit: 1 });
    expect(d).toMatchObject({ state: 'done', remote: { callLogId: [...pd.callLogs.keys()][0] } });
  });

  it('logs each call exactly once, for a user who is not the token user, through failed and lost answers', async () => {
    // The token's user (1) is not the agent's (7): the call-log list never shows the agent's logs.
    const { pd, send, relay } = await open({
      target:
        '    agents:\n      "117": bob@example.com\n    rateLimit: { requests: 400, perSeconds: 2 }\n    concurrency: 4\n',
    });
    pd.limit = 400;
    pd.users.push({ id: 7, email: 'bob@example.com', name: 'Bob' });
    const ids = Array.from({ length: 30 }, (_, i) => `260701200000_${i + 1}`);
    ids.forEach((_, i) => pd.addPerson(`Caller ${i}`, [`+420 774 852 ${String(600 + i)}`]));
    // Lost answers for certain (the first of each create), then about 20% failed and 10% lost.
    for (const match of ['POST /api/v2/activities', 'POST /api/v1/callLogs'])
      pd.faults.push({ match, fault: { resetAfterProcessing: true } });
    pd.setChaos({ match: ['POST /api/', 'GET /api/'], fail: 0.2, lost: 0.1, seed: 7 });
    for (const [i, id] of ids.entries())
      await send(
        '3cx',
        post(
          `{"Event":"incoming","Callerid":"420774852${String(600 + i)}","User":"117","Finishtype":"${i % 3 ? 'Ok' : 'NoAnswer'}","Transfer":"False","Did":"","Duration":"00:12","Id":"${id}-1"}`,
        ),
      );
    await settleDeliveries(relay, 60_000);
    pd.setChaos(undefined);
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
    const of = (id: string) => (text: unknown) =>
      new RegExp(`callrelay 3cx/${id}(?![0-9_])`).test(String(text));
    for (const id of ids) {
      const logs = [...pd.callLogs.values()].filter((l) => of(id)(l.body.note));
      expect(
        logs.map((l) => l.userId),
        id,
      ).toEqual([7]);
      const calls = pd.activities.filter((a) => a.done && of(id)(a.note));
      expect(
        calls.map((a) => a.owner_id),
        id,
      ).toEqual([7]);
    }
    expect(pd.callLogs.size).toBe(ids.length);
    expect(pd.faults).toEqual([]);
    expect(pd.chaosLog.length).toBeGreaterThan(10);
    // The agent's logs whose answers were lost cannot be listed: they are known by their activity.
    const ds = await relay.store.listDeliveries({ limit: 100 });
    expect(ds.some((d) => d.remote.logged && !d.remote.callLogId)).toBe(true);
  });

  it("honours 429 with x-ratelimit-reset and dead-letters a 400 with Pipedrive's message", async () => {
    const { pd, send, settle, relay } = await open();
    pd.faults.push({
      match: 'POST /api/v1/callLogs',
      fault: {
        status: 429,
        body: { success: false, error: 'Request over limit' },
        headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1' },
      },
    });
    const t0 = Date.now();
    for (const r of goldenCases().find((c) => c.flow.name === '3cx-v2-outgoing-missed')!.flow
      .requests)
      await send('3cx', r);
    await settle();
    expect(pd.callLogs.size).toBe(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);

    pd.faults.push({
      match: 'POST /api/v1/callLogs',
      fault: {
        status: 400,
        body: {
          success: false,
          error: 'Bad request',
          error_info: 'Please check developers.pipedrive.com',
          data: null,
        },
      },
    });
    for (const r of goldenCases().find((c) => c.flow.name === '3cx-v2-ringgroup-missed')!.flow
      .requests)
      await send('3cx', r);
    await settle();
    const dead = await relay.store.listDeliveries({ state: 'dead', limit: 5 });
    expect(dead.map((d) => d.lastError)).toEqual([
      expect.stringMatching(
        /creating the call log: 400 Bad request: Please check developers.pipedrive.com$/,
      ),
    ]);
  });

  describe('shaped by relay.yaml (subject, note, fields, deal: open)', () => {
    const answered = (): Req[] =>
      goldenCases().find((c) => c.flow.name === '3cx-v1-incoming-answered')!.flow.requests;

    it("sends the shaped subject, note and fields, on the person's open deal updated last", async () => {
      const { pd, send, settle } = await open({
        settle: 0.5,
        target: [
          '    deal: open',
          `    subject: '"Anruf " & $mmss(talkSec) & " · " & title'`,
          '    note: |',
          '      body & "<br><b>Queue:</b> " & call.rang[0]',
          '    fields: |',
          '      { "from_phone_number": $national(external) }',
          '',
        ].join('\n'),
      });
      const jana = pd.addPerson('Jana', ['+420 774 852 629']);
      const petr = pd.addPerson('Petr', ['+420 600 000 000']);
      pd.addDeal({ title: 'old', personId: jana, updateTime: '2026-01-01T00:00:00Z' });
      const latest = pd.addDeal({
        title: 'latest',
        personId: jana,
        updateTime: '2026-03-01T00:00:00Z',
      });
      // Look-alikes: a lost deal updated later, another person's open deal updated last.
      pd.addDeal({
        title: 'lost',
        personId: jana,
        status: 'lost',
        updateTime: '2026-04-01T00:00:00Z',
      });
      pd.addDeal({ title: 'petr', personId: petr, updateTime: '2026-05-01T00:00:00Z' });

      for (const r of answered()) await send('3cx', r);
      await settle();
      const [log] = [...pd.callLogs.values()];
      expect(log!.body.subject).toMatch(/^Anruf \d\d:\d\d · Inbound call from \+420774852629/);
      expect(log!.body.note).toMatch(
        /<small>callrelay 3cx\/230115121143_9<\/small><br><b>Queue:<\/b> 800$/,
      );
      expect(log!.body.from_phone_number).toBe('774852629');
      expect(log!.body.person_id).toBe(jana);
      // The log takes the deal of the activity it converts: both name the open deal.
      expect(log!.body.deal_id).toBe(latest);
      expect(pd.activities.find((a) => a.id === log!.activityId)!.deal_id).toBe(latest);

      // The person's next call: the open deal comes from the cache.
      const second = goldenCases().find((c) => c.flow.name === '3cx-get-incoming-missed')!.flow;
      for (const r of second.requests) await send('3cx', r);
      await settle();
      expect(pd.callLogs.size).toBe(2);
      expect(pd.count('GET', '/api/v2/deals')).toBe(1);
      for (const l of pd.callLogs.values()) expect(l.body.deal_id).toBe(latest);
    });

    it('dead-letters a call-log field Pipedrive refuses, naming it and the expression, never retrying', async () => {
      const { pd, send, settle, relay, config } = await open({
        settle: 0.5,
        target: '    fields: |\n      { "call_queue": call.rang[0] }\n',
      });
      for (const r of answered()) await send('3cx', r);
      await settle();
      const [dead] = await relay.store.listDeliveries({ state: 'dead', limit: 5 });
      expect(dead!.attempts).toBe(1);
      // fields: is the target's last entry; its block starts on the file's last line but one.
      const lines = readFileSync(config, 'utf8').trimEnd().split('\n');
      expect(dead!.lastError).toBe(
        `delivering call 230115121143_9 (3cx) to pipedrive: relay.yaml:${lines.length}:7 fields: Pipedrive refused the call-log field "call_queue": "call_queue" is not allowed`,
      );
      expect(pd.callLogs.size).toBe(0);
    });
  });
});
