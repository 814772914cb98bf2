// A recipe's OAuth `auth.scope` is a template over `vars`, worked out once like tokenUrl (Entra
// wants "<the environment's URL>/.default"): the token request carries the scope rendered, and a
// scope whose expression is wrong is named at its place in the recipe.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { ConfigError } from '../../lib/yaml.js';
import { FakeOAuth } from '../../../test/fakes/oauth.js';
import { tempDir, writeRelayYaml } from '../../../test/support.js';
import { silentLogger } from '../../telemetry/log.js';
import { loadRecipe } from './recipe.js';
import type { RestConfig } from './spec.js';
import { create } from './target.js';

const RECIPE = `name: scoped
crm: Scoped CRM
vars:
  url: { required: true }
  environmentUrl: { required: true }
baseUrl: "{vars.url}/api"
auth:
  type: client_credentials
  tokenUrl: "{vars.url}/token"
  scope: "{vars.environmentUrl}/.default"
upsert:
  request: { method: PUT, url: "/calls/{key}", json: "{}" }
  id: answer.body.id
check:
  request: { method: GET, url: /whoami }
`;

function recipeDir(text = RECIPE): string {
  const dir = tempDir();
  mkdirSync(join(dir, 'targets'));
  writeFileSync(join(dir, 'targets', 'scoped.yaml'), text);
  return dir;
}

describe('auth.scope over vars', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('the token request carries the scope rendered, worked out once', async () => {
    const idp = await new FakeOAuth().start();
    cleanup.push(() => idp.close());
    const file = writeRelayYaml(recipeDir(), {
      more: `targets:\n  - name: scoped\n    type: rest\n    recipe: scoped\n    vars: { url: "${idp.url}", environmentUrl: "https://org1.crm4.dynamics.com" }\n    auth: { clientId: ${idp.clientId}, clientSecret: ${idp.clientSecret} }\n`,
    });
    const cfg = loadConfig(file, {}).targets[0]!;
    const t = create(cfg as unknown as RestConfig, { log: silentLogger, recordings: {} });
    cleanup.push(() => t.close());
    expect(await t.check!()).toMatch(/^credentials accepted \(Scoped CRM answered 200\)/);
    expect(await t.check!()).toMatch(/answered 200/);
    expect(idp.tokenRequests).toEqual([
      {
        grant: 'client_credentials',
        clientAuth: 'body',
        scope: 'https://org1.crm4.dynamics.com/.default',
      },
    ]);
    expect(idp.apiCalls).toEqual([200, 200]);
  });

  it('a scope with a bad expression is named at its place', () => {
    const text = RECIPE.replace('scope: "{vars.environmentUrl}', 'scope: "{vars.environmentUrl &}');
    const file = join(recipeDir(text), 'targets', 'scoped.yaml');
    let issues: string[] = [];
    try {
      loadRecipe(file);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      issues = err.issues.map((i) => `${i.file.split('/').at(-1)}:${i.line}:${i.col} ${i.message}`);
    }
    const line = text.split('\n').findIndex((l) => l.includes('scope:')) + 1;
    expect(issues).toEqual([expect.stringMatching(new RegExp(`^scoped\\.yaml:${line}:\\d+ `))]);
  });
});
