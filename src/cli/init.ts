// `callrelay init`: a relay.yaml and a .env for one phone system and one CRM, asked for (or taken
// from flags), with fresh random tokens, written to ./config/ (where every command looks first,
// config/load.ts) so that the quick start's ./relay.yaml stays as the clone has it; then the exact
// lines to paste into 3CX's add-on or Callerdesk's panel, URL and token filled in, and what was
// left unset and what that means. Secrets go to .env only (mode 600), which the commands read
// from beside relay.yaml (cli/util.ts). A CRM other than HubSpot and Pipedrive is any recipe in
// the shipped targets/ (or targets/ beside relay.yaml): its vars are asked from the recipe file
// itself, so a recipe added later needs nothing here.

import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline/promises';
import { getCountry, getCountryForTimezone } from 'countries-and-timezones';
import { defaultConfigPath, isLoopbackHost } from '../config/load.js';
import { AGENT_VALUE_HINT, isAgentValue } from '../targets/kit/agents.js';
import {
  authFields,
  findRecipe,
  loadRecipe,
  recipeFiles,
  SHIPPED_RECIPES,
  typedVars,
  userIdTest,
  type Recipe,
} from '../targets/rest/recipe.js';
import { nearest } from '../lib/near.js';
import { ConfigError, displayPath } from '../lib/yaml.js';
import { fail } from './util.js';

type Pbx = '3cx' | 'callerdesk';
type Crm = 'hubspot' | 'pipedrive';
type Proxy = 'caddy' | 'nginx';

export interface InitOptions {
  pbx?: Pbx;
  /**
   * `sandbox`: a HubSpot dry run (as before --sandbox existed); a name other than hubspot or
   * pipedrive is a recipe's (or its short name, RECIPE_SHORT).
   */
  crm?: string;
  /** A recipe's vars, each NAME=VALUE. */
  var?: string[];
  /** A dry run of the CRM: requests built and shown, never sent, no token needed. */
  sandbox?: boolean;
  url?: string;
  agent: string[];
  timezone?: string;
  country?: string;
  /** 3CX's web address: recordings.allowHosts and the click-to-call block derive from it. */
  pbxUrl?: string;
  companyDomain?: string;
  portalId?: string;
  proxy?: Proxy;
  dir: string;
  yes?: boolean;
  force?: boolean;
}

/** A recipe CRM (`type: rest`): the recipe and the vars relay.yaml gets. */
export interface RecipeAnswer {
  /** The recipe's name (`recipe:`). */
  name: string;
  /** The target's name and the prefix of its .env names: the short name, else the recipe's. */
  short: string;
  def: Recipe;
  /** Given or answered (defaults not asked for are the recipe's, left out). */
  vars: Record<string, string>;
}

export interface Answers {
  pbx: Pbx;
  crm: Crm | 'rest';
  recipe?: RecipeAnswer | undefined;
  dryRun: boolean;
  url: string;
  agents: [string, string][];
  timezone: string;
  country: string | undefined;
  pbxUrl?: string | undefined;
  /** Pipedrive's company domain. */
  companyDomain?: string | undefined;
  /** HubSpot's account id. */
  portalId?: string | undefined;
  proxy?: Proxy | undefined;
  /** Values taken without asking (--yes), each with where it came from: the summary says them. */
  assumed: string[];
}

const PBX_DEFAULTS: Record<Pbx, { timezone?: string; country?: string }> = {
  '3cx': {},
  // Callerdesk is an Indian service: its adapter's defaults.
  callerdesk: { timezone: 'Asia/Kolkata', country: 'IN' },
};

const token = (): string => randomBytes(24).toString('base64url');

/** An answer that will not do, with what to write instead. */
export class Refused extends Error {}

/**
 * Each answer init takes, from a flag or a question: the value to write (normalised), or Refused
 * saying why not. A blank answer is handled by the caller.
 */
export const parse = {
  /** A recipe's CRM takes its own user ids (Salesforce's 005...), as check does (rest/spec.ts). */
  agents(v: string, recipe?: Recipe): [string, string][] {
    const isId = recipe && userIdTest(recipe);
    return v
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean)
      .map((a) => {
        const m = /^([^=\s]+)\s*=\s*(\S+)$/.exec(a);
        if (!m) throw new Refused(`expected EXTENSION=EMAIL or EXTENSION=USER_ID, got "${a}"`);
        const ok = isId
          ? isId(m[2]!) || (!/^\d+$/.test(m[2]!) && isAgentValue(m[2]!))
          : isAgentValue(m[2]!);
        if (!ok)
          throw new Refused(
            `${m[1]!}=${m[2]!}: ${
              recipe?.lookups.user?.idPattern
                ? `expected the user's email or a ${recipe.crm} user id (${recipe.lookups.user.idPattern})`
                : AGENT_VALUE_HINT
            }`,
          );
        return [m[1]!, m[2]!] as [string, string];
      });
  },
  url(v: string): string {
    if (!URL.canParse(v) || !/^https?:$/.test(new URL(v).protocol))
      throw new Refused(
        `expected the relay's address as the PBX reaches it, e.g. https://relay.example.com; got "${v}"`,
      );
    return v.replace(/\/+$/, '');
  },
  timezone(v: string): string {
    try {
      new Intl.DateTimeFormat('en', { timeZone: v });
      return v;
    } catch {
      throw new Refused(`expected a time zone such as Europe/Prague, got "${v}"`);
    }
  },
  country(v: string): string {
    const cc = v.trim().toUpperCase();
    if (!/^[A-Z]{2}$/.test(cc) || !getCountry(cc))
      throw new Refused(`expected a two-letter country code such as CZ, got "${v}"`);
    return cc;
  },
  pbxUrl(v: string): string {
    const u = URL.canParse(v) ? new URL(v) : undefined;
    if (!u || !/^https?:$/.test(u.protocol) || u.pathname !== '/' || u.search || u.username)
      throw new Refused(
        `expected the PBX's web address as you open its console, e.g. https://pbx.example.com:5001; got "${v}"`,
      );
    return u.origin;
  },
  companyDomain(v: string): string {
    // acme, acme.pipedrive.com or https://acme.pipedrive.com/...: all mean acme.
    const d = v
      .trim()
      .replace(/^https?:\/\//i, '')
      .replace(/\.pipedrive\.com(\/.*)?$/i, '')
      .toLowerCase();
    if (!/^[a-z0-9-]+$/.test(d))
      throw new Refused(`expected the part before .pipedrive.com, e.g. acme; got "${v}"`);
    return d;
  },
  portalId(v: string): string {
    if (!/^\d+$/.test(v.trim()))
      throw new Refused(
        `expected the numeric HubSpot account id (top right in HubSpot), got "${v}"`,
      );
    return v.trim();
  },
};

/** A flag's value through its parse, or exit 2 naming the flag. */
function flag<T>(name: string, v: string | undefined, p: (v: string) => T): T | undefined {
  if (v === undefined) return undefined;
  try {
    return p(v);
  } catch (err) {
    if (err instanceof Refused) fail(`--${name}: ${err.message}`, 2);
    throw err;
  }
}

/** Short names for recipes whose own name is longer than people say it. */
export const RECIPE_SHORT: Record<string, string> = { zoho: 'zoho-crm', dynamics: 'dynamics-365' };

const BUILT_IN = ['hubspot', 'pipedrive'] as const;

/** The recipes init offers: the shipped ones, and those in targets/ beside relay.yaml. */
function recipeNames(dir: string): string[] {
  return [
    ...new Set([
      ...recipeFiles(SHIPPED_RECIPES).keys(),
      ...recipeFiles(join(dir, 'targets')).keys(),
    ]),
  ].sort();
}

/** The CRMs --crm takes, as help and refusals list them: "zoho (zoho-crm)" for a short name. */
export function crmChoices(dir = 'config'): string[] {
  const short = Object.fromEntries(Object.entries(RECIPE_SHORT).map(([k, v]) => [v, k]));
  return [
    ...BUILT_IN,
    ...recipeNames(resolve(dir)).map((n) => (short[n] ? `${short[n]} (${n})` : n)),
    'sandbox',
  ];
}

/** A --crm value or answer: a built-in CRM, sandbox, or a recipe loaded; Refused if none. */
export function crmOf(
  v: string,
  dir: string,
): { crm: Crm | 'sandbox'; recipe?: undefined } | { crm: 'rest'; recipe: RecipeAnswer } {
  const given = v.trim().toLowerCase();
  if (given === 'sandbox' || (BUILT_IN as readonly string[]).includes(given))
    return { crm: given as Crm | 'sandbox' };
  const name = RECIPE_SHORT[given] ?? given;
  // Names only: a path would be written into relay.yaml relative to somewhere else.
  const found = /^[a-z0-9][a-z0-9_-]*$/.test(name) ? findRecipe(name, dir) : undefined;
  if (!found || !('file' in found)) {
    const choices = crmChoices(dir);
    const near = nearest(
      given,
      choices.map((c) => c.split(' ')[0]!),
    );
    throw new Refused(
      `no CRM "${v}"${near ? ` (did you mean ${near}?)` : ''}: one of ${choices.join(', ')}`,
    );
  }
  let def: Recipe;
  try {
    def = loadRecipe(found.file).def;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new Refused(`recipe ${name} does not load: ${err.message}`);
  }
  const short = Object.entries(RECIPE_SHORT).find(([, n]) => n === name)?.[0] ?? name;
  return { crm: 'rest', recipe: { name, short, def, vars: {} } };
}

/** A --var flag's NAME=VALUE. */
export function varPair(v: string): [string, string] {
  const m = /^\s*([A-Za-z_][\w]*)\s*=(.*)$/.exec(v);
  if (!m) throw new Refused(`expected NAME=VALUE, got "${v}"`);
  return [m[1]!, m[2]!.trim()];
}

/** A recipe var's value, as `check` will hold it (its enum, its pattern); Refused if not. */
export function recipeVar(def: Recipe, name: string, value: string): string {
  const spec = def.vars[name];
  if (!spec) {
    const near = nearest(name, Object.keys(def.vars));
    throw new Refused(
      `recipe ${def.name} has no variable "${name}"${near ? ` (did you mean "${near}"?)` : ''} (known: ${Object.keys(def.vars).join(', ') || 'none'})`,
    );
  }
  if (value === '') throw new Refused(`${name}: a value is needed`);
  if (spec.enum && !spec.enum.map(String).includes(value))
    throw new Refused(`${name}: one of ${spec.enum.join(', ')}, not "${value}"`);
  if (spec.pattern && !new RegExp(spec.pattern).test(value))
    throw new Refused(`${name}: "${value}" does not match ${spec.pattern}`);
  return value;
}

/** The .env name of a recipe's auth field: SALESFORCE_CLIENT_ID for salesforce's clientId. */
export function authEnv(r: Pick<RecipeAnswer, 'short'>, field: string): string {
  const snake = field.replace(/([a-z0-9])([A-Z])/g, '$1_$2');
  return `${r.short}_${snake}`.toUpperCase().replace(/[^A-Z0-9]+/g, '_');
}

/** What each auth field is, by the recipe's auth type (the recipe's setup says where it is). */
const AUTH_FIELD: Record<string, string> = {
  token: 'an API token',
  clientId: "the OAuth app's client id",
  clientSecret: "the OAuth app's client secret",
  refreshToken: 'a refresh token the OAuth app was given',
  user: 'the API user',
  password: "that user's password",
};

/**
 * Where a shipped recipe's setup is written up (the credentials to get, the app to make). A
 * recipe not named here has its line under docs/targets.md "Shipped recipes".
 */
const RECIPE_SETUP: Record<string, string> = {
  salesforce: 'docs/crm-notes.md#e',
  'zoho-crm': 'docs/targets.md#setting-up-a-shipped-recipe-zoho-crm-recipe-zoho-crm',
  'dynamics-365': 'docs/targets.md#setting-up-a-shipped-recipe-dynamics-365-recipe-dynamics-365',
  freshsales: 'docs/targets.md#setting-up-a-shipped-recipe-freshsales-recipe-freshsales',
};
export const recipeSetup = (name: string): string =>
  RECIPE_SETUP[name] ?? 'docs/targets.md#shipped-recipes';

/** Comment lines of at most 100 columns (a recipe's descriptions are long), each `prefix# `. */
function comment(text: string, prefix = ''): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && prefix.length + 2 + line.length + 1 + word.length > 100) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out.map((l) => `${prefix}# ${l}`);
}

/** The recipe's sentence about credentials, if its description has one. */
function authSentence(def: Recipe): string | undefined {
  return (def.description ?? '')
    .split(/(?<=\.)\s+/)
    .find((s) => /authori[sz]|authenticat|token|api key/i.test(s));
}

/** The country a time zone is in (Europe/Prague: CZ), if it is one country's. */
export function countryOfZone(tz: string): string | undefined {
  return getCountryForTimezone(tz)?.id;
}

/** Asks what the flags left open (every question has a default: Enter takes it). */
async function ask(o: InitOptions, dir: string): Promise<Answers> {
  const localTz = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  const chosen = flag('crm', o.crm, (v) => crmOf(v, dir));
  const varFlags = (o.var ?? []).map((v) => flag('var', v, varPair)!);
  const given = {
    pbx: o.pbx,
    crm: chosen?.crm === 'sandbox' ? 'hubspot' : chosen?.crm,
    dryRun: chosen?.crm === 'sandbox' || o.sandbox ? true : undefined,
    url: flag('url', o.url, parse.url),
    agents: o.agent.length
      ? flag('agent', o.agent.join(','), (v) => parse.agents(v, chosen?.recipe?.def))
      : undefined,
    timezone: flag('timezone', o.timezone, parse.timezone),
    country: flag('country', o.country, parse.country),
    pbxUrl: flag('pbx-url', o.pbxUrl, parse.pbxUrl),
    companyDomain: flag('company-domain', o.companyDomain, parse.companyDomain),
    portalId: flag('portal-id', o.portalId, parse.portalId),
  };
  if (given.pbx === 'callerdesk' && given.pbxUrl)
    fail('--pbx-url is for 3CX (recordings and click-to-call through its WebAPI)', 2);
  // Each CRM's account flag, once the CRM is known (a flag, else the answer or --yes's default).
  const accountFor = (crm: Crm | 'rest'): void => {
    if (crm !== 'pipedrive' && given.companyDomain)
      fail(
        `--company-domain is for Pipedrive (--crm pipedrive)${crm === 'hubspot' ? '; HubSpot takes --portal-id' : ''}`,
        2,
      );
    if (crm !== 'hubspot' && given.portalId)
      fail(
        `--portal-id is for HubSpot${crm === 'pipedrive' ? '; Pipedrive takes --company-domain' : ''}`,
        2,
      );
    if (crm !== 'rest' && varFlags.length)
      fail(`--var is for a recipe's CRM (--crm ${crmChoices(dir).slice(2, -1).join(', ')})`, 2);
  };
  if (given.crm) accountFor(given.crm);
  // The recipe's vars given as flags, each checked as \`check\` will (exit 2 naming the flag).
  const withVars = (r: RecipeAnswer): RecipeAnswer => ({
    ...r,
    vars: Object.fromEntries(
      varFlags.map(([k, v]) => [k, flag('var', v, (x) => recipeVar(r.def, k, x))!]),
    ),
  });
  const recipe = chosen?.recipe && withVars(chosen.recipe);
  if (o.yes) {
    accountFor(given.crm ?? 'hubspot');
    // A required var has no default to take: refused, each with what it is.
    const missing = recipe
      ? Object.entries(recipe.def.vars).filter(([k, spec]) => spec.required && !(k in recipe.vars))
      : [];
    if (recipe && missing.length)
      fail(
        missing
          .map(
            ([k, spec]) =>
              `--crm ${recipe.name} needs --var ${k}=VALUE${spec.description ? `: ${spec.description}` : ''}`,
          )
          .join('\n'),
        2,
      );
    const pbx = given.pbx ?? '3cx';
    const assumed: string[] = [];
    const timezone = given.timezone ?? PBX_DEFAULTS[pbx].timezone ?? localTz;
    if (!given.timezone)
      assumed.push(
        `time zone ${timezone}: ${PBX_DEFAULTS[pbx].timezone ? `${pbx}'s default` : "this machine's"} (--timezone to change)`,
      );
    let country = given.country ?? PBX_DEFAULTS[pbx].country;
    if (!country && (country = countryOfZone(timezone)))
      assumed.push(`country ${country}: from the time zone ${timezone} (--country to change)`);
    return {
      pbx,
      crm: given.crm ?? 'hubspot',
      recipe,
      dryRun: given.dryRun ?? !given.crm,
      url: given.url ?? 'http://127.0.0.1:8080',
      agents: given.agents ?? [],
      timezone,
      country,
      pbxUrl: given.pbxUrl,
      companyDomain: given.companyDomain,
      portalId: given.portalId,
      proxy: o.proxy,
      assumed,
    };
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: false });
  const lines = rl[Symbol.asyncIterator]();
  // Questions read line by line, so that answers can also be piped in. A blank answer takes the
  // default; `blank` is what it means when the default is empty.
  const question = async <T>(
    text: string,
    dflt: string,
    p: (v: string) => T,
    blank?: T,
  ): Promise<T> => {
    for (;;) {
      // A required answer has no default to show.
      process.stdout.write(`${text}${dflt || blank !== undefined ? ` [${dflt}]` : ''}: `);
      const next = await lines.next();
      const v = next.done ? '' : String(next.value).trim();
      if (next.done) process.stdout.write('\n');
      const answer = v || dflt;
      if (!answer && blank !== undefined) return blank;
      try {
        return p(answer);
      } catch (err) {
        if (!(err instanceof Refused)) throw err;
        if (next.done) fail(`"${answer}" is not a valid answer to: ${text} (${err.message})`, 2);
        process.stdout.write(`  "${answer}" will not do (${err.message}); try again\n`);
      }
    }
  };
  const oneOf =
    <T extends string>(...choices: T[]) =>
    (v: string): T => {
      if ((choices as string[]).includes(v)) return v as T;
      throw new Refused(`one of ${choices.join(', ')}`);
    };
  try {
    const pbx =
      given.pbx ??
      (await question('Phone system: 3cx or callerdesk', '3cx', oneOf('3cx', 'callerdesk')));
    const crmAnswer =
      chosen ??
      (await question(
        `CRM: ${crmChoices(dir)
          .slice(0, -1)
          .map((c) => c.split(' ')[0])
          .join(', ')}, or sandbox (a HubSpot dry run: nothing is sent)`,
        'sandbox',
        (v) => crmOf(v, dir),
      ));
    const crm = crmAnswer.crm === 'sandbox' ? 'hubspot' : crmAnswer.crm;
    accountFor(crm);
    const rec = recipe ?? (crmAnswer.recipe && withVars(crmAnswer.recipe));
    const crmName = rec ? rec.def.crm : CRM_NAME[crm as Crm];
    const dryRun =
      given.dryRun ??
      (crmAnswer.crm === 'sandbox' ||
        (await question(
          `Start with a dry run (the ${crmName} requests are built and shown, never sent; no ${rec ? 'credentials' : 'token'} needed): yes or no`,
          'no',
          oneOf('yes', 'no'),
        )) === 'yes');
    // The recipe's vars that no flag gave: each required one, with what it is, and those with a
    // default (Enter takes it; only a different answer is written).
    if (rec)
      for (const [k, spec] of Object.entries(rec.def.vars)) {
        // timeZone: the PBX's time zone, asked below for both.
        if (k in rec.vars || (!spec.required && spec.default === undefined) || k === 'timeZone')
          continue;
        const choices = spec.enum ? ` (one of ${spec.enum.join(', ')})` : '';
        if (spec.description) process.stdout.write(`${k}: ${spec.description}\n`);
        const dflt = spec.default === undefined ? '' : String(spec.default);
        const v = await question(`${crmName} ${k}${choices}`, dflt, (x) =>
          recipeVar(rec.def, k, x),
        );
        if (v !== dflt) rec.vars[k] = v;
      }
    const url =
      given.url ??
      (await question(
        "The relay's public URL, as the PBX reaches it",
        'http://127.0.0.1:8080',
        parse.url,
      ));
    const pbxUrl =
      pbx === '3cx'
        ? (given.pbxUrl ??
          (await question(
            "3CX's web address, e.g. https://pbx.example.com:5001 (recordings come from there; blank: none yet)",
            '',
            parse.pbxUrl,
            '',
          )))
        : undefined;
    const companyDomain =
      crm === 'pipedrive' && !dryRun
        ? (given.companyDomain ??
          (await question(
            'Pipedrive company domain, the acme of acme.pipedrive.com (blank: none yet)',
            '',
            parse.companyDomain,
            '',
          )))
        : given.companyDomain;
    const portalId =
      crm === 'hubspot' && !dryRun
        ? (given.portalId ??
          (await question(
            'HubSpot account id, top right in HubSpot (blank: none yet)',
            '',
            parse.portalId,
            '',
          )))
        : given.portalId;
    const agents =
      given.agents ??
      (await question(
        `Agents: extension=CRM user email (or ${rec?.def.lookups.user?.idPattern ? `${rec.def.crm} user id` : 'numeric user id'}), comma-separated (blank: none yet)`,
        '',
        (v) => parse.agents(v, rec?.def),
        [],
      ));
    const timezone =
      given.timezone ??
      (await question(
        "The PBX's time zone",
        PBX_DEFAULTS[pbx].timezone ?? localTz,
        parse.timezone,
      ));
    const country =
      given.country ??
      ((await question(
        'Country for numbers dialled without a country code (two letters, blank: none)',
        PBX_DEFAULTS[pbx].country ?? countryOfZone(timezone) ?? '',
        parse.country,
        '',
      )) ||
        undefined);
    return {
      pbx,
      crm,
      recipe: rec,
      dryRun,
      url,
      agents,
      timezone,
      country,
      pbxUrl: pbxUrl || undefined,
      companyDomain: companyDomain || undefined,
      portalId: portalId || undefined,
      proxy: o.proxy,
      assumed: [],
    };
  } finally {
    rl.close();
  }
}

const CRM_NAME: Record<Crm, string> = { hubspot: 'HubSpot', pipedrive: 'Pipedrive' };

const CRM_TOKEN: Record<Crm, { env: string; where: string }> = {
  hubspot: {
    env: 'HUBSPOT_TOKEN',
    where:
      'a private app access token: HubSpot > Settings > Integrations > Private apps (scopes in the README)',
  },
  pipedrive: {
    env: 'PIPEDRIVE_TOKEN',
    where: 'your API token: Pipedrive > Personal preferences > API',
  },
};

/** relay.yaml's schema in this package, for editors (config/relay.schema.json). */
const SCHEMA = fileURLToPath(new URL('../../config/relay.schema.json', import.meta.url));

/** Signed links need a public HTTPS address: a CRM's player fetches from the internet. */
const links = (a: Answers): boolean =>
  new URL(a.url).protocol === 'https:' && !isLoopbackHost(new URL(a.url).hostname);

/** The port relay.yaml listens on unless PORT says otherwise (what a proxy forwards to). */
const PORT = 8080;

/** A recipe CRM's target: the recipe, its vars, and its credentials from .env. */
function recipeTargetLines(a: Answers, r: RecipeAnswer): string[] {
  const need = authFields(r.def.auth);
  const envs = need.map((f) => authEnv(r, f));
  // A recipe's `timeZone` is the zone its CRM shows times in: the PBX's, asked once for both.
  const given =
    'timeZone' in r.def.vars &&
    !('timeZone' in r.vars) &&
    a.timezone !== r.def.vars.timeZone!.default
      ? { ...r.vars, timeZone: a.timezone }
      : r.vars;
  const typed = typedVars(r.def, given);
  const vars = Object.keys(given).length
    ? ['    vars:', ...Object.entries(typed).map(([k, v]) => `      ${k}: ${JSON.stringify(v)}`)]
    : [];
  const others = Object.entries(r.def.vars)
    .filter(([k]) => !(k in given))
    .map(([k, spec]) => (spec.default === undefined ? k : `${k} (${String(spec.default)})`));
  return [
    ...comment(
      `${r.def.crm} through the recipe ${r.name} (setup: ${recipeSetup(r.name)}).` +
        (a.dryRun
          ? ` A dry run: the ${r.def.crm} requests are built and shown (callrelay calls ID, ` +
            `console), never sent. For the real thing: fill in ${envs.join(', ')} in .env and ` +
            'drop dryRun.'
          : ''),
      '  ',
    ),
    `  - name: ${r.short}`,
    '    type: rest',
    `    recipe: ${r.name}`,
    ...(a.dryRun ? ['    dryRun: true'] : []),
    ...vars,
    ...(others.length ? comment(`More vars (default): ${others.join(', ')}`, '    ') : []),
    ...(need.length ? ['    auth:', ...need.map((f, i) => `      ${f}: \${${envs[i]!}}`)] : []),
  ];
}

function targetLines(a: Answers): string[] {
  if (a.recipe) return recipeTargetLines(a, a.recipe);
  const env = CRM_TOKEN[a.crm as Crm].env;
  const account =
    a.crm === 'pipedrive' && a.companyDomain
      ? [
          '    # Links from the console to the person in Pipedrive; requests go to your domain.',
          `    companyDomain: ${a.companyDomain}`,
          `    baseUrl: https://${a.companyDomain}.pipedrive.com`,
        ]
      : a.crm === 'hubspot' && a.portalId
        ? [
            '    # Links from the console to the contact in HubSpot.',
            `    portalId: "${a.portalId}"`,
          ]
        : [];
  // Pipedrive cannot update a call log: it is written once, this long after the call ended, so
  // that the recording and the AI summary are in it. Said here, or a trial looks like a failure.
  const settle =
    a.crm === 'pipedrive'
      ? ['    settleSec: 60       # the call log is written 60 s after the call ends (0: at once)']
      : [];
  return a.dryRun
    ? [
        `  # A dry run: the ${CRM_NAME[a.crm as Crm]} requests are built and shown (callrelay calls ID, console),`,
        `  # never sent. For the real thing: set ${env} in .env and drop dryRun.`,
        `  - name: ${a.crm}`,
        `    type: ${a.crm}`,
        '    dryRun: true',
        ...account,
        ...settle,
        `    token: \${${env}:-dry-run-needs-no-token}`,
      ]
    : [`  - name: ${a.crm}`, `    type: ${a.crm}`, ...account, ...settle, `    token: \${${env}}`];
}

function threecxLines(a: Answers): string[] {
  const pbx = a.pbxUrl ?? 'https://pbx.example.com:5001';
  const recordings = [
    "    # Recordings (uploads, links, archive): fetched only from 3CX's recording folder,",
    '    # so that credentials set here never reach the rest of its WebAPI.',
    '    recordings:',
    `      allowHosts: ["${pbx}/webapi/recording/"]`,
  ];
  return [
    '    # Click-to-call (callrelay dial, POST /api/dial): the WebAPI address and key.',
    '    # pbx:',
    `    #   url: ${pbx}`,
    '    #   key: ${PBX_WEBAPI_KEY}',
    // Without the PBX's address there is nothing to allow yet: an example, commented out.
    ...(a.pbxUrl ? recordings : recordings.map((l, i) => (i < 2 ? l : `    # ${l.slice(4)}`))),
    '',
  ];
}

export function relayYaml(a: Answers, dir: string): string {
  const schemaRef = relative(dir, SCHEMA).split(sep).join('/');
  const listen = new URL(a.url);
  const local = isLoopbackHost(listen.hostname) || !!a.proxy;
  const agents = a.agents.length
    ? `    agents:\n${a.agents.map(([ext, who]) => `      ${JSON.stringify(ext)}: ${JSON.stringify(who)}`).join('\n')}\n`
    : '    agents: {}            # "101": alice@example.com: extension -> CRM user\n';
  const listenComment = a.proxy
    ? `Behind ${PROXY_NAME[a.proxy]} on this machine (docs/https.md): only it reaches the relay, and its\n  # X-Forwarded-For is believed (allowIps, the throttle of wrong admin tokens).`
    : local
      ? 'This machine only.'
      : 'Every interface: the PBX must reach it. Put HTTPS in front (docs/https.md).';
  return `# yaml-language-server: $schema=${schemaRef}
#
# Written by \`callrelay init\`. Secrets are in .env beside this file (keep it private, out of git);
# \${NAME} takes them from there or from the environment. Check: npx callrelay check --online
server:
  port: \${PORT:-${PORT}}
  # ${listenComment}
  host: \${HOST:-${local ? '127.0.0.1' : '0.0.0.0'}}
${a.proxy ? '  trustProxy: [127.0.0.1]\n' : ''}${links(a) ? `  # Recordings play in the CRM through signed links to here (README "Recordings").\n  publicUrl: ${a.url}\n  urlSecret: \${CALLRELAY_URL_SECRET}\n` : ''}
store:
  # Relative to this file.
  sqlite: ./data/relay.db

admin:
  token: \${CALLRELAY_ADMIN_TOKEN}

metrics:
  # Prometheus sends it as a bearer token (docs/metrics.md).
  token: \${CALLRELAY_METRICS_TOKEN}

log:
  level: info

sources:
  - name: ${a.pbx}
    adapter: ${a.pbx}
    token: \${CALLRELAY_${a.pbx === '3cx' ? '3CX' : 'CALLERDESK'}_TOKEN}
    timezone: ${a.timezone}
${a.country ? `    defaultCountry: ${a.country.toUpperCase()}\n` : ''}${a.pbx === '3cx' ? threecxLines(a).join('\n') : ''}
targets:
${targetLines(a).join('\n')}
${agents}`;
}

/** .env's lines for a recipe's credentials: each name, empty, with what it is and where. */
function recipeEnvLines(a: Answers, r: RecipeAnswer): string {
  const need = authFields(r.def.auth);
  if (!need.length) return '';
  const about = authSentence(r.def);
  return [
    '',
    `# ${r.def.crm} (recipe ${r.name}, ${r.def.auth.type} auth)${a.dryRun ? ': a dry run needs none' : ''}.`,
    ...(about ? comment(about) : []),
    `# Where to find them: ${recipeSetup(r.name)}`,
    ...need.flatMap((f) => [
      `# ${f}: ${AUTH_FIELD[f] ?? `the ${f} the recipe's auth sends`}`,
      `${authEnv(r, f)}=`,
    ]),
    '',
  ].join('\n');
}

function envFile(a: Answers, tokens: Record<string, string>): string {
  const crm = a.recipe
    ? recipeEnvLines(a, a.recipe)
    : `\n# ${CRM_TOKEN[a.crm as Crm].where}${a.dryRun ? ' (a dry run needs none)' : ''}\n# ${CRM_TOKEN[a.crm as Crm].env}=\n`;
  return (
    '# Written by `callrelay init`: the secrets relay.yaml names. Keep this file private.\n' +
    Object.entries(tokens)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n') +
    `\n${crm}`
  );
}

/** What to paste into the phone system, URL and token filled in. */
export function pbxLines(a: Answers, hookUrl: string): string {
  if (a.pbx === '3cx')
    return [
      "3CX: in the Webhooks/WebAPI add-on's ini file (TCXWebAPI.ini or WebhooksApi.ini), set",
      `  WEBHOOK_URL = ${hookUrl}`,
      `  WEBHOOK_POST_URL = ${hookUrl}`,
      '  POST = 1',
      '  RECORDING_FULL_INFO = 1',
      'and restart the add-on. Calls then arrive as they ring, are answered and end.',
    ].join('\n');
  return [
    "Callerdesk: in the panel's webhook settings, set the call report webhook and the live call",
    `webhook to ${hookUrl}`,
  ].join('\n');
}

const PROXY_NAME: Record<Proxy, string> = { caddy: 'Caddy', nginx: 'nginx' };

/**
 * The proxy's configuration for this relay: docs/https.md's recipe with the relay's name in it
 * (test/cli holds the two to each other).
 */
export function proxySnippet(proxy: Proxy, host: string): string {
  if (proxy === 'caddy')
    return [
      `${host} {`,
      '\trequest_body {',
      "\t\tmax_size 1MB          # the relay's server.bodyLimit",
      '\t}',
      `\treverse_proxy 127.0.0.1:${PORT}`,
      '}',
    ].join('\n');
  return [
    'server {',
    '    listen 443 ssl;',
    `    server_name ${host};`,
    `    ssl_certificate     /etc/letsencrypt/live/${host}/fullchain.pem;`,
    `    ssl_certificate_key /etc/letsencrypt/live/${host}/privkey.pem;`,
    '',
    "    client_max_body_size 1m;                 # the relay's server.bodyLimit",
    '',
    '    location / {',
    `        proxy_pass http://127.0.0.1:${PORT};`,
    '        proxy_http_version 1.1;',
    '        proxy_set_header Host $host;',
    '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '        proxy_set_header X-Forwarded-Proto $scheme;',
    '        proxy_read_timeout 60s;',
    "        proxy_buffering off;                 # the console's live view (server-sent events)",
    '    }',
    '}',
  ].join('\n');
}

/** What relay.yaml leaves unset, and what that means for the calls (the closing summary). */
export function leftUnset(a: Answers): string[] {
  const out: string[] = [];
  if (!a.country)
    out.push(
      'no country (--country): numbers without a country code stay as the PBX sent them, not E.164',
    );
  if (a.pbx === '3cx' && !a.pbxUrl)
    out.push(
      a.crm === 'pipedrive'
        ? 'no PBX URL (--pbx-url): Pipedrive gets no recordings, and click-to-call has no PBX'
        : 'no PBX URL (--pbx-url): the relay fetches no recordings, and click-to-call has no PBX',
    );
  if (a.crm === 'pipedrive' && !a.dryRun && !a.companyDomain)
    out.push('no company domain (--company-domain): the console cannot link to the CRM');
  if (a.crm === 'hubspot' && !a.dryRun && !a.portalId)
    out.push('no portal id (--portal-id): the console cannot link to the CRM');
  if (a.recipe && a.dryRun) {
    const envs = authFields(a.recipe.def.auth).map((f) => authEnv(a.recipe!, f));
    if (envs.length)
      out.push(
        `no ${a.recipe.def.crm} credentials (a dry run needs none): for the real thing, ${envs.join(', ')} in .env (${recipeSetup(a.recipe.name)}), then drop dryRun`,
      );
  }
  if (!a.agents.length) out.push('no agents (--agent): calls reach the CRM without an owner');
  return out;
}

export async function cmdInit(o: InitOptions): Promise<void> {
  const dir = resolve(o.dir);
  const yamlPath = join(dir, 'relay.yaml');
  const envPath = join(dir, '.env');
  // Only the two files init writes: the quick start's ./relay.yaml is never in the way.
  const existing = [yamlPath, envPath].filter((p) => existsSync(p));
  if (existing.length && !o.force)
    fail(`${existing.map(displayPath).join(' and ')} exist already: --force to overwrite`, 1);
  const a = await ask(o, dir);
  const sourceEnv = `CALLRELAY_${a.pbx === '3cx' ? '3CX' : 'CALLERDESK'}_TOKEN`;
  const tokens: Record<string, string> = {
    CALLRELAY_ADMIN_TOKEN: token(),
    [sourceEnv]: token(),
    CALLRELAY_METRICS_TOKEN: token(),
  };
  if (links(a)) tokens.CALLRELAY_URL_SECRET = token();
  mkdirSync(dir, { recursive: true });
  writeFileSync(yamlPath, relayYaml(a, dir));
  writeFileSync(envPath, envFile(a, tokens), { mode: 0o600 });
  chmodSync(envPath, 0o600);
  const hookUrl = `${a.url}/hooks/${a.pbx}/${tokens[sourceEnv]}`;
  const warnings: string[] = [];
  if (new URL(a.url).protocol === 'http:' && !isLoopbackHost(new URL(a.url).hostname))
    warnings.push(
      'The URL is plain http: the token travels in it readable by anyone on the way. Serve HTTPS ' +
        '(server.tls, or a proxy: docs/https.md) and give the PBX the https:// URL.',
    );
  const recipeEnvs = a.recipe
    ? authFields(a.recipe.def.auth).map((f) => authEnv(a.recipe!, f))
    : [];
  if (!a.dryRun && a.recipe && recipeEnvs.length)
    warnings.push(
      `Fill in ${recipeEnvs.map((e) => `${e}=`).join(', ')} in ${displayPath(envPath)} before starting (${a.recipe.def.crm}: ${recipeSetup(a.recipe.name)}).`,
    );
  else if (!a.dryRun && !a.recipe)
    warnings.push(
      `Paste ${CRM_TOKEN[a.crm as Crm].where.split(':')[0]} into ${displayPath(envPath)} as ${CRM_TOKEN[a.crm as Crm].env}= before starting.`,
    );
  const publicHost = new URL(a.url).hostname;
  const proxyHost = isLoopbackHost(publicHost) ? 'relay.example.com' : publicHost;
  const proxy = a.proxy
    ? [
        `${PROXY_NAME[a.proxy]} in front (docs/https.md${proxyHost === publicHost ? '' : `; write the relay's name for ${proxyHost}`}):`,
        ...proxySnippet(a.proxy, proxyHost)
          .split('\n')
          .map((l) => (l ? `  ${l}` : l)),
        '',
      ]
    : [];
  const unset = leftUnset(a);
  // Which file every command reads from now on (cli/util.ts): a --dir elsewhere needs --config.
  const found = defaultConfigPath() === yamlPath;
  const configFlag = found ? '' : ` --config ${displayPath(yamlPath)}`;
  const quickStart = resolve('relay.yaml');
  process.stdout.write(
    [
      `wrote ${displayPath(yamlPath)} and ${displayPath(envPath)} (fresh tokens; .env is readable by you only)`,
      ...(found && quickStart !== yamlPath && existsSync(quickStart)
        ? [
            `Commands here now read ${displayPath(yamlPath)}; ./relay.yaml (the quick start's) is left as it was.`,
          ]
        : []),
      '',
      pbxLines(a, hookUrl),
      '',
      ...proxy,
      ...(a.assumed.length ? ['Taken without asking:', ...a.assumed.map((l) => `  ${l}`), ''] : []),
      ...(unset.length
        ? [
            `Left unset (edit ${displayPath(yamlPath)}, or init again with the flag):`,
            ...unset.map((l) => `  ${l}`),
            '',
          ]
        : []),
      ...warnings.map((w) => `! ${w}`),
      ...(warnings.length ? [''] : []),
      `Next: npx callrelay check${configFlag}${a.dryRun ? '' : ' --online'}, then npx callrelay start${configFlag}`,
      `      (console: ${a.url}/console, sign in with CALLRELAY_ADMIN_TOKEN from ${displayPath(envPath)})`,
      '',
    ].join('\n'),
  );
}
