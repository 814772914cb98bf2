// What the recipe language gained for Salesforce, on the tests' own Pebble CRM (test/fakes/
// pebble.ts) through a real relay: baseUrl (and tokenUrl) as any expression over `vars`, worked
// out once; a user id of the CRM's own form in `agents:` (lookups.user.idPattern), checked by
// the config check at its place; and a lookup whose numbers come back as one bare string.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { ConfigError } from '../../lib/yaml.js';
import { startRelay } from '../../runtime.js';
import { FakePebble } from '../../../test/fakes/pebble.js';
import {
  ROOT,
  sendFlowRequest,
  settleDeliveries,
  tempDir,
  writeRelayYaml,
} from '../../../test/support.js';
import { loadRecipe } from './recipe.js';

const KEY = 'pebble-key-0123456789abcdef';
const PEBBLE = readFileSync(join(ROOT, 'test', 'recipes', 'pebble-crm.yaml'), 'utf8');

/** Pebble's recipe as Salesforce's needs it: an expression for baseUrl, ids like "u-7abc". */
const recipe = (text = PEBBLE): string =>
  text
    // Functions, not strings: a replacement string reads `$'` as "the text after the match".
    .replace(
      'baseUrl: "{vars.url}"',
      () => `baseUrl: "{$contains(vars.url, '://') ? vars.url : 'https://' & vars.url}"`,
    )
    .replace(
      '    read: answer.body.users[0].id\n',
      () => "    read: answer.body.users[0].id\n    idPattern: '^u-[a-z0-9]+$'\n",
    )
    .replace('"numbers": phones,', '"numbers": phones[0],');

function relayYaml(target: string, text = recipe()): string {
  const dir = tempDir();
  mkdirSync(join(dir, 'targets'));
  writeFileSync(join(dir, 'targets', 'pebble-crm.yaml'), text);
  return writeRelayYaml(dir, {
    more: `targets:\n  - name: pebble\n    type: rest\n    recipe: pebble-crm\n    auth: { apiKey: ${KEY} }\n${target}`,
  });
}

describe('recipe language: vars in URLs, user ids, bare strings', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('works baseUrl out of an expression, takes an id as the recipe says, reads a bare number', async () => {
    const crm = await new FakePebble({ header: 'x-pebble-key', value: KEY }).start();
    cleanup.push(() => crm.close());
    const who = crm.addContact('Dana', ['+420 774 852 600'], '2021-01-01T00:00:00Z');
    crm.addContact('Look-alike', ['+1 420 774 852 600'], '2020-01-01T00:00:00Z');
    const file = relayYaml(`    vars: { url: "${crm.url}" }\n    agents: { "117": u-7abc }\n`);
    const relay = await startRelay(loadConfig(file, {}), undefined, {
      delivery: { pollMs: 20, backoff: { baseMs: 50, maxMs: 400 } },
    });
    cleanup.push(() => relay.close());
    const res = await sendFlowRequest(relay.port, '3cx', {
      method: 'POST',
      contentType: 'application/json',
      body: '{"Event":"incoming","Callerid":"420774852600","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:09","Id":"261206100000_1-1"}',
    });
    expect(res!.status).toBe(200);
    await settleDeliveries(relay);
    const [call] = [...crm.calls.values()];
    expect(call!.fields).toMatchObject({ contact_id: who, owner_id: 'u-7abc' });
    // The id was used as it is: nobody was asked who "u-7abc" is.
    expect(crm.count('GET', '/v1/users')).toBe(0);
  });

  it("refuses an agents: entry that is neither an email nor the recipe's id form, at its place", () => {
    const file = relayYaml(
      `    vars: { url: "https://pebble.example" }\n    agents: { "117": u-7abc, "118": "12345", "119": nobody }\n`,
    );
    let err: unknown;
    try {
      loadConfig(file, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const text = (err as ConfigError).message;
    expect(text).toMatch(
      /relay\.yaml:\d+:\d+ agents\.118: expected the user's email or a Pebble CRM user id \(\^u-\[a-z0-9\]\+\$\), not "12345"/,
    );
    expect(text).toMatch(/agents\.119: .*not "nobody"/);
    expect(text).not.toMatch(/agents\.117/);
  });

  it('refuses an idPattern that is not a regex, at its place in the recipe', () => {
    const dir = tempDir();
    const file = join(dir, 'pebble-crm.yaml');
    writeFileSync(
      file,
      recipe().replace("idPattern: '^u-[a-z0-9]+$'", () => "idPattern: '^u-[a-z'"),
    );
    expect(() => loadRecipe(file)).toThrow(/pebble-crm\.yaml:\d+:\d+ idPattern: Invalid regular/);
  });
});
