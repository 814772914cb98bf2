// Issue 23's proof, end to end: a relay whose source `pbx` is 3CX's own CRM integration
// (adapter 3cx-crm-template, crm: looking up in HubSpot, then Pipedrive), and the 3CX harness
// running the template the relay generates for that source. Known callers show their name and
// their CRM record's page (ContactUrl); a caller whose number only looks like a contact's (same
// national digits, another country) and an unknown caller show nothing; and every call a V18 and
// a V20 PBX journal (Inbound, Missed, Outbound, Notanswered) becomes exactly one call record and
// exactly one CRM activity in each CRM (a HubSpot call engagement, a Pipedrive call log).

import { afterEach, describe, expect, it } from 'vitest';
import { threeCxTemplate } from '../../src/callerid/template.js';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import { FakePipedrive } from '../../src/targets/pipedrive/fake.js';
import { ThreeCx, type PbxCall } from '../fakes/threecx.js';
import { ADAPTERS, settleDeliveries, tempDir, TOKENS } from '../support.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const HS_TOKEN = 'pat-eu1-callerid-test-01';
const PD_TOKEN = 'pd-callerid-token-0123';
const PBX_TOKEN = 'pbx-crm-template-token-0123';
const PORTAL = '4711';

describe('3CX talking to the relay as its CRM', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function setup(): Promise<{
    relay: Relay;
    hs: FakeHubspot;
    pd: FakePipedrive;
    pbx: (version: 18 | 20) => ThreeCx;
    people: { jana: string; milan: number };
  }> {
    const hs = await new FakeHubspot(HS_TOKEN).start();
    const pd = await new FakePipedrive(PD_TOKEN).start();
    cleanup.push(
      () => hs.close(),
      () => pd.close(),
    );
    // The callers, and look-alikes from Slovakia with the same national digits (HubSpot's
    // calculated phone number and a trailing-digits search find them too).
    const jana = hs.addContact({
      firstname: 'Jana',
      lastname: 'Nováková',
      company: 'Acme s.r.o.',
      email: 'jana@acme.example',
      phone: '+420 774 852 629',
    });
    hs.addContact({ firstname: 'Look-alike', lastname: 'HubSpot', phone: '+421 774 852 629' });
    const milan = pd.addPerson('Milan Horák', ['+420 603 111 222']);
    pd.addPerson('Look-alike Pipedrive', ['+421 603 111 222']);

    const dir = tempDir();
    const file = join(dir, 'relay.yaml');
    writeFileSync(
      file,
      `server:
  port: 0
  host: 127.0.0.1
store:
  sqlite: ./relay.db
admin:
  token: ${TOKENS.admin}
log:
  level: warn
adapters: ${ADAPTERS}
sources:
  - name: pbx
    adapter: 3cx-crm-template
    token: ${PBX_TOKEN}
    defaultCountry: CZ
    timezone: Europe/Prague
    crm:
      lookup: [hubspot, pipedrive]
      # Roomy: on a busy machine a search queued behind HubSpot's 5 a second must not turn a
      # known caller into "not found" (the budget has tests of its own).
      answerWithinMs: 10000
targets:
  - name: hubspot
    type: hubspot
    token: ${HS_TOKEN}
    baseUrl: ${hs.url}
    portalId: ${PORTAL}
    settleSec: 0
  - name: pipedrive
    type: pipedrive
    token: ${PD_TOKEN}
    baseUrl: ${pd.url}
    companyDomain: acme
    settleSec: 0
`,
    );
    const relay = await startRelay(loadConfig(file, {}), undefined, { delivery: { pollMs: 20 } });
    cleanup.push(() => relay.close());
    const template = threeCxTemplate({
      source: 'pbx',
      hookUrl: `http://127.0.0.1:${relay.port}/hooks/pbx`,
      country: 'CZ',
      createContacts: false,
    });
    // The admin uploads the template and enters the source's token (V20: Admin > Integrations >
    // CRM; V18: Settings > CRM Integration > Server Side).
    const pbx = (version: 18 | 20) =>
      new ThreeCx(template, { params: { Token: PBX_TOKEN }, version, utcOffsetMin: 60 });
    return { relay, hs, pd, pbx, people: { jana, milan } };
  }

  it("shows a known caller's name and CRM page, and nothing for look-alikes and strangers", async () => {
    const { pbx: make, people } = await setup();
    const pbx = make(20);
    const hubspotPage = `https://app.hubspot.com/contacts/${PORTAL}/record/0-1/${people.jana}`;

    // HubSpot knows Jana, in whatever form the PBX holds her number.
    for (const asked of ['+420774852629', '00420774852629', '774852629']) {
      const c = await pbx.lookup(asked);
      expect(c, asked).toMatchObject({
        ContactID: people.jana,
        FirstName: 'Jana',
        LastName: 'Nováková',
        CompanyName: 'Acme s.r.o.',
        Email: 'jana@acme.example',
        ContactUrl: hubspotPage,
        EntityType: 'Contacts',
      });
    }
    // Pipedrive, asked second, knows Milan.
    const milan = await pbx.lookup('+420 603 111 222');
    expect(milan).toMatchObject({
      ContactID: String(people.milan),
      ContactUrl: `https://acme.pipedrive.com/person/${people.milan}`,
    });
    expect(`${milan!.FirstName} ${milan!.LastName}`.trim()).toBe('Milan Horák');

    // A Polish caller with Jana's (and Milan's) national digits, and a number nobody has.
    for (const asked of ['+48774852629', '+48603111222', '+420777000111'])
      expect(await pbx.lookup(asked), asked).toBeUndefined();
    // Nothing was turned down by 3CX's own rule: the relay answered what 3CX accepts, or nothing.
    expect(pbx.rejected).toEqual([]);
    expect(pbx.exchanges.every((e) => e.status === 200)).toBe(true);

    // The Web Client's search and the email lookup find the same records.
    const found = await pbx.search('Nováková');
    expect(found.map((c) => c.ContactUrl)).toContain(hubspotPage);
    expect(await pbx.lookupEmail('jana@acme.example')).toMatchObject({ ContactUrl: hubspotPage });
  });

  it('every journaled call, from a V18 and a V20 PBX, is one call record and one CRM activity', async () => {
    const { relay, hs, pd, pbx: make, people } = await setup();
    const start = Date.parse('2026-12-06T09:00:00Z');
    const calls: (PbxCall & { version: 18 | 20 })[] = [];
    const types = ['Inbound', 'Missed', 'Outbound', 'Notanswered'] as const;
    const numbers = ['+420774852629', '+420603111222', '+48774852629', '+420777000111'];
    for (const version of [18, 20] as const)
      types.forEach((callType, i) => {
        const t0 = start + (version * 10 + i) * 60_000;
        const talkSec = callType === 'Inbound' || callType === 'Outbound' ? 42 + i : 0;
        calls.push({
          version,
          callType,
          number: numbers[i]!,
          agent: String(100 + version),
          agentFirstName: 'Karel',
          agentLastName: 'Malý',
          agentEmail: 'karel@acme.example',
          start: new Date(t0),
          end: new Date(t0 + (talkSec + 15) * 1000),
          talkSec,
          recordingUrl: talkSec ? `https://pbx.example/rec/${version}-${i}.wav` : undefined,
          summary: talkSec ? `Call ${version}-${i}: asked for a quote.` : undefined,
        });
      });

    for (const version of [18, 20] as const) {
      const pbx = make(version);
      for (const c of calls.filter((x) => x.version === version)) {
        // At ring time 3CX asks who it is; once the call ends it journals it.
        await pbx.lookup(c.number);
        const sent = await pbx.reportCall(c);
        expect(sent.map((e) => e.status)).toEqual([200]);
      }
      // A PBX that journals a call again (a retry) makes no second record.
      await pbx.reportCall(calls.find((x) => x.version === version)!);
    }
    await settleDeliveries(relay);

    const rows = await relay.store.listCalls({ limit: 100, source: 'pbx' });
    expect(rows).toHaveLength(calls.length);
    const outcome = { Inbound: 'answered', Missed: 'missed', Outbound: 'answered' } as const;
    for (const c of calls) {
      const mine = rows.filter(
        (r) =>
          r.record.agent === c.agent &&
          r.record.externalE164 === c.number &&
          Date.parse(r.record.startedAt!) === c.start.getTime(),
      );
      expect(mine, `${c.version} ${c.callType}`).toHaveLength(1);
      expect(mine[0]!.record).toMatchObject({
        direction: /Inbound|Missed/.test(c.callType) ? 'inbound' : 'outbound',
        outcome: outcome[c.callType as keyof typeof outcome] ?? 'missed',
      });
      if (c.talkSec) expect(mine[0]!.record.talkSec).toBe(c.talkSec);
      // Only a V20 PBX has a recording URL to send; a V18 sends the literal "[RecordingUrl]".
      expect(mine[0]!.record.recordings.length).toBe(c.version === 20 && c.talkSec ? 1 : 0);
    }

    // One activity per call in each CRM, and the known callers' ones on their records.
    expect(hs.calls.size).toBe(calls.length);
    expect(pd.callLogs.size).toBe(calls.length);
    const onJana = [...hs.calls.values()].filter((o) =>
      o.associations.some((a) => a.to.id === people.jana),
    );
    expect(onJana).toHaveLength(calls.filter((c) => c.number === '+420774852629').length);
    const onMilan = [...pd.callLogs.values()].filter((l) => l.body.person_id === people.milan);
    expect(onMilan).toHaveLength(calls.filter((c) => c.number === '+420603111222').length);
    expect(hs.tooManyRequests + pd.tooManyRequests).toBe(0);
  });
});
