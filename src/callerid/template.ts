// The XML template a 3CX admin uploads (V18: Settings > CRM Integration > Server Side; V20: Admin >
// Integrations > CRM) so that 3CX's own CRM integration talks to the relay: caller-ID lookup at
// ring time, the Web Client's contact search, lookup by email, optional contact creation, and
// call journaling (ReportCall). Its format rests on public templates and 3CX's template
// description; docs/3cx-template.md cites them and says what each part is for.
//
// What the relay answers (callerid/http.ts), relative to the source's hook URL
// <publicUrl>/hooks/<source>:
//   GET  /crm/lookup/<number>   GET /crm/search?q=<text>   GET /crm/email/<address>
//   POST /crm/contacts          (JSON firstName, lastName, email, number)
// each with {"contacts":[{id, firstName, lastName, company, email, phoneBusiness, phoneMobile,
// phoneHome, phoneOther, url, entityType}]}; and the journal posts to the hook URL itself
// (REPORT_FIELDS below), mapped by adapters/3cx-crm-template.yaml.

/** Bumped whenever the template changes: 3CX offers the admin an update when it grows. */
export const TEMPLATE_VERSION = 1;

/** The scenario ids 3CX itself calls (docs/3cx-template.md "Scenarios"). */
export const SCENARIO_IDS = [
  '',
  'SearchContacts',
  'LookupByEmail',
  'CreateContactRecordFromClient',
  'ReportCall',
] as const;

/** The contact output types 3CX documents (XAPI Pbx.CrmContact and the ids templates emit). */
export const OUTPUT_TYPES = [
  'ContactID',
  'FirstName',
  'LastName',
  'CompanyName',
  'Email',
  'PhoneBusiness',
  'PhoneBusiness2',
  'PhoneMobile',
  'PhoneMobile2',
  'PhoneHome',
  'PhoneOther',
  'FaxBusiness',
  'Pager',
  'Title',
  'Department',
  'PhotoUrl',
  'ContactUrl',
  'ContactType',
  'EntityId',
  'EntityType',
  'CustomValue',
] as const;

/** The JSON a contact answer holds per contact, and the output each field becomes. */
export const CONTACT_OUTPUTS: readonly (readonly [field: string, output: string])[] = [
  ['id', 'ContactID'],
  ['firstName', 'FirstName'],
  ['lastName', 'LastName'],
  ['company', 'CompanyName'],
  ['email', 'Email'],
  ['phoneBusiness', 'PhoneBusiness'],
  ['phoneMobile', 'PhoneMobile'],
  ['phoneHome', 'PhoneHome'],
  ['phoneOther', 'PhoneOther'],
  ['url', 'ContactUrl'],
  ['id', 'EntityId'],
  ['entityType', 'EntityType'],
];

/**
 * The journal post (ReportCall): body key -> 3CX expression, with its evaluation passes. Times
 * are sent as digits only (yyyyMMddHHmmss, UTC): .NET formats ':' with the PBX culture's time
 * separator, which is not ':' everywhere. A variable a PBX lacks (V18 has no RecordingUrl) arrives
 * as its literal "[Name]"; the adapter treats that as absent.
 */
export const REPORT_FIELDS: readonly (readonly [key: string, value: string, passes: number])[] = [
  ['callType', '[CallType]', 1],
  ['number', '[Number]', 1],
  ['name', '[Name]', 1],
  ['agent', '[Agent]', 1],
  ['agentFirstName', '[AgentFirstName]', 1],
  ['agentLastName', '[AgentLastName]', 1],
  ['agentEmail', '[AgentEmail]', 1],
  ['queue', '[QueueExtension]', 1],
  ['durationSec', '[[[DurationTimespan].get_TotalSeconds()].ToString("F0")]', 1],
  ['duration', '[Duration]', 1],
  ['start', '[[CallStartTimeUTC].ToString("yyyyMMddHHmmss")]', 2],
  ['end', '[[CallEndTimeUTC].ToString("yyyyMMddHHmmss")]', 2],
  ['dateTime', '[DateTime]', 1],
  ['entityId', '[EntityId]', 1],
  ['entityType', '[EntityType]', 1],
  ['contactId', '[Contact::ContactID]', 1],
  ['recordingUrl', '[RecordingUrl]', 1],
  ['transcription', '[Transcription]', 1],
  ['summary', '[Summary]', 1],
  ['sentiment', '[Sentiment]', 1],
];

export interface TemplateOptions {
  /** The source's name in relay.yaml. */
  source: string;
  /** The source's hook URL as 3CX reaches it: <publicUrl>/hooks/<source>. */
  hookUrl: string;
  /** ISO country of the PBX (3CX requires the attribute; it does not use it). */
  country?: string;
  /** Offer "create contact" in the Web Client (sources[].crm.createIn is set). */
  createContacts: boolean;
}

const attr = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const text = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Rules, variables and outputs of a scenario that answers with contacts. */
function contactResponse(indent: string): string[] {
  const fields = [...new Set(CONTACT_OUTPUTS.map(([f]) => f))];
  const v = (f: string): string => `C${f[0]!.toUpperCase()}${f.slice(1)}`;
  return [
    `${indent}<Rules>`,
    `${indent}  <Rule Type="Any">contacts.id</Rule>`,
    `${indent}</Rules>`,
    `${indent}<Variables>`,
    ...fields.map(
      (f) => `${indent}  <Variable Name="${v(f)}" Path="contacts.${f}"><Filter /></Variable>`,
    ),
    `${indent}</Variables>`,
    `${indent}<Outputs AllowEmpty="false">`,
    ...CONTACT_OUTPUTS.map(
      ([f, out]) => `${indent}  <Output Type="${out}" Passes="0" Value="[${v(f)}]" />`,
    ),
    `${indent}</Outputs>`,
  ];
}

function lookupScenario(id: string, url: string, comment: string): string[] {
  return [
    `    <!-- ${comment} -->`,
    `    <Scenario Id="${id}" Type="REST">`,
    `      <Request SkipIf="" Url="${attr(url)}" MessagePasses="0" RequestEncoding="UrlEncoded" RequestType="Get" ResponseType="Json" />`,
    ...contactResponse('      '),
    `    </Scenario>`,
  ];
}

/** The template for one source, as text (UTF-8 XML). */
export function threeCxTemplate(o: TemplateOptions): string {
  const country = (o.country ?? 'US').toUpperCase();
  const lines = [
    '<?xml version="1.0" encoding="utf-8"?>',
    `<!-- callrelay: 3CX CRM template for source "${text(o.source)}". Made by \`callrelay 3cx-template --source ${text(o.source)}\`; upload it in 3CX (V20: Admin > Integrations > CRM; V18: Settings > CRM Integration > Server Side), then enter the source's token. -->`,
    `<Crm xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" Country="${attr(country)}" Name="callrelay (${attr(o.source)})" Version="${TEMPLATE_VERSION}" SupportsEmojis="false">`,
    // "Plus": 3CX sends numbers with a leading + where it knows the country code; the relay
    // matches them the way it matches calls to contacts.
    '  <Number Prefix="Plus" MaxLength="" />',
    '  <Connection MaxConcurrentRequests="4" />',
    '  <Parameters>',
    `    <Parameter Name="RelayUrl" Type="String" Parent="General Configuration" Editor="String" Title="Relay URL:" Default="${attr(o.hookUrl)}" />`,
    '    <Parameter Name="Token" Type="Password" Parent="General Configuration" Editor="String" Title="Source token:" Default="" />',
    '    <Parameter Name="ReportCallEnabled" Type="Boolean" Parent="General Configuration" Editor="String" Title="Journal calls to the CRM through the relay" Default="True" />',
    ...(o.createContacts
      ? [
          '    <Parameter Name="CreateContactsEnabled" Type="Boolean" Parent="General Configuration" Editor="String" Title="Create contacts from the Web Client" Default="True" />',
        ]
      : []),
    '  </Parameters>',
    '  <Authentication Type="Basic">',
    '    <Value>3cx:[Token]</Value>',
    '  </Authentication>',
    '  <Scenarios>',
    ...lookupScenario(
      '',
      '[RelayUrl]/crm/lookup/[Number]',
      'Caller-ID lookup at ring time: the number is in the path, where a "+" stays a "+".',
    ),
    ...lookupScenario(
      'SearchContacts',
      '[RelayUrl]/crm/search?q=[EscapedSearchText]',
      "The Web Client's contact search.",
    ),
    ...lookupScenario('LookupByEmail', '[RelayUrl]/crm/email/[Email]', 'Lookup by email address.'),
    ...(o.createContacts
      ? [
          '    <!-- "Create contact" in the Web Client: made in the target sources[].crm.createIn names. -->',
          '    <Scenario Id="CreateContactRecordFromClient" Type="REST">',
          '      <Request SkipIf="[CreateContactsEnabled]!=True" Url="[RelayUrl]/crm/contacts" MessagePasses="0" RequestContentType="application/json" RequestEncoding="Json" RequestType="Post" ResponseType="Json">',
          '        <PostValues Key="">',
          '          <Value Key="firstName" Passes="1" Type="String">[FirstName]</Value>',
          '          <Value Key="lastName" Passes="1" Type="String">[LastName]</Value>',
          '          <Value Key="email" Passes="1" Type="String">[Email]</Value>',
          '          <Value Key="number" Passes="1" Type="String">[Number]</Value>',
          '        </PostValues>',
          '      </Request>',
          ...contactResponse('      '),
          '    </Scenario>',
        ]
      : []),
    '    <!-- Journaling once a call has ended: one post per call, mapped by adapters/3cx-crm-template.yaml. -->',
    '    <Scenario Id="ReportCall" Type="REST">',
    '      <Request SkipIf="[ReportCallEnabled]!=True" Url="[RelayUrl]" MessagePasses="0" RequestContentType="application/json" RequestEncoding="Json" RequestType="Post" ResponseType="Json">',
    '        <PostValues Key="">',
    ...REPORT_FIELDS.map(
      ([k, v, passes]) =>
        `          <Value Key="${k}" Passes="${passes}" Type="String">${text(v)}</Value>`,
    ),
    '        </PostValues>',
    '      </Request>',
    '      <Variables />',
    '      <Outputs AllowEmpty="true" />',
    '    </Scenario>',
    '  </Scenarios>',
    '</Crm>',
    '',
  ];
  return lines.join('\n');
}
