// relay.yaml's sources[].crm checks: the targets crm.lookup and crm.createIn name exist (a slip
// gets a suggestion), can look contacts up or create them, and a crm: without lookup has a target
// that can look contacts up; each issue names its place in relay.yaml.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { crmIssues, loadConfig, type ContactAbility } from '../../src/config/load.js';
import { ConfigError, loadYamlFile } from '../../src/lib/yaml.js';
import type { CommonTargetConfig } from '../../src/targets/types.js';
import { ADAPTERS, tempDir } from '../support.js';

const yaml = (crm: string): string => `admin:
  token: admin-token-1234
adapters: ${ADAPTERS}
sources:
  - name: pbx
    adapter: 3cx-crm-template
    token: pbx-token-1234
${crm}targets:
  - name: webhook
    type: http
    url: https://example.com/in
  - name: archive
    type: http
    url: https://example.com/archive
`;

function write(text: string): string {
  const file = join(tempDir(), 'relay.yaml');
  writeFileSync(file, text);
  return file;
}

function issues(text: string, readOnly = false): string[] {
  try {
    loadConfig(write(text), {}, { readOnly });
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.line}:${i.col} ${i.message}`);
    throw err;
  }
  return [];
}

describe('sources[].crm in relay.yaml', () => {
  it('names a misspelt target in crm.lookup and crm.createIn, with a suggestion', () => {
    expect(
      issues(yaml('    crm:\n      lookup: [webhok]\n      createIn: archiv\n'), true),
    ).toEqual([
      '9:16 no target "webhok" under targets: (did you mean "webhook"?) (targets: webhook, archive)',
      '10:17 no target "archiv" under targets: (did you mean "archive"?) (targets: webhook, archive)',
    ]);
    expect(issues(yaml('    crm:\n      lookup: [salesforce]\n'), true)).toEqual([
      '9:16 no target "salesforce" under targets: (targets: webhook, archive)',
    ]);
  });

  it('puts crm: only on a source whose adapter takes the template journal', () => {
    // The template posts ReportCall to the same source: an add-on source could not map it.
    const text = yaml('    crm:\n      lookup: [webhok]\n').replace(
      'adapter: 3cx-crm-template',
      'adapter: 3cx',
    );
    expect(issues(text, true)).toEqual([
      expect.stringMatching(
        /^6:14 crm: is 3CX's CRM template integration.*adapter must be 3cx-crm-template, not 3cx/,
      ),
      '9:16 no target "webhok" under targets: (did you mean "webhook"?) (targets: webhook, archive)',
    ]);
  });

  it('refuses targets that cannot look contacts up or create them', () => {
    expect(issues(yaml('    crm:\n      lookup: [webhook]\n      createIn: archive\n'))).toEqual([
      '9:16 target "webhook" (http) cannot look contacts up; those that can: none',
      '10:17 target "archive" (http) cannot create contacts; those that can: none',
    ]);
  });

  it('refuses a crm: without lookup when no target can look contacts up', () => {
    expect(issues(yaml('    crm: {}\n'))).toEqual([
      '8:10 crm: answers 3CX from targets that look contacts up (hubspot, pipedrive, a recipe ' +
        'with a contact lookup), and none of targets: can (targets: webhook, archive); for ' +
        'journaling only, say lookup: []',
    ]);
  });

  it('lets a command that only reads (3cx-template) through without a working CRM', () => {
    expect(issues(yaml('    crm: {}\n'), true)).toEqual([]);
    const cfg = loadConfig(write(yaml('    crm:\n      cacheSec: 60\n')), {}, { readOnly: true });
    expect(cfg.sources[0]!.crm).toMatchObject({ cacheSec: 60, answerWithinMs: 2000 });
  });

  it('accepts targets whose spec says they can (crmIssues with the specs answered here)', () => {
    const file = write(
      yaml('    crm:\n      lookup: [archive, webhook]\n      createIn: archive\n'),
    );
    const y = loadYamlFile(file, { env: {} });
    const targets = [
      { name: 'webhook', type: 'http' },
      { name: 'archive', type: 'http' },
    ] as (CommonTargetConfig & Record<string, unknown>)[];
    const sources = [{ crm: { lookup: ['archive', 'webhook'], createIn: 'archive' } }];
    const can =
      (finds: string[], creates: string[]) =>
      (t: { name: string }): ContactAbility => ({
        find: finds.includes(t.name),
        create: creates.includes(t.name),
      });
    expect(
      crmIssues(y, sources, targets, can(['webhook', 'archive'], ['archive']), {
        capabilities: true,
      }),
    ).toEqual([]);
    expect(
      crmIssues(y, sources, targets, can(['webhook'], []), { capabilities: true }).map(
        (i) => `${i.line}:${i.col} ${i.message}`,
      ),
    ).toEqual([
      '9:16 target "archive" (http) cannot look contacts up; those that can: webhook',
      '10:17 target "archive" (http) cannot create contacts; those that can: none',
    ]);
    expect(
      crmIssues(y, [{ crm: {} }], targets, can(['archive'], []), { capabilities: true }),
    ).toEqual([]);
  });
});
