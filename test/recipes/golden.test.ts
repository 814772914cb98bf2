// Every shipped recipe (targets/) loads, compiles and holds to its golden cases; the suite knows
// no recipe by name, so one dropped into the folder is checked the same way and leaves it green.

import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHIPPED_RECIPES } from '../../src/targets/rest/recipe.js';
import { ROOT, tempDir } from '../support.js';
import { runRecipes } from './golden.js';

const OWN = join(ROOT, 'test', 'recipes');

describe('recipes', () => {
  it('every shipped recipe loads, compiles and holds to its cases', async () => {
    const results = await runRecipes(SHIPPED_RECIPES);
    expect(results.filter((r) => r.problems.length)).toEqual([]);
  });

  it('a recipe dropped into the folder is checked too, and holds', async () => {
    const dir = join(tempDir(), 'targets');
    mkdirSync(join(dir, 'cases'), { recursive: true });
    cpSync(SHIPPED_RECIPES, dir, { recursive: true });
    cpSync(join(OWN, 'pebble-crm.yaml'), join(dir, 'pebble-crm.yaml'));
    cpSync(join(OWN, 'cases', 'pebble-crm'), join(dir, 'cases', 'pebble-crm'), { recursive: true });
    const results = await runRecipes(dir);
    expect(results).toContainEqual({
      recipe: 'pebble-crm',
      case: '3cx-v2-incoming-answered.json',
      problems: [],
    });
    expect(results.filter((r) => r.problems.length)).toEqual([]);
  });

  it('a case that does not hold, or a recipe that does not load, is reported', async () => {
    const dir = join(tempDir(), 'targets');
    mkdirSync(join(dir, 'cases', 'pebble-crm'), { recursive: true });
    cpSync(join(OWN, 'pebble-crm.yaml'), join(dir, 'pebble-crm.yaml'));
    writeFileSync(
      join(dir, 'broken.yaml'),
      'name: broken\ncrm: X\nbaseUrl: x\nauth: { type: bearer }\ncreat: {}\n',
    );
    writeFileSync(
      join(dir, 'cases', 'pebble-crm', 'wrong.json'),
      JSON.stringify({
        flow: '3cx/3cx-v2-incoming-answered',
        vars: { url: 'https://api.pebble.example' },
        expect: { requests: [{ method: 'POST', path: '/v1/calls', body: { subject: 'nope' } }] },
      }),
    );
    const results = await runRecipes(dir);
    expect(results).toEqual([
      {
        recipe: 'broken',
        case: '(load)',
        problems: [
          expect.stringMatching(
            /broken\.yaml:5:1 unknown field "creat" \(did you mean "create"\?\)/,
          ),
        ],
      },
      {
        recipe: 'pebble-crm',
        case: 'wrong.json',
        problems: [expect.stringMatching(/^POST \/v1\/calls: body \{"subject":"Inbound call/)],
      },
    ]);
  });
});
