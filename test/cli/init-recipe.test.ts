// `callrelay init --crm <recipe>`: every recipe in the shipped targets/ (and one beside relay.yaml)
// is a CRM init can set up, its vars asked or taken from --var and checked as `check` checks them,
// its credentials left as ${NAME}s for .env; what it writes is what `check` and loadConfig take.

import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, recipeVar, Refused, varPair } from '../../src/cli/init.js';
import { loadConfig } from '../../src/config/load.js';
import { loadRecipe } from '../../src/targets/rest/recipe.js';
import { MAIN, ROOT, tempDir } from '../support.js';

const cli = (args: string[], o: { input?: string; env?: NodeJS.ProcessEnv } = {}) => {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    input: o.input ?? '',
    encoding: 'utf8',
    env: { PATH: process.env.PATH, TZ: 'UTC', ...o.env },
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
};

/** The variables of DIR/.env, empty ones included. */
const envOf = (dir: string): Record<string, string> =>
  Object.fromEntries(
    readFileSync(join(dir, '.env'), 'utf8')
      .split('\n')
      .filter((l) => /^[A-Z_0-9]+=/.test(l))
      .map((l) => l.split('=', 2) as [string, string]),
  );

/** The recipes shipped in targets/, by name. */
const shipped = readdirSync(join(ROOT, 'targets'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => f.replace(/\.yaml$/, ''));

describe('callrelay init --crm <recipe>', () => {
  it.each([
    {
      crm: 'salesforce',
      vars: ['domain=acme--uat.sandbox', 'timeZone=Europe/Berlin'],
      // Salesforce's own user ids, as check takes them.
      more: ['--agent', '101=005000000000001AAA,102=ann@acme.test'],
      agents: { '101': '005000000000001AAA', '102': 'ann@acme.test' },
      name: 'salesforce',
      recipe: 'salesforce',
      auth: { clientId: 'SALESFORCE_CLIENT_ID', clientSecret: 'SALESFORCE_CLIENT_SECRET' },
      expected: { domain: 'acme--uat.sandbox', timeZone: 'Europe/Berlin', apiVersion: '62.0' },
    },
    {
      crm: 'zoho-crm',
      vars: ['org=org20071234567', 'dataCentre=eu', 'searchLeads=false'],
      more: [],
      agents: {},
      name: 'zoho',
      recipe: 'zoho-crm',
      auth: {
        clientId: 'ZOHO_CLIENT_ID',
        clientSecret: 'ZOHO_CLIENT_SECRET',
        refreshToken: 'ZOHO_REFRESH_TOKEN',
      },
      expected: { org: 'org20071234567', dataCentre: 'eu', searchLeads: 'false' },
    },
  ])(
    '--yes --crm $crm writes a rest target that loads and checks once .env is filled in',
    ({ crm, vars, more, agents, name, recipe, auth, expected }) => {
      const dir = tempDir();
      const r = cli([
        'init',
        '--yes',
        '--dir',
        dir,
        '--crm',
        crm,
        ...vars.flatMap((v) => ['--var', v]),
        ...more,
      ]);
      expect(r.status, r.err).toBe(0);
      const env = envOf(dir);
      // Every credential the recipe's auth needs is in .env, empty, with where to find it.
      for (const e of Object.values(auth)) expect(env[e]).toBe('');
      const envText = readFileSync(join(dir, '.env'), 'utf8');
      expect(envText).toMatch(/# Where to find them: docs\/(targets|crm-notes)\.md#\S+/);
      // The summary says what is still to fill in.
      expect(r.out).toContain(
        `! Fill in ${Object.values(auth)
          .map((e) => `${e}=`)
          .join(', ')} in ${join(dir, '.env')} before starting`,
      );

      // Unfilled, check names the first of them at its place in relay.yaml.
      const config = join(dir, 'relay.yaml');
      const unfilled = cli(['check', '--config', config]);
      expect(unfilled.status).toBe(1);
      expect(unfilled.err).toContain(`environment variable ${Object.values(auth)[0]!} is not set`);

      const secrets = Object.fromEntries(Object.values(auth).map((e) => [e, `secret-of-${e}`]));
      const cfg = loadConfig(config, { ...env, ...secrets });
      expect(cfg.targets).toMatchObject([
        {
          name,
          type: 'rest',
          recipe,
          dryRun: false,
          vars: expected,
          agents,
          auth: Object.fromEntries(Object.entries(auth).map(([f, e]) => [f, `secret-of-${e}`])),
        },
      ]);
      const check = cli(['check', '--config', config], { env: secrets });
      expect(check.err).toBe('');
      expect(check.status).toBe(0);
    },
  );

  it('takes the short names, and --sandbox is a dry run that needs no credentials', () => {
    const dir = tempDir();
    const r = cli(['init', '--yes', '--dir', dir, '--crm', 'zoho', '--sandbox', '--var', 'org=o1']);
    expect(r.status, r.err).toBe(0);
    expect(r.out).not.toContain('! Fill in');
    expect(r.out).toContain(
      '  no Zoho CRM credentials (a dry run needs none): for the real thing, ZOHO_CLIENT_ID, ' +
        'ZOHO_CLIENT_SECRET, ZOHO_REFRESH_TOKEN in .env',
    );
    const cfg = loadConfig(join(dir, 'relay.yaml'), envOf(dir));
    expect(cfg.targets).toMatchObject([
      { name: 'zoho', type: 'rest', recipe: 'zoho-crm', dryRun: true, vars: { org: 'o1' } },
    ]);
    const check = cli(['check', '--config', join(dir, 'relay.yaml')]);
    expect(check.err).toBe('');
    expect(check.status).toBe(0);
  });

  it('refuses a --var the recipe would refuse, naming its pattern, enum or name', () => {
    const dir = tempDir();
    const r = cli(['init', '--yes', '--dir', dir, '--crm', 'zoho', '--var', 'org=org 1']);
    expect(r.status).toBe(2);
    const zoho = loadRecipe(join(ROOT, 'targets', 'zoho-crm.yaml')).def;
    expect(r.err).toBe(`--var: org: "org 1" does not match ${zoho.vars.org!.pattern!}\n`);
    expect(readdirSync(dir)).toEqual([]);
    // The same checks, as the flag and the question make them.
    const refused = (f: () => unknown): string => {
      try {
        f();
      } catch (err) {
        if (err instanceof Refused) return err.message;
        throw err;
      }
      throw new Error('not refused');
    };
    expect(refused(() => recipeVar(zoho, 'dataCentre', 'de'))).toBe(
      'dataCentre: one of com, eu, in, com.au, jp, ca, sa, com.cn, uk, not "de"',
    );
    expect(refused(() => recipeVar(zoho, 'orgg', '2'))).toMatch(
      /^recipe zoho-crm has no variable "orgg" \(did you mean "org"\?\) \(known: dataCentre, org,/,
    );
    expect(refused(() => recipeVar(zoho, 'org', ''))).toBe('org: a value is needed');
    expect(refused(() => varPair('org'))).toBe('expected NAME=VALUE, got "org"');
    expect(varPair(' org = o1 ')).toEqual(['org', 'o1']);
    expect(recipeVar(zoho, 'searchLeads', 'false')).toBe('false');
    // Agents: a recipe's own user ids where it has them, and only those (as check holds them).
    const sf = loadRecipe(join(ROOT, 'targets', 'salesforce.yaml')).def;
    expect(parse.agents('101=005000000000001AAA', sf)).toEqual([['101', '005000000000001AAA']]);
    expect(refused(() => parse.agents('101=42', sf))).toMatch(
      /^101=42: expected the user's email or a Salesforce user id \(\^005/,
    );
    expect(parse.agents('101=42', zoho)).toEqual([['101', '42']]);
  });

  it('refuses --yes without a required var, and --var for a CRM that has none', () => {
    const bad = (crm: string, ...vars: string[]) => {
      const r = cli([
        'init',
        '--yes',
        '--dir',
        tempDir(),
        '--crm',
        crm,
        ...vars.flatMap((v) => ['--var', v]),
      ]);
      expect(r.status).toBe(2);
      return r.err;
    };
    // A required var has no default for --yes to take: refused with what it is.
    expect(bad('salesforce')).toMatch(/^--crm salesforce needs --var domain=VALUE: The org's My/);
    // Vars are a recipe's; HubSpot takes none.
    expect(bad('hubspot', 'org=o1')).toContain("--var is for a recipe's CRM");
  });

  it('refuses an unknown --crm listing every choice, the shipped recipes among them', () => {
    const r = cli(['init', '--yes', '--dir', tempDir(), '--crm', 'salesforc']);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(/^--crm: no CRM "salesforc" \(did you mean salesforce\?\): one of /);
    const listed = r.err.split(': one of ')[1]!;
    for (const c of ['hubspot', 'pipedrive', 'sandbox', 'zoho (zoho-crm)', ...shipped])
      expect(listed).toContain(c);
    // And --help lists them too.
    const help = cli(['init', '--help']).out.replace(/\s+/g, ' ');
    for (const c of ['hubspot', 'pipedrive', 'sandbox', ...shipped]) expect(help).toContain(c);
  });

  it('asks for the recipe vars, each checked, with its description and default', () => {
    const dir = tempDir();
    // Phone system, CRM, no dry run; the vars in the recipe's order: dataCentre (one it does not
    // have, then eu), org (blank, then a bad one), searchLeads as it is (timeZone is not asked:
    // it is the PBX's, asked with the rest); then URL, PBX URL, agents, zone, country.
    const r = cli(['init', '--dir', dir], {
      input:
        '3cx\nzoho\nno\nde\neu\n\nacme corp\norg42\n\n' +
        'http://127.0.0.1:8080\n\n\nEurope/Berlin\nDE\n',
    });
    expect(r.status, r.err).toBe(0);
    expect(r.out).toContain("org: The part of the CRM's address after /crm/ in the browser");
    expect(r.out).toContain('"" will not do (org: a value is needed); try again');
    expect(r.out).toMatch(/"acme corp" will not do \(org: "acme corp" does not match \^/);
    expect(r.out).toContain(
      'Zoho CRM dataCentre (one of com, eu, in, com.au, jp, ca, sa, com.cn, uk) [com]: ',
    );
    expect(r.out).toContain('"de" will not do (dataCentre: one of com, eu');
    const cfg = loadConfig(join(dir, 'relay.yaml'), {
      ...envOf(dir),
      ZOHO_CLIENT_ID: 'a',
      ZOHO_CLIENT_SECRET: 'b',
      ZOHO_REFRESH_TOKEN: 'c',
    });
    expect(cfg.targets[0]).toMatchObject({
      type: 'rest',
      recipe: 'zoho-crm',
      vars: { org: 'org42', dataCentre: 'eu', timeZone: 'Europe/Berlin', searchLeads: 'true' },
    });
    expect(r.out).not.toContain('Zoho CRM timeZone');
    expect(cfg.sources[0]).toMatchObject({ timezone: 'Europe/Berlin', defaultCountry: 'DE' });
  });

  it('sets up any recipe in targets/ beside relay.yaml, with nothing about it in init', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'targets'));
    // A recipe init has never heard of: header auth with fields of its own, a required var.
    const zoho = readFileSync(join(ROOT, 'targets', 'zoho-crm.yaml'), 'utf8');
    writeFileSync(
      join(dir, 'targets', 'acme-crm.yaml'),
      zoho
        .replace('name: zoho-crm', 'name: acme-crm')
        .replace('crm: Zoho CRM', 'crm: Acme CRM')
        .replace(
          /^auth:\n(?: {2}.*\n)+/m,
          'auth:\n  type: header\n  fields: [apiKey, account]\n' +
            '  headers: { X-Key: "{auth.apiKey}", X-Account: "{auth.account}" }\n',
        ),
    );
    const r = cli(['init', '--yes', '--dir', dir, '--crm', 'acme-crm', '--var', 'org=o1']);
    expect(r.status, r.err).toBe(0);
    const env = envOf(dir);
    expect(env).toMatchObject({ ACME_CRM_API_KEY: '', ACME_CRM_ACCOUNT: '' });
    const cfg = loadConfig(join(dir, 'relay.yaml'), {
      ...env,
      ACME_CRM_API_KEY: 'k',
      ACME_CRM_ACCOUNT: 'a',
    });
    expect(cfg.targets[0]).toMatchObject({
      name: 'acme-crm',
      recipe: 'acme-crm',
      auth: { apiKey: 'k', account: 'a' },
    });
  });
});
