// The 3CX template the relay generates is one 3CX can take: well-formed XML, the root and child
// order of real public templates (i23 facts §1), only the scenario ids and output types 3CX
// documents, no [Variable] that is neither a parameter, a variable its scenario declares, nor one
// 3CX gives that scenario, and the journal's keys are REPORT_FIELDS. Each check is shown to catch
// a broken template, so that a check that can never fail does not pass for proof.

import { describe, expect, it } from 'vitest';
import {
  CONTACT_OUTPUTS,
  OUTPUT_TYPES,
  REPORT_FIELDS,
  SCENARIO_IDS,
  TEMPLATE_VERSION,
  threeCxTemplate,
} from '../../src/callerid/template.js';
import {
  child,
  children,
  parseTemplate,
  PHONE_OUTPUTS,
  THREECX_VARIABLES,
  type XNode,
} from '../fakes/threecx.js';

const HOOK = 'https://relay.example.com/hooks/pbx';
const PARAMETER_TYPES = ['String', 'Password', 'Boolean', 'List', 'Integer', 'Double', 'DateTime'];
const ROOT_ATTRS = {
  'xmlns:xsi': 'http://www.w3.org/2001/XMLSchema-instance',
  'xmlns:xsd': 'http://www.w3.org/2001/XMLSchema',
};
const SCENARIO_CHILDREN = ['Request', 'Rules', 'Variables', 'Outputs'];
// What 3CX documents (i23 facts §7 and §5), written here rather than taken from the module under
// test, so that a wrong entry there does not pass for documented.
const DOCUMENTED_SCENARIO_IDS = [
  '',
  'SearchContacts',
  'LookupByEmail',
  'CreateContactRecordFromClient',
  'ReportCall',
];
const DOCUMENTED_OUTPUT_TYPES = [
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
];

/** Everything wrong with a template, as sentences; [] for one 3CX can take. */
function templateProblems(xml: string, createContacts: boolean): string[] {
  let root: XNode;
  try {
    root = parseTemplate(xml);
  } catch (e) {
    return [(e as Error).message];
  }
  const problems: string[] = [];
  if (root.name !== 'Crm') problems.push(`root element <${root.name}>`);
  for (const [k, v] of Object.entries(ROOT_ATTRS))
    if (root.attrs[k] !== v) problems.push(`root ${k} is not ${v}`);
  if ('xmlns' in root.attrs) problems.push('root has a default namespace');
  if (!/^[A-Z]{2}$/.test(root.attrs.Country ?? '')) problems.push('root Country');
  if (!root.attrs.Name) problems.push('root Name');
  if (root.attrs.Version !== String(TEMPLATE_VERSION)) problems.push('root Version');
  if (!/^(true|false)$/.test(root.attrs.SupportsEmojis ?? '')) problems.push('root SupportsEmojis');
  const order = root.children.map((c) => c.name).join(',');
  if (order !== 'Number,Connection,Parameters,Authentication,Scenarios')
    problems.push(`root children are ${order}`);

  const num = child(root, 'Number')?.attrs ?? {};
  if (!['AsIs', 'Off', 'Plus', 'Zeros'].includes(num.Prefix ?? '')) problems.push('Number Prefix');
  if (!/^(\d*|\[\w+\])$/.test(num.MaxLength ?? 'x')) problems.push('Number MaxLength');
  if (!/^[1-9]\d*$/.test(child(root, 'Connection')?.attrs.MaxConcurrentRequests ?? ''))
    problems.push('Connection MaxConcurrentRequests');

  const params = new Map<string, XNode>();
  for (const p of children(child(root, 'Parameters'), 'Parameter')) {
    const name = p.attrs.Name ?? '';
    if (!/^\w+$/.test(name) || params.has(name)) problems.push(`parameter name "${name}"`);
    params.set(name, p);
    if (!PARAMETER_TYPES.includes(p.attrs.Type ?? '')) problems.push(`parameter ${name} Type`);
    for (const a of ['Editor', 'Title', 'Default'])
      if (!(a in p.attrs)) problems.push(`parameter ${name} has no ${a}`);
  }
  if (params.get('Token')?.attrs.Type !== 'Password') problems.push('Token is not a Password');
  if (params.get('RelayUrl')?.attrs.Default !== HOOK) problems.push('RelayUrl is not the hook URL');

  const auth = child(root, 'Authentication');
  if (auth?.attrs.Type !== 'Basic' || !/^[^:]+:\[Token\]$/.test(child(auth, 'Value')?.text ?? ''))
    problems.push('Authentication is not Basic with the Token as password');
  const used = (n: XNode | undefined): string[] =>
    n
      ? [
          ...[...Object.values(n.attrs), n.text].flatMap((s) =>
            [...s.matchAll(/\[([A-Za-z_]\w*(?:::\w+)?)\]/g)].map((m) => m[1]!),
          ),
          ...n.children.flatMap(used),
        ]
      : [];
  for (const name of used(auth))
    if (!params.has(name)) problems.push(`authentication uses undeclared [${name}]`);

  const scenarios = children(child(root, 'Scenarios'), 'Scenario');
  const ids = scenarios.map((s) => s.attrs.Id ?? '');
  const want = ['', 'SearchContacts', 'LookupByEmail'];
  if (createContacts) want.push('CreateContactRecordFromClient');
  want.push('ReportCall');
  if (ids.join(',') !== want.join(',')) problems.push(`scenarios are ${JSON.stringify(ids)}`);
  const contactFields = new Set(CONTACT_OUTPUTS.map(([f]) => f));
  for (const s of scenarios) {
    const id = s.attrs.Id ?? '';
    const where = `scenario "${id}"`;
    if (!DOCUMENTED_SCENARIO_IDS.includes(id)) problems.push(`${where}: unknown id`);
    if (s.attrs.Type !== 'REST') problems.push(`${where}: Type is not REST`);
    const kids = s.children.map((c) => c.name);
    if (kids.join(',') !== SCENARIO_CHILDREN.filter((k) => kids.includes(k)).join(',') || !kids[0])
      problems.push(`${where}: children are ${kids.join(',')}`);
    const req = child(s, 'Request');
    if (!req?.attrs.Url?.startsWith('[RelayUrl]')) problems.push(`${where}: Url`);
    if (!['Get', 'Post'].includes(req?.attrs.RequestType ?? ''))
      problems.push(`${where}: RequestType`);
    if (req?.attrs.ResponseType !== 'Json') problems.push(`${where}: ResponseType`);

    const variables = children(child(s, 'Variables'), 'Variable');
    for (const v of variables)
      if (!contactFields.has((v.attrs.Path ?? '').replace(/^contacts\./, '')))
        problems.push(`${where}: variable ${v.attrs.Name} reads ${v.attrs.Path}`);
    const outputs = children(child(s, 'Outputs'), 'Output').map((o) => o.attrs.Type ?? '');
    for (const o of outputs)
      if (!DOCUMENTED_OUTPUT_TYPES.includes(o)) problems.push(`${where}: output type ${o}`);
    if (id !== 'ReportCall') {
      // What 3CX needs to accept a contact (i23 facts §6).
      for (const need of ['ContactID', 'ContactUrl', 'FirstName', 'LastName', 'CompanyName'])
        if (!outputs.includes(need)) problems.push(`${where}: no ${need} output`);
      if (!outputs.some((o) => PHONE_OUTPUTS.includes(o))) problems.push(`${where}: no phone`);
      if (child(child(s, 'Rules'), 'Rule')?.attrs.Type !== 'Any') problems.push(`${where}: Rule`);
    }
    const declared = new Set([
      ...params.keys(),
      ...variables.map((v) => v.attrs.Name!),
      ...(THREECX_VARIABLES[id] ?? []),
      ...(id === 'ReportCall' ? DOCUMENTED_OUTPUT_TYPES.map((o) => `Contact::${o}`) : []),
    ]);
    for (const name of new Set(used(s)))
      if (!declared.has(name)) problems.push(`${where} uses undeclared [${name}]`);
  }

  const report = scenarios.find((s) => s.attrs.Id === 'ReportCall');
  const values = children(child(child(report, 'Request'), 'PostValues'), 'Value').map(
    (v) => [v.attrs.Key, v.text, Number(v.attrs.Passes)] as const,
  );
  if (JSON.stringify(values) !== JSON.stringify(REPORT_FIELDS))
    problems.push(`ReportCall posts ${JSON.stringify(values.map(([k]) => k))}`);
  if (child(report, 'Request')?.attrs.SkipIf !== '[ReportCallEnabled]!=True')
    problems.push('ReportCall is not switched by ReportCallEnabled');
  return problems;
}

const template = (createContacts: boolean): string =>
  threeCxTemplate({ source: 'pbx', hookUrl: HOOK, country: 'cz', createContacts });

describe('the generated 3CX template', () => {
  it.each([false, true])('is one 3CX can take (createContacts: %s)', (createContacts) => {
    const xml = template(createContacts);
    expect(templateProblems(xml, createContacts)).toEqual([]);
    expect(templateProblems(xml, !createContacts)).toEqual([
      expect.stringMatching(/^scenarios are /),
    ]);
  });

  it("the module's lists hold only what 3CX documents", () => {
    expect(DOCUMENTED_SCENARIO_IDS).toEqual(expect.arrayContaining([...SCENARIO_IDS]));
    expect(DOCUMENTED_OUTPUT_TYPES).toEqual(expect.arrayContaining([...OUTPUT_TYPES]));
  });

  // Each broken template, and what must be said about it.
  const broken: [string, (xml: string) => string, RegExp][] = [
    ['cut short', (x) => x.slice(0, x.length / 2), /^not well-formed XML/],
    ['an unescaped &', (x) => x.replace('callrelay (pbx)', 'callrelay & pbx'), /^not well-formed/],
    ['another root', (x) => x.replace(/<(\/?)Crm\b/g, '<$1CRM'), /^root element <CRM>/],
    ['no xsi namespace', (x) => x.replace(/xmlns:xsi="[^"]*" /, ''), /^root xmlns:xsi/],
    ['a default namespace', (x) => x.replace('<Crm ', '<Crm xmlns="urn:x" '), /default namespace/],
    ['a lower-case country', (x) => x.replace('Country="CZ"', 'Country="cz"'), /^root Country$/],
    ['a decimal Version', (x) => x.replace(/Version="\d+"/, 'Version="1.0"'), /^root Version$/],
    [
      'Connection before Number',
      (x) =>
        x.replace(
          /( *<Number [^\n]*\n)( *<Connection [^\n]*\n)/,
          (_m, n: string, c: string) => c + n,
        ),
      /^root children are Connection,Number/,
    ],
    ['an unknown Prefix', (x) => x.replace('Prefix="Plus"', 'Prefix="Plus1"'), /^Number Prefix$/],
    [
      'a parameter type 3CX lacks',
      (x) => x.replace('Name="Token" Type="Password"', 'Name="Token" Type="Secret"'),
      /^parameter Token Type$/,
    ],
    [
      'the token shown in clear',
      (x) => x.replace('Name="Token" Type="Password"', 'Name="Token" Type="String"'),
      /^Token is not a Password$/,
    ],
    ['no Basic auth', (x) => x.replace('Type="Basic"', 'Type="No"'), /^Authentication/],
    [
      'a scenario id 3CX never calls',
      (x) => x.replace('Id="SearchContacts"', 'Id="SearchContact"'),
      /^scenario "SearchContact": unknown id$/,
    ],
    ['a non-REST scenario', (x) => x.replace('Type="REST"', 'Type="SQL"'), /Type is not REST$/],
    [
      'Outputs before Rules',
      (x) =>
        x.replace(
          /( *<Rules>[\s\S]*?<\/Rules>\n)([\s\S]*?<\/Outputs>\n)/,
          (_m, r: string, rest: string) => rest + r,
        ),
      /^scenario "": children are Request,Variables,Outputs,Rules$/,
    ],
    [
      'an output type 3CX lacks',
      (x) => x.replace('Type="ContactUrl"', 'Type="ContactURL"'),
      /^scenario "": output type ContactURL$/,
    ],
    [
      'no phone output',
      (x) => x.replace(/ *<Output Type="Phone\w+"[^\n]*\n/g, ''),
      /^scenario "": no phone$/,
    ],
    [
      'a misspelt variable',
      (x) => x.replace('/crm/lookup/[Number]', '/crm/lookup/[Numbr]'),
      /^scenario "" uses undeclared \[Numbr\]$/,
    ],
    [
      "another scenario's variable",
      (x) => x.replace('/crm/email/[Email]', '/crm/email/[SearchText]'),
      /^scenario "LookupByEmail" uses undeclared \[SearchText\]$/,
    ],
    [
      'an output of a variable not read',
      (x) => x.replace('Name="CFirstName"', 'Name="CFirst"'),
      /^scenario "" uses undeclared \[CFirstName\]$/,
    ],
    [
      'a journal key renamed',
      (x) => x.replace('Key="durationSec"', 'Key="durationSeconds"'),
      /^ReportCall posts .*"durationSeconds"/,
    ],
    [
      'a journal value changed',
      (x) => x.replace('ToString("yyyyMMddHHmmss")', 'ToString("yyyy-MM-dd HH:mm:ss")'),
      /^ReportCall posts /,
    ],
    [
      'journaling always on',
      (x) => x.replace('SkipIf="[ReportCallEnabled]!=True"', 'SkipIf=""'),
      /^ReportCall is not switched/,
    ],
  ];
  it.each(broken)('catches a broken template: %s', (_name, mutate, said) => {
    const xml = template(false);
    const bad = mutate(xml);
    expect(bad).not.toBe(xml);
    expect(templateProblems(bad, false)).toEqual(
      expect.arrayContaining([expect.stringMatching(said)]),
    );
  });
});
