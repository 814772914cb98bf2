// Every shipped recipe (targets/) loads, compiles and holds to its golden cases; the suite knows
// no recipe by name, so one dropped into the folder is checked the same way and leaves it green.

import { cpSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SHIPPED_RECIPES } from '../../src/targets/rest/recipe.js';
import { ROOT, tempDir } from '../support.js';
import { runRecipes, type CaseResult } from './golden.js';

const OWN = join(ROOT, 'test', 'recipes');
/** The shipped recipes by name, one test each (CI's probe looks for its copy's name). */
const SHIPPED = readdirSync(SHIPPED_RECIPES)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => f.slice(0, -'.yaml'.length));

describe('recipes', () => {
  let shipped: CaseResult[] = [];
  beforeAll(async () => {
    shipped = await runRecipes(SHIPPED_RECIPES);
  });

  it.each(SHIPPED)('shipped recipe %s loads, compiles and holds to its cases', (name) => {
    const mine = shipped.filter((r) => r.recipe === name);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.filter((r) => r.problems.length)).toEqual([]);
  });

  it('nothing in the shipped folder goes unchecked', () => {
    expect(shipped.filter((r) => !SHIPPED.includes(r.recipe))).toEqual([]);
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
    expect(results).toContainEqual({
      recipe: 'pebble-crm',
      case: '3cx-v1-incoming-answered.json',
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
    // A path with a query must match it: here the search's term.
    writeFileSync(
      join(dir, 'cases', 'pebble-crm', 'wrong-query.json'),
      JSON.stringify({
        flow: '3cx/3cx-v1-incoming-answered',
        vars: { url: 'https://api.pebble.example' },
        expect: { requests: [{ method: 'GET', path: '/v1/contacts?phone=%2B420000000000' }] },
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
        case: 'wrong-query.json',
        problems: ['no GET /v1/contacts?phone=%2B420000000000 (in order) among the requests made'],
      },
      {
        recipe: 'pebble-crm',
        case: 'wrong.json',
        problems: [expect.stringMatching(/^POST \/v1\/calls: body \{"subject":"Inbound call/)],
      },
    ]);
  });
});
