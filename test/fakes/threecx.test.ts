// The 3CX harness itself, against a tiny HTTP server that answers the relay's contract
// (src/callerid/template.ts): what it sends (a "+" in the path, Basic auth with the token, the
// journal's JSON with .NET-formatted times and the V18 literals), and what it accepts (only a
// record with a ContactUrl, a name and a phone output holding the asked number).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { REPORT_FIELDS, threeCxTemplate } from '../../src/callerid/template.js';
import { LocalServer } from './local-server.js';
import { parseTemplate, ThreeCx, type PbxCall } from './threecx.js';

const TOKEN = 'src-token-0123456789';

interface Person {
  id: string;
  firstName: string;
  lastName: string;
  company?: string;
  email: string;
  phone: string;
}

/** Answers GET crm/lookup|search|email and POST crm/contacts and the journal, as the relay will. */
class ContractRelay extends LocalServer {
  protected override readonly path = '/hooks/pbx';
  readonly people: Person[] = [];
  readonly requests: { method: string; url: string; auth: string; body: string }[] = [];
  readonly journal: Record<string, unknown>[] = [];
  /** Answer a lookup with the CRM's own number format instead of echoing the asked one. */
  echo = true;

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const c of req) body += String(c);
    const auth = req.headers.authorization ?? '';
    this.requests.push({ method: req.method!, url: req.url!, auth, body });
    const password = Buffer.from(auth.replace(/^Basic /, ''), 'base64')
      .toString()
      .replace(/^[^:]*:/, '');
    const send = (status: number, v: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(v));
    };
    if (password !== TOKEN) return send(401, { error: 'unauthorized' });
    const url = new URL(req.url!, 'http://x');
    const card = (p: Person, asked = '') => ({
      id: p.id,
      firstName: p.firstName,
      lastName: p.lastName,
      company: p.company ?? '',
      email: p.email,
      phoneBusiness: asked && this.echo ? asked : p.phone,
      phoneMobile: '',
      phoneHome: '',
      phoneOther: '',
      url: `https://crm.example/people/${p.id}`,
      entityType: 'Contacts',
    });
    const digits = (s: string): string => s.replace(/\D/g, '');
    const lookup = /^\/hooks\/pbx\/crm\/lookup\/(.+)$/.exec(url.pathname);
    if (req.method === 'GET' && lookup) {
      const asked = decodeURIComponent(lookup[1]!);
      // Trailing digits, so that a template cutting numbers (MaxLength) finds them too.
      const hits = digits(asked)
        ? this.people.filter((p) => digits(p.phone).endsWith(digits(asked)))
        : [];
      return send(200, { contacts: hits.map((p) => card(p, asked)) });
    }
    if (req.method === 'GET' && url.pathname === '/hooks/pbx/crm/search') {
      const q = (url.searchParams.get('q') ?? '').toLowerCase();
      const hits = this.people.filter((p) =>
        `${p.firstName} ${p.lastName}`.toLowerCase().includes(q),
      );
      return send(200, { contacts: hits.map((p) => card(p)) });
    }
    const email = /^\/hooks\/pbx\/crm\/email\/(.+)$/.exec(url.pathname);
    if (req.method === 'GET' && email) {
      const hits = this.people.filter((p) => p.email === decodeURIComponent(email[1]!));
      return send(200, { contacts: hits.map((p) => card(p)) });
    }
    if (req.method === 'POST' && url.pathname === '/hooks/pbx/crm/contacts') {
      const b = JSON.parse(body) as Record<string, string>;
      const p: Person = {
        id: String(100 + this.people.length),
        firstName: b.firstName!,
        lastName: b.lastName!,
        email: b.email!,
        phone: b.number!,
      };
      this.people.push(p);
      return send(200, { contacts: [card(p, b.number)] });
    }
    if (req.method === 'POST' && url.pathname === '/hooks/pbx') {
      this.journal.push(
        req.headers['content-type']?.includes('json')
          ? (JSON.parse(body) as Record<string, unknown>)
          : Object.fromEntries(new URLSearchParams(body)),
      );
      return send(200, { ok: true });
    }
    send(404, { error: 'not found' });
  }
}

describe('the 3CX harness', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function setup(o: { createContacts?: boolean; version?: 18 | 20 } = {}) {
    const relay = await new ContractRelay().start();
    cleanup.push(() => relay.close());
    relay.people.push(
      {
        id: '7',
        firstName: 'Jana',
        lastName: 'Nováková',
        company: 'Acme',
        email: 'jana@acme.example',
        phone: '+420 774 852 629',
      },
      {
        id: '8',
        firstName: 'Petr',
        lastName: 'Novák',
        email: 'petr@acme.example',
        phone: '+420 603 111 222',
      },
    );
    const template = threeCxTemplate({
      source: 'pbx',
      hookUrl: relay.url,
      country: 'cz',
      createContacts: !!o.createContacts,
    });
    const pbx = new ThreeCx(template, { params: { Token: TOKEN }, version: o.version });
    return { relay, pbx };
  }

  it('looks a caller up with the "+" in the path and Basic auth, and shows the contact', async () => {
    const { relay, pbx } = await setup();
    // Prefix="Plus": the PBX turns 00 into + before it asks.
    const c = await pbx.lookup('00420774852629');
    expect(c).toMatchObject({
      ContactID: '7',
      FirstName: 'Jana',
      LastName: 'Nováková',
      CompanyName: 'Acme',
      PhoneBusiness: '+420774852629',
      ContactUrl: 'https://crm.example/people/7',
      EntityId: '7',
      EntityType: 'Contacts',
    });
    expect(relay.requests[0]).toMatchObject({
      method: 'GET',
      url: '/hooks/pbx/crm/lookup/+420774852629',
      auth: `Basic ${Buffer.from(`3cx:${TOKEN}`).toString('base64')}`,
    });
    // Unknown numbers: an empty list, nothing shown, nothing turned down.
    expect(await pbx.lookup('+420777000111')).toBeUndefined();
    expect(pbx.rejected).toEqual([]);
  });

  it("turns down a record whose phone outputs do not hold the asked number (3CX's rule)", async () => {
    const { relay, pbx } = await setup();
    relay.echo = false; // the CRM's "+420 774 852 629" does not contain "+420774852629"
    expect(await pbx.lookup('+420774852629')).toBeUndefined();
    expect(pbx.rejected).toEqual([
      expect.objectContaining({ reason: 'no phone output holds +420774852629' }),
    ]);
  });

  it('turns down a record without a ContactUrl or without any name', async () => {
    const { relay, pbx } = await setup();
    relay.people[0]!.firstName = '';
    relay.people[0]!.lastName = '';
    relay.people[0]!.company = '';
    expect(await pbx.lookup('+420774852629')).toBeUndefined();
    expect(pbx.rejected.map((r) => r.reason)).toEqual(['no FirstName, LastName or CompanyName']);
    // A template whose outputs lose the URL.
    const noUrl = threeCxTemplate({ source: 'pbx', hookUrl: relay.url, createContacts: false })
      .replace(/<Output Type="ContactUrl"[^>]*\/>/, '')
      .replace('Title="Source token:" Default=""', `Title="Source token:" Default="${TOKEN}"`);
    const other = new ThreeCx(noUrl);
    expect(await other.lookup('+420603111222')).toBeUndefined();
    expect(other.rejected.map((r) => r.reason)).toEqual(['no ContactUrl']);
  });

  it('a wrong token is a failed exchange and no contact', async () => {
    const { relay } = await setup();
    const template = threeCxTemplate({ source: 'pbx', hookUrl: relay.url, createContacts: false });
    const pbx = new ThreeCx(template, { params: { Token: 'wrong-token-000000' } });
    expect(await pbx.lookup('+420774852629')).toBeUndefined();
    expect(pbx.exchanges.map((e) => e.status)).toEqual([401]);
  });

  it('searches with the text URL-escaped, one record per element; looks an email up', async () => {
    const { relay, pbx } = await setup();
    const found = await pbx.search('Nov&k');
    expect(found).toEqual([]);
    expect(relay.requests.at(-1)!.url).toBe('/hooks/pbx/crm/search?q=Nov%26k');
    const both = await pbx.search('novák');
    expect(both.map((c) => [c.ContactID, c.LastName, c.ContactUrl])).toEqual([
      ['7', 'Nováková', 'https://crm.example/people/7'],
      ['8', 'Novák', 'https://crm.example/people/8'],
    ]);
    expect(relay.requests.at(-1)!.url).toBe('/hooks/pbx/crm/search?q=nov%C3%A1k');
    expect(await pbx.lookupEmail('petr@acme.example')).toMatchObject({ FirstName: 'Petr' });
    expect(relay.requests.at(-1)!.url).toBe('/hooks/pbx/crm/email/petr@acme.example');
  });

  it('creates a contact only where the template offers it', async () => {
    const without = await setup();
    expect(
      await without.pbx.createContact({ firstName: 'A', lastName: 'B', number: '+420111' }),
    ).toBeUndefined();
    expect(without.relay.requests).toEqual([]);
    const { relay, pbx } = await setup({ createContacts: true });
    const made = await pbx.createContact({
      firstName: 'Eva',
      lastName: 'Dvořák',
      email: 'eva@example.cz',
      number: '+420777123456',
    });
    expect(made).toMatchObject({ FirstName: 'Eva', ContactUrl: 'https://crm.example/people/102' });
    expect(JSON.parse(relay.requests.at(-1)!.body)).toEqual({
      firstName: 'Eva',
      lastName: 'Dvořák',
      email: 'eva@example.cz',
      number: '+420777123456',
    });
    expect(await pbx.lookup('+420777123456')).toMatchObject({ LastName: 'Dvořák' });
  });

  const call: PbxCall = {
    callType: 'Inbound',
    number: '+420774852629',
    agent: '105',
    agentFirstName: 'Karel',
    agentLastName: 'Malý',
    agentEmail: 'karel@acme.example',
    start: new Date('2026-12-06T10:15:02Z'),
    end: new Date('2026-12-06T10:16:17Z'),
    talkSec: 75.4,
    recordingUrl: 'https://pbx.example/rec/1.wav',
    summary: 'Asked for a quote.',
  };

  it('journals a call: .NET formatting, the matched contact, V18 literals', async () => {
    const { relay, pbx } = await setup({ version: 18 });
    await pbx.lookup('+420774852629');
    const sent = await pbx.reportCall(call);
    expect(sent.map((e) => [e.method, e.status])).toEqual([['POST', 200]]);
    const [body] = relay.journal;
    expect(Object.keys(body!)).toEqual(REPORT_FIELDS.map(([k]) => k));
    expect(body).toMatchObject({
      callType: 'Inbound',
      number: '+420774852629',
      agent: '105',
      durationSec: '75',
      duration: '00:01:15',
      start: '20261206101502',
      end: '20261206101617',
      contactId: '7',
      entityId: '7',
      entityType: 'Contacts',
      // A V18 PBX has none of these: they arrive as their literal names.
      agentFirstName: '[AgentFirstName]',
      recordingUrl: '[RecordingUrl]',
      summary: '[Summary]',
    });
  });

  it('a V20 PBX fills its variables; journaling off posts nothing', async () => {
    const { relay, pbx } = await setup({ version: 20 });
    await pbx.reportCall({ ...call, callType: 'Missed', talkSec: 0 });
    expect(relay.journal[0]).toMatchObject({
      callType: 'Missed',
      durationSec: '0',
      agentFirstName: 'Karel',
      agentEmail: 'karel@acme.example',
      recordingUrl: 'https://pbx.example/rec/1.wav',
      summary: 'Asked for a quote.',
      transcription: '',
      // No lookup matched this number on this PBX.
      contactId: '[Contact::ContactID]',
    });
    const template = threeCxTemplate({ source: 'pbx', hookUrl: relay.url, createContacts: false });
    const off = new ThreeCx(template, { params: { Token: TOKEN, ReportCallEnabled: 'False' } });
    expect(await off.reportCall(call)).toEqual([]);
    expect(relay.journal).toHaveLength(1);
  });

  it("plays real templates' idioms: chained lookups, IIf, Filter, Equals, Number formats", async () => {
    const { relay } = await setup();
    // Shaped like the public Pipedrive and Zammad templates (i23 facts §4, §5, §9).
    const template = `<?xml version="1.0" encoding="utf-8"?>
<Crm xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" Country="CZ" Name="t" Version="1">
  <Number Prefix="Off" MaxLength="9" />
  <Connection MaxConcurrentRequests="2" />
  <Parameters>
    <Parameter Name="Base" Type="String" Default="${relay.url}" />
    <Parameter Name="Token" Type="Password" Default="${TOKEN}" />
    <Parameter Name="Text" Type="String" Default="[[CallStartTimeUTC].ToString(&quot;t&quot;)] [IIf([CallType]==Inbound||[CallType]==Missed,in,out)]" />
  </Parameters>
  <Authentication Type="Basic"><Value>x:[Token]</Value></Authentication>
  <Scenarios>
    <Scenario Id="" Type="REST">
      <Request Url="[Base]/crm/lookup/[Number]" RequestType="Get" ResponseType="Json" />
      <Rules><Rule Type="Equals" Ethalon="8">contacts.id</Rule></Rules>
      <Variables>
        <Variable Name="Id" Path="contacts.id"><Filter><Rule Type="Equals" Ethalon="Contacts">contacts.entityType</Rule></Filter></Variable>
        <Variable Name="Last" Path="contacts.lastName"><Filter /></Variable>
        <Variable Name="Phone" Path="contacts.phoneBusiness"><Filter /></Variable>
      </Variables>
      <Outputs AllowEmpty="false">
        <Output Type="LastName" Passes="0" Value="[Last]" />
        <Output Type="PhoneBusiness" Passes="0" Value="[Phone]" />
        <Output Type="ContactUrl" Passes="0" Value="https://crm.example/p/[Id]" />
      </Outputs>
    </Scenario>
    <Scenario Id="" Type="REST">
      <Request SkipIf="[IIf([FoundRecordCount] &gt; 0, True, False)]" Url="[Base]/crm/lookup/again" RequestType="Get" ResponseType="Json" />
    </Scenario>
    <Scenario Id="ReportCall" Type="REST">
      <Request SkipIf="[CallType]!=Outbound" Url="[Base]" RequestType="Post" RequestEncoding="UrlEncoded" ResponseType="Json">
        <PostValues Key="">
          <Value Key="text" Passes="2">[[Text]]</Value>
          <Value Key="n" Passes="1" Type="Integer">[[[DurationTimespan].get_TotalMinutes()].ToString("F0")]</Value>
        </PostValues>
      </Request>
    </Scenario>
  </Scenarios>
</Crm>`;
    const pbx = new ThreeCx(template);
    // Off and MaxLength 9: the last nine digits; the Equals rule wants contact 8.
    expect(await pbx.lookup('+420 603 111 222')).toEqual({
      LastName: 'Novák',
      PhoneBusiness: '603111222',
      ContactUrl: 'https://crm.example/p/8',
    });
    expect(relay.requests.map((r) => r.url)).toEqual(['/hooks/pbx/crm/lookup/603111222']);
    expect(await pbx.lookup('+420774852629')).toBeUndefined(); // contact 7: the rule says no
    // The second scenario ran only when the first found nothing.
    expect(relay.requests.at(-1)!.url).toBe('/hooks/pbx/crm/lookup/again');
    expect((await pbx.reportCall(call)).length).toBe(0); // Inbound: skipped
    await pbx.reportCall({ ...call, callType: 'Outbound', talkSec: 150 });
    expect(relay.requests.at(-1)!.body).toBe('text=10%3A15+out&n=3');
  });

  it('reads the template in document order and refuses XML that is not well-formed', () => {
    const root = parseTemplate(
      threeCxTemplate({ source: 'pbx', hookUrl: 'http://x/hooks/pbx', createContacts: false }),
    );
    expect(root.children.map((c) => c.name)).toEqual([
      'Number',
      'Connection',
      'Parameters',
      'Authentication',
      'Scenarios',
    ]);
    expect(() => new ThreeCx('<Crm><Number></Crm>')).toThrow();
  });
});
