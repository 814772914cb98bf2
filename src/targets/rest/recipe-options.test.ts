// Recipe options the shipped recipes needed. Variables that are booleans or numbers (`enum:
// [true, false]`, `default: 3`): relay.yaml may give them as YAML scalars or as text, a value
// outside the enum is refused at its place, and expressions see the type the recipe declared (so
// `vars.flag = false` means what it says). A tokenUrl beyond a plain path (a data centre's
// exception) loads. A recipe that lists the deliverOn it takes refuses the other at relay.yaml's
// place.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { ConfigError } from '../../lib/yaml.js';
import { dryRun } from '../../../test/recipes/golden.js';
import { tempDir, writeRelayYaml } from '../../../test/support.js';
import { loadRecipe, typedVars } from './recipe.js';

const RECIPE = `name: flags
crm: Flags CRM
deliverOn: [ended]
vars:
  flag: { default: true, enum: [true, false] }
  count: { default: 3 }
  region: { default: eu, enum: [eu, ca] }
baseUrl: "https://api.example.{vars.region}"
auth:
  type: refresh_token
  tokenUrl: "https://{vars.region = 'ca' ? 'login.example.ca' : 'auth.example.' & vars.region}/token"
create:
  request:
    method: POST
    url: /calls
    json: |
      { "flag": vars.flag = false ? 'off' : 'on', "next": vars.count + 1, "type": $type(vars.flag) }
  id: answer.body.id
update:
  request: { method: PUT, url: "/calls/{remote.id}", json: "{}" }
find:
  request: { method: GET, url: /calls }
  id: answer.body.id
`;

function recipeDir(): string {
  const dir = tempDir();
  mkdirSync(join(dir, 'targets'));
  writeFileSync(join(dir, 'targets', 'flags.yaml'), RECIPE);
  return dir;
}

const issuesOf = (vars: string, more = ''): string[] => {
  const file = writeRelayYaml(recipeDir(), {
    more: `targets:\n  - name: flags\n    type: rest\n    recipe: flags\n    vars: ${vars}\n    dryRun: true\n${more}`,
  });
  try {
    loadConfig(file, {});
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => i.message);
    throw err;
  }
  return [];
};

describe('recipe vars with boolean and numeric values', () => {
  it('relay.yaml gives them as scalars or text; outside the enum is refused', () => {
    expect(issuesOf('{ flag: false, count: 5 }')).toEqual([]);
    expect(issuesOf('{ flag: "true" }')).toEqual([]);
    expect(issuesOf('{ flag: "no" }')).toEqual([
      expect.stringMatching(/vars\.flag: one of true, false, not "no"/),
    ]);
  });

  it('expressions see the declared type', async () => {
    const file = join(recipeDir(), 'targets', 'flags.yaml');
    const { def } = loadRecipe(file);
    expect(typedVars(def, { flag: 'false', count: '5', region: 'ca' })).toEqual({
      flag: false,
      count: 5,
      region: 'ca',
    });
    const flow = '3cx/3cx-v2-incoming-answered';
    const body = async (vars: Record<string, string>) =>
      JSON.parse(
        (await dryRun(file, { flow, vars, expect: { requests: [] } }))[0]!.sent!,
      ) as unknown;
    expect(await body({ flag: 'false', count: '5' })).toEqual({
      flag: 'off',
      next: 6,
      type: 'boolean',
    });
    expect(await body({})).toEqual({ flag: 'on', next: 4, type: 'boolean' });
  });
});

describe("a recipe's deliverOn list", () => {
  it('refuses deliverOn: change at its place when the recipe takes only ended', () => {
    expect(issuesOf('{}', '    deliverOn: ended\n')).toEqual([]);
    expect(issuesOf('{}', '    deliverOn: change\n')).toEqual([
      expect.stringMatching(/deliverOn: change does not suit recipe flags, which takes only ended/),
    ]);
  });
});
