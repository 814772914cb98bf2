// `callrelay init`: a relay.yaml and a .env for one phone system and one CRM, asked for (or taken
// from flags), with fresh random tokens; then the exact lines to paste into 3CX's add-on or
// Callerdesk's panel, URL and token filled in. Secrets go to .env only (mode 600), which the
// commands read from beside relay.yaml (cli/util.ts).

import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline/promises';
import { isLoopbackHost } from '../config/load.js';
import { displayPath } from '../lib/yaml.js';
import { fail } from './util.js';

type Pbx = '3cx' | 'callerdesk';
type Crm = 'hubspot' | 'pipedrive' | 'sandbox';

export interface InitOptions {
  pbx?: Pbx;
  crm?: Crm;
  url?: string;
  agent: string[];
  timezone?: string;
  country?: string;
  dir: string;
  yes?: boolean;
  force?: boolean;
}

interface Answers {
  pbx: Pbx;
  crm: Crm;
  url: string;
  agents: [string, string][];
  timezone: string;
  country: string | undefined;
}

const PBX_DEFAULTS: Record<Pbx, { timezone?: string; country?: string }> = {
  '3cx': {},
  // Callerdesk is an Indian service: its adapter's defaults.
  callerdesk: { timezone: 'Asia/Kolkata', country: 'IN' },
};

const token = (): string => randomBytes(24).toString('base64url');

function parseAgents(list: string[]): [string, string][] {
  return list
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean)
    .map((v) => {
      const m = /^([^=\s]+)\s*=\s*(\S+)$/.exec(v);
      if (!m) fail(`--agent takes EXTENSION=EMAIL (or a numeric CRM user id), got "${v}"`, 2);
      return [m[1]!, m[2]!] as [string, string];
    });
}

function checkUrl(url: string): string {
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol))
    fail(
      `--url must be the relay's address as the PBX reaches it, e.g. https://relay.example.com; got "${url}"`,
      2,
    );
  return url.replace(/\/+$/, '');
}

/** Asks what the flags left open (every question has a default: Enter takes it). */
async function ask(o: InitOptions): Promise<Answers> {
  const localTz = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  const given = {
    pbx: o.pbx,
    crm: o.crm,
    url: o.url,
    agents: o.agent.length ? parseAgents(o.agent) : undefined,
  };
  if (o.yes) {
    const pbx = given.pbx ?? '3cx';
    return {
      pbx,
      crm: given.crm ?? 'sandbox',
      url: checkUrl(given.url ?? 'http://127.0.0.1:8080'),
      agents: given.agents ?? [],
      timezone: o.timezone ?? PBX_DEFAULTS[pbx].timezone ?? localTz,
      country: o.country ?? PBX_DEFAULTS[pbx].country,
    };
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: false });
  const lines = rl[Symbol.asyncIterator]();
  // Questions read line by line, so that answers can also be piped in.
  const question = async (text: string, dflt: string, valid: (v: string) => boolean) => {
    for (;;) {
      process.stdout.write(`${text} [${dflt}]: `);
      const next = await lines.next();
      const v = next.done ? '' : String(next.value).trim();
      if (next.done) process.stdout.write('\n');
      const answer = v || dflt;
      if (valid(answer)) return answer;
      if (next.done) fail(`"${answer}" is not a valid answer to: ${text}`, 2);
      process.stdout.write(`  "${answer}" will not do; try again\n`);
    }
  };
  try {
    const pbx = (given.pbx ??
      (await question(
        'Phone system: 3cx or callerdesk',
        '3cx',
        (v) => v === '3cx' || v === 'callerdesk',
      ))) as Pbx;
    const crm = (given.crm ??
      (await question(
        'CRM: hubspot, pipedrive, or sandbox (a dry run: nothing is sent)',
        'sandbox',
        (v) => ['hubspot', 'pipedrive', 'sandbox'].includes(v),
      ))) as Crm;
    const url =
      given.url ??
      (await question(
        "The relay's public URL, as the PBX reaches it",
        'http://127.0.0.1:8080',
        (v) => URL.canParse(v),
      ));
    const agents =
      given.agents ??
      parseAgents([
        await question(
          'Agents: extension=CRM user email, comma-separated (blank: none yet)',
          '',
          (v) => !v || v.split(',').every((a) => /^\s*[^=\s]+\s*=\s*\S+\s*$/.test(a)),
        ),
      ]);
    const timezone =
      o.timezone ??
      (await question("The PBX's time zone", PBX_DEFAULTS[pbx].timezone ?? localTz, (v) => {
        try {
          return !!new Intl.DateTimeFormat('en', { timeZone: v });
        } catch {
          return false;
        }
      }));
    const country =
      o.country ??
      ((await question(
        'Country for numbers dialled without a country code (two letters, blank: none)',
        PBX_DEFAULTS[pbx].country ?? '',
        (v) => !v || /^[A-Za-z]{2}$/.test(v),
      )) ||
        undefined);
    return { pbx, crm, url: checkUrl(url), agents, timezone, country };
  } finally {
    rl.close();
  }
}

const CRM_TOKEN: Record<Exclude<Crm, 'sandbox'>, { env: string; where: string }> = {
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

export function relayYaml(a: Answers, dir: string): string {
  const schemaRef = relative(dir, SCHEMA).split(sep).join('/');
  const listen = new URL(a.url);
  const local = isLoopbackHost(listen.hostname);
  const agents = a.agents.length
    ? `    agents:\n${a.agents.map(([ext, who]) => `      ${JSON.stringify(ext)}: ${JSON.stringify(who)}`).join('\n')}\n`
    : '    agents: {}            # "101": alice@example.com: extension -> CRM user\n';
  const type = a.crm === 'sandbox' ? 'hubspot' : a.crm;
  const target =
    a.crm === 'sandbox'
      ? [
          '  # A dry run: the HubSpot requests are built and shown (callrelay calls ID, console),',
          '  # never sent. For the real thing: set HUBSPOT_TOKEN in .env and drop dryRun.',
          `  - name: crm`,
          `    type: ${type}`,
          '    dryRun: true',
          '    token: ${HUBSPOT_TOKEN:-dry-run-needs-no-token}',
        ].join('\n')
      : [`  - name: ${a.crm}`, `    type: ${type}`, `    token: \${${CRM_TOKEN[a.crm].env}}`].join(
          '\n',
        );
  return `# yaml-language-server: $schema=${schemaRef}
#
# Written by \`callrelay init\`. Secrets are in .env beside this file (keep it private, out of git);
# \${NAME} takes them from there or from the environment. Check: npx callrelay check --online
server:
  port: \${PORT:-8080}
  # ${local ? 'This machine only.' : 'Every interface: the PBX must reach it. Put HTTPS in front (docs/https.md).'}
  host: \${HOST:-${local ? '127.0.0.1' : '0.0.0.0'}}
${links(a) ? `  # Recordings play in the CRM through signed links to here (README "Recordings").\n  publicUrl: ${a.url}\n  urlSecret: \${CALLRELAY_URL_SECRET}\n` : ''}
store:
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
${a.country ? `    defaultCountry: ${a.country.toUpperCase()}\n` : ''}${
    a.pbx === '3cx'
      ? [
          '    # Click-to-call (callrelay dial, POST /api/dial): the WebAPI address and key.',
          '    # pbx:',
          '    #   url: https://pbx.example.com:5001',
          '    #   key: ${PBX_WEBAPI_KEY}',
          "    # Recordings (uploads, links, archive): fetched only from 3CX's recording folder,",
          '    # so that credentials set here never reach the rest of its WebAPI.',
          '    # recordings:',
          '    #   allowHosts: ["https://pbx.example.com:5001/webapi/recording/"]',
          '',
        ].join('\n')
      : ''
  }
targets:
${target}
${agents}`;
}

function envFile(a: Answers, tokens: Record<string, string>): string {
  const crm =
    a.crm === 'sandbox' ? '' : `\n# ${CRM_TOKEN[a.crm].where}\n# ${CRM_TOKEN[a.crm].env}=\n`;
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

export async function cmdInit(o: InitOptions): Promise<void> {
  const dir = resolve(o.dir);
  const yamlPath = join(dir, 'relay.yaml');
  const envPath = join(dir, '.env');
  const existing = [yamlPath, envPath].filter((p) => existsSync(p));
  if (existing.length && !o.force)
    fail(`${existing.map(displayPath).join(' and ')} exist already: --force to overwrite`, 1);
  const a = await ask(o);
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
  if (a.crm !== 'sandbox')
    warnings.push(
      `Paste ${CRM_TOKEN[a.crm].where.split(':')[0]} into ${displayPath(envPath)} as ${CRM_TOKEN[a.crm].env}= before starting.`,
    );
  process.stdout.write(
    [
      `wrote ${displayPath(yamlPath)} and ${displayPath(envPath)} (fresh tokens; .env is readable by you only)`,
      '',
      pbxLines(a, hookUrl),
      '',
      ...warnings.map((w) => `! ${w}`),
      ...(warnings.length ? [''] : []),
      `Next: npx callrelay check${a.crm === 'sandbox' ? '' : ' --online'}, then npx callrelay start`,
      `      (console: ${a.url}/console, sign in with CALLRELAY_ADMIN_TOKEN from .env)`,
      '',
    ].join('\n'),
  );
}
