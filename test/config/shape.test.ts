// Target expressions in relay.yaml (HubSpot title/body/properties, Pipedrive subject/note/fields):
// `check` compiles each one and names the line and column of a syntax error or an unknown
// $function, in quoted, plain and block scalars; good ones load with the places of each.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/lib/yaml.js';
import { ADAPTERS, tempDir } from '../support.js';

const yaml = (targets: string): string => `admin:
  token: admin-token-1234
adapters: ${ADAPTERS}
sources:
  - name: pbx
    adapter: 3cx
    token: pbx-token-1234
targets:
${targets}`;

function load(text: string): ReturnType<typeof loadConfig> | string[] {
  const file = join(tempDir(), 'relay.yaml');
  writeFileSync(file, text);
  try {
    return loadConfig(file, {});
  } catch (err) {
    if (err instanceof ConfigError)
      return err.issues.map((i) => `${i.file.split('/').at(-1)}:${i.line}:${i.col} ${i.message}`);
    throw err;
  }
}

describe('target expressions at config load', () => {
  it('names the line and column of a syntax error and of an unknown $function', () => {
    const issues = load(
      yaml(`  - name: hubspot
    type: hubspot
    token: pat-eu1-0000000000
    title: '"Anruf: " & $cutt(title, 20)'
    properties: |
      {
        "call_queue": call.rang[0],
        "talk": $mmss(talkSec,
      }
  - name: pipedrive
    type: pipedrive
    token: pd-token-0000000000
    subject: "title & $upper(call.direction)"
    note: body &
    fields: '{ "x": $frobnicate() }'
`),
    );
    expect(issues).toEqual([
      // Line 12: the quote is at column 12, `$cutt` 12 characters into the expression.
      expect.stringMatching(/^relay\.yaml:12:25 title: unknown function \$cutt \(known besides/),
      // In a block, at the line and column of the file where the parser gave up.
      expect.stringMatching(/^relay\.yaml:17:7 properties: expression error: /),
      expect.stringMatching(/^relay\.yaml:21:23 subject: unknown function \$upper /),
      'relay.yaml:22:16 note: expression error: Unexpected end of expression',
      "relay.yaml:23:21 fields: unknown function $frobnicate (known besides JSONata's: $mmss, $digits, $national, $localTime, $day, $cut, $uuid)",
    ]);
  });

  it('loads good expressions, with the place of each for messages at delivery', () => {
    const cfg = load(
      yaml(`  - name: hubspot
    type: hubspot
    token: pat-eu1-0000000000
    associate: [deal]
    properties: |
      (
        $double := function($x) { $x * 2 };
        { "call_rank": $double(talkSec), "call_day": $day(call.startedAt, "Europe/Prague") }
      )
`),
    );
    if (Array.isArray(cfg)) throw new Error(cfg.join('\n'));
    expect(cfg.targets[0]).toMatchObject({
      associate: ['deal'],
      shapePlaces: { properties: 'relay.yaml:14:7' },
    });
  });

  it('refuses an associate or deal value the targets do not know', () => {
    const issues = load(
      yaml(`  - name: hubspot
    type: hubspot
    token: pat-eu1-0000000000
    associate: [ticket]
  - name: pipedrive
    type: pipedrive
    token: pd-token-0000000000
    deal: latest
`),
    );
    expect(issues).toEqual([
      expect.stringMatching(/^relay\.yaml:12:17 targets\.0\.associate\.0: /),
      expect.stringMatching(/^relay\.yaml:16:11 targets\.1\.deal: /),
    ]);
  });
});
