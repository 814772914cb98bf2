// The command line as a user meets it: help for every command, mistakes answered with exit code
// 2 and a suggestion, and `callrelay init` writing a relay.yaml and .env that check and start take
// as they are, with the lines for the phone system filled in.

import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { leftUnset, parse, proxySnippet, Refused, type Answers } from '../../src/cli/init.js';
import { buildProgram } from '../../src/cli/program.js';
import { loadConfig } from '../../src/config/load.js';
import { allowedRecordingUrl } from '../../src/targets/kit/recordings.js';
import { AGENT_VALUE_HINT } from '../../src/targets/kit/agents.js';
import { freePort, MAIN, ROOT, tempDir } from '../support.js';

const cli = (args: string[], o: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {}) => {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    cwd: o.cwd,
    input: o.input ?? '',
    encoding: 'utf8',
    // Nothing of the test run's environment decides what the relay reads; the machine's time
    // zone is UTC unless a test says otherwise.
    env: { PATH: process.env.PATH, TZ: 'UTC', ...o.env },
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
};

describe('callrelay --help', () => {
  const commands = buildProgram().commands.map((c) => c.name());

  it('lists every command, and --version says the version', () => {
    const r = cli(['--help']);
    expect(r.status).toBe(0);
    for (const c of commands) expect(r.out).toMatch(new RegExp(`^  ${c} `, 'm'));
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(cli(['--version']).out.trim()).toBe(`callrelay ${pkg.version as string}`);
    // No command at all: the same help, as a first step for someone who typed only the name.
    expect(cli([]).out).toBe(r.out);
  });

  it.each(buildProgram().commands.map((c) => [c.name(), c] as const))(
    '%s --help shows its usage and every option',
    (name, command) => {
      const r = cli([name, '--help']);
      expect(r.status).toBe(0);
      expect(r.out).toContain(`Usage: callrelay ${name}`);
      for (const o of command.options) expect(r.out).toContain(o.flags);
      expect(cli(['help', name]).out).toBe(r.out);
    },
  );

  it('answers a mistyped command or option with exit code 2 and the near name', () => {
    const cmd = cli(['simulte']);
    expect(cmd.status).toBe(2);
    expect(cmd.err).toContain("unknown command 'simulte'");
    expect(cmd.err).toContain('(Did you mean simulate?)');
    const opt = cli(['calls', '--limt', '5']);
    expect(opt.status).toBe(2);
    expect(opt.err).toContain("unknown option '--limt'");
    expect(opt.err).toContain('(Did you mean --limit?)');
    const bad = cli(['calls', '--limit', 'many']);
    expect(bad.status).toBe(2);
    expect(bad.err).toContain('--limit takes a whole number');
    const missing = cli(['backfill', '--since', '2026-11-01']);
    expect(missing.status).toBe(2);
    expect(missing.err).toContain("required option '--target <name>' not specified");
  });
});

describe('callrelay init', () => {
  it('writes relay.yaml and a private .env from flags, and prints the 3CX lines', () => {
    const dir = tempDir();
    const r = cli([
      'init',
      '--yes',
      '--pbx',
      '3cx',
      '--crm',
      'hubspot',
      '--url',
      'https://relay.example.com/',
      '--agent',
      '101=alice@example.com',
      '--agent',
      '102=bob@example.com,103=90001',
      '--timezone',
      'Europe/Prague',
      '--country',
      'cz',
      '--dir',
      dir,
    ]);
    expect(r.status, r.err).toBe(0);
    const env = Object.fromEntries(
      readFileSync(join(dir, '.env'), 'utf8')
        .split('\n')
        .filter((l) => /^[A-Z_0-9]+=/.test(l))
        .map((l) => l.split('=', 2) as [string, string]),
    );
    // Fresh random tokens, long enough, different from each other and from run to run.
    expect(env.CALLRELAY_ADMIN_TOKEN).toMatch(/^[\w-]{32}$/);
    expect(env.CALLRELAY_3CX_TOKEN).toMatch(/^[\w-]{32}$/);
    expect(env.CALLRELAY_ADMIN_TOKEN).not.toBe(env.CALLRELAY_3CX_TOKEN);
    expect(env.CALLRELAY_METRICS_TOKEN).toMatch(/^[\w-]{32}$/);
    expect(statSync(join(dir, '.env')).mode & 0o777).toBe(0o600);
    // The CRM token is for the user to paste: left unset, never invented.
    expect(env.HUBSPOT_TOKEN).toBeUndefined();
    expect(readFileSync(join(dir, '.env'), 'utf8')).toContain('# HUBSPOT_TOKEN=');

    const hook = `https://relay.example.com/hooks/3cx/${env.CALLRELAY_3CX_TOKEN!}`;
    expect(r.out).toContain(`  WEBHOOK_URL = ${hook}\n  WEBHOOK_POST_URL = ${hook}\n`);
    expect(r.out).toContain('  POST = 1\n  RECORDING_FULL_INFO = 1\n');
    expect(r.out).toContain('HUBSPOT_TOKEN');
    // A folder no command looks in by itself: the next steps name it.
    const file = join(dir, 'relay.yaml');
    expect(r.out).toContain(
      `Next: npx callrelay check --config ${file} --online, then npx callrelay start --config ${file}\n`,
    );

    // relay.yaml holds no secret, only references to .env's variables.
    const yaml = readFileSync(join(dir, 'relay.yaml'), 'utf8');
    for (const v of Object.values(env)) expect(yaml).not.toContain(v);
    const cfg = loadConfig(join(dir, 'relay.yaml'), { ...env, HUBSPOT_TOKEN: 'pat-na1-00000000' });
    expect(cfg.server.host).toBe('0.0.0.0');
    expect(cfg.sources).toMatchObject([
      {
        name: '3cx',
        token: env.CALLRELAY_3CX_TOKEN,
        timezone: 'Europe/Prague',
        defaultCountry: 'CZ',
      },
    ]);
    expect(cfg.targets).toMatchObject([
      {
        name: 'hubspot',
        type: 'hubspot',
        dryRun: false,
        agents: { '101': 'alice@example.com', '102': 'bob@example.com', '103': '90001' },
      },
    ]);
    expect(cfg.adminToken).toBe(env.CALLRELAY_ADMIN_TOKEN);
    // Recordings from 3CX's recording folder only, as its URLs have them, once uncommented.
    expect(yaml).toContain(
      '    # recordings:\n    #   allowHosts: ["https://pbx.example.com:5001/webapi/recording/"]\n',
    );
    const recordingsOn = join(dir, 'recordings-on.yaml');
    writeFileSync(recordingsOn, yaml.replace(/^( {4})# (recordings:| {2}allowHosts:)/gm, '$1$2'));
    const rec = loadConfig(recordingsOn, { ...env, HUBSPOT_TOKEN: 'pat-na1-00000000' }).sources[0]!
      .recordings;
    const url = 'https://pbx.example.com:5001/webapi/recording/230307114903_10-1-1.mp3';
    expect(allowedRecordingUrl(url, rec)).toBe(true);
    expect(allowedRecordingUrl('https://pbx.example.com:5001/webapi/KEY/makecall', rec)).toBe(
      false,
    );
    // A public HTTPS address: recordings get signed links to it, with a secret of their own.
    expect(env.CALLRELAY_URL_SECRET).toMatch(/^[\w-]{32}$/);
    expect(cfg.links).toEqual({
      publicUrl: 'https://relay.example.com',
      secret: env.CALLRELAY_URL_SECRET,
      ttlDays: undefined,
    });

    // check reads .env beside relay.yaml, and names what is still missing.
    const check = cli(['check', '--config', join(dir, 'relay.yaml')]);
    expect(check.status).toBe(1);
    expect(check.err).toMatch(/relay\.yaml:\d+:\d+ .*HUBSPOT_TOKEN/);
    writeFileSync(
      join(dir, '.env'),
      `${readFileSync(join(dir, '.env'), 'utf8')}HUBSPOT_TOKEN=pat-na1-0000\n`,
    );
    expect(cli(['check', '--config', join(dir, 'relay.yaml')]).status).toBe(0);

    // A second init would overwrite the tokens the PBX has: only with --force.
    const again = cli(['init', '--yes', '--dir', dir]);
    expect(again.status).toBe(1);
    expect(again.err).toContain('exist already: --force to overwrite');
    expect(readFileSync(join(dir, 'relay.yaml'), 'utf8')).toBe(yaml);
  });

  it('asks what the flags leave open, answers read line by line', () => {
    const dir = tempDir();
    // Phone system, CRM, no dry run, URL (a bad one first), company domain, agents (one that is
    // not a user first), then the defaults for zone and country.
    const r = cli(['init', '--dir', dir], {
      input:
        'callerdesk\npipedrive\n\nnot a url\nhttp://203.0.113.5:8080\nacme.pipedrive.com\n' +
        '201=ann\n201=ann@example.com\n\n\n',
    });
    expect(r.status, r.err).toBe(0);
    expect(r.out).toContain('"not a url" will not do (');
    expect(r.out).toContain(`"201=ann" will not do (201=ann: ${AGENT_VALUE_HINT}); try again`);
    const env = readFileSync(join(dir, '.env'), 'utf8');
    const token = /^CALLRELAY_CALLERDESK_TOKEN=(.+)$/m.exec(env)![1]!;
    expect(r.out).toContain(`webhook to http://203.0.113.5:8080/hooks/callerdesk/${token}`);
    // Plain http to a public address: the token would travel readable.
    expect(r.out).toContain('! The URL is plain http');
    const cfg = loadConfig(join(dir, 'relay.yaml'), {
      CALLRELAY_ADMIN_TOKEN: 'x'.repeat(32),
      CALLRELAY_CALLERDESK_TOKEN: token,
      CALLRELAY_METRICS_TOKEN: 'z'.repeat(32),
      PIPEDRIVE_TOKEN: 'pd-0123456789',
    });
    expect(cfg.sources[0]).toMatchObject({
      name: 'callerdesk',
      timezone: 'Asia/Kolkata',
      defaultCountry: 'IN',
    });
    expect(cfg.targets[0]).toMatchObject({
      type: 'pipedrive',
      dryRun: false,
      companyDomain: 'acme',
      baseUrl: 'https://acme.pipedrive.com',
      agents: { '201': 'ann@example.com' },
    });
  });

  it('with --yes and nothing else makes a relay that runs at once against a sandbox', () => {
    const dir = tempDir();
    expect(cli(['init', '--yes', '--dir', dir]).status).toBe(0);
    const check = cli(['check'], { cwd: dir });
    expect(check.err).toBe('');
    expect(check.status).toBe(0);
    const cfg = loadConfig(join(dir, 'relay.yaml'), {
      CALLRELAY_ADMIN_TOKEN: 'x'.repeat(32),
      CALLRELAY_3CX_TOKEN: 'y'.repeat(32),
      CALLRELAY_METRICS_TOKEN: 'z'.repeat(32),
    });
    expect(cfg.server.host).toBe('127.0.0.1');
    expect(cfg.targets).toMatchObject([{ name: 'hubspot', type: 'hubspot', dryRun: true }]);
  });
});

/** The variables init wrote to DIR/.env. */
const envOf = (dir: string): Record<string, string> =>
  Object.fromEntries(
    readFileSync(join(dir, '.env'), 'utf8')
      .split('\n')
      .filter((l) => /^[A-Z_0-9]+=/.test(l))
      .map((l) => l.split('=', 2) as [string, string]),
  );

/** init --yes ARGS into a new folder: the folder, what init printed, and relay.yaml loaded. */
function initYes(args: string[], o: { tz?: string; env?: NodeJS.ProcessEnv } = {}) {
  const dir = tempDir();
  const r = cli(['init', '--yes', '--dir', dir, ...args], { env: { TZ: o.tz ?? 'UTC' } });
  expect(r.status, r.err).toBe(0);
  const cfg = loadConfig(join(dir, 'relay.yaml'), { ...envOf(dir), ...o.env });
  return { dir, out: r.out, cfg, yaml: readFileSync(join(dir, 'relay.yaml'), 'utf8') };
}

const hsAnswers: Answers = {
  pbx: '3cx',
  crm: 'hubspot',
  dryRun: false,
  url: 'https://relay.acme.cz',
  agents: [['101', 'jana@acme.cz']],
  timezone: 'Europe/Prague',
  country: 'CZ',
  pbxUrl: 'https://pbx.acme.cz:5001',
  portalId: '1234567',
  assumed: [],
};

describe('callrelay init, from the quick start to production (issue 21)', () => {
  it('writes config/ beside the quick start, which every command then reads', async () => {
    const dir = tempDir();
    copyFileSync(join(ROOT, 'relay.yaml'), join(dir, 'relay.yaml'));
    const quickStart = readFileSync(join(dir, 'relay.yaml'), 'utf8');
    const r = cli(['init', '--yes'], { cwd: dir });
    expect(r.status, r.err).toBe(0);
    expect(r.out).toContain('wrote config/relay.yaml and config/.env');
    expect(r.out).toContain("./relay.yaml (the quick start's) is left as it was");
    expect(r.out).toContain('Next: npx callrelay check, then npx callrelay start\n');
    // The quick start's file is untouched, and its calls stay in its own database.
    expect(readFileSync(join(dir, 'relay.yaml'), 'utf8')).toBe(quickStart);
    expect(statSync(join(dir, 'config', '.env')).mode & 0o777).toBe(0o600);
    const cfg = loadConfig(join(dir, 'config', 'relay.yaml'), envOf(join(dir, 'config')));
    expect(cfg.store).toMatchObject({ sqlite: join(dir, 'config', 'data', 'relay.db') });

    const check = cli(['check'], { cwd: dir });
    expect(check.status, check.err).toBe(0);
    expect(check.out).toMatch(/^using config\/relay\.yaml \(found in \.\/config\)\nok {2}config/);
    const chosen = cli(['check'], { cwd: dir, env: { RELAY_CONFIG: 'relay.yaml' } });
    expect(chosen.out).toMatch(/^using relay\.yaml \(\$RELAY_CONFIG\)\n/);

    // start says it too, on a line of its own.
    const port = await freePort();
    const relay = spawn(process.execPath, [MAIN, 'start'], {
      cwd: dir,
      env: { PATH: process.env.PATH, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      let log = '';
      await new Promise<void>((done, failed) => {
        relay.stdout!.on('data', (d: Buffer) => {
          log += d.toString();
          if (log.includes('callrelay listening')) done();
        });
        relay.once('exit', () => failed(new Error(`start exited: ${log}`)));
      });
      expect(log).toContain('"msg":"using config/relay.yaml (found in ./config)"');
    } finally {
      relay.kill('SIGTERM');
      await new Promise((done) => relay.once('exit', done));
    }

    // A second init: refused for its own files only, which --force overwrites.
    const again = cli(['init', '--yes'], { cwd: dir });
    expect(again.status).toBe(1);
    expect(again.err).toContain('config/relay.yaml and config/.env exist already: --force');
    expect(cli(['init', '--yes', '--force', '--crm', 'pipedrive'], { cwd: dir }).status).toBe(0);
    expect(readFileSync(join(dir, 'config', 'relay.yaml'), 'utf8')).toContain('type: pipedrive');
    expect(readFileSync(join(dir, 'relay.yaml'), 'utf8')).toBe(quickStart);
  });

  it.each([
    ['pipedrive', ['--crm', 'pipedrive', '--sandbox']],
    ['hubspot', ['--crm', 'hubspot', '--sandbox']],
    ['hubspot', ['--crm', 'sandbox']],
  ])('a dry run of %s that needs no token: init %s', (crm, args) => {
    const { dir, out, cfg } = initYes(args);
    expect(cfg.targets).toMatchObject([{ name: crm, type: crm, dryRun: true }]);
    expect(out).not.toContain('! Paste');
    // No token anywhere: check passes as it is.
    const check = cli(['check', '--config', join(dir, 'relay.yaml')]);
    expect(check.err).toBe('');
    expect(check.status).toBe(0);
  });

  it('refuses an agent that is not an email or a numeric user id', () => {
    const dir = tempDir();
    const r = cli(['init', '--yes', '--dir', dir, '--agent', '101=bob@acme.cz,102=bob']);
    expect(r.status).toBe(2);
    expect(r.err).toBe(`--agent: 102=bob: ${AGENT_VALUE_HINT}\n`);
    expect(existsSync(join(dir, 'relay.yaml'))).toBe(false);
  });

  it("--yes takes the machine's time zone and its country, and says so", () => {
    const prague = initYes([], { tz: 'Europe/Prague' });
    expect(prague.cfg.sources[0]).toMatchObject({
      timezone: 'Europe/Prague',
      defaultCountry: 'CZ',
    });
    expect(prague.out).toContain(
      "Taken without asking:\n  time zone Europe/Prague: this machine's (--timezone to change)\n" +
        '  country CZ: from the time zone Europe/Prague (--country to change)\n',
    );
    expect(prague.out).not.toContain('no country');
    // A zone of no country: none, and the summary says what that means.
    const utc = initYes([]);
    expect(utc.cfg.sources[0]!.defaultCountry).toBeUndefined();
    expect(utc.out).toContain("time zone UTC: this machine's");
    expect(utc.out).toContain(
      'no country (--country): numbers without a country code stay as the PBX sent them',
    );
    // Given, it is not mentioned.
    const given = initYes(['--timezone', 'Europe/Berlin', '--country', 'at']);
    expect(given.cfg.sources[0]).toMatchObject({ timezone: 'Europe/Berlin', defaultCountry: 'AT' });
    expect(given.out).not.toContain('Taken without asking');
  });

  it('derives recordings and click-to-call from the PBX URL, links from the CRM account', () => {
    const pd = initYes(
      [
        '--crm',
        'pipedrive',
        '--pbx-url',
        'https://pbx.acme.cz:5001/',
        '--company-domain',
        'acme',
        '--timezone',
        'Europe/Prague',
        '--agent',
        '101=jana@acme.cz',
      ],
      { env: { PIPEDRIVE_TOKEN: 'pd-0123456789' } },
    );
    const rec = pd.cfg.sources[0]!.recordings;
    expect(rec.allowHosts).toEqual(['https://pbx.acme.cz:5001/webapi/recording/']);
    expect(
      allowedRecordingUrl('https://pbx.acme.cz:5001/webapi/recording/230307_10-1-1.mp3', rec),
    ).toBe(true);
    expect(pd.cfg.targets[0]).toMatchObject({
      companyDomain: 'acme',
      baseUrl: 'https://acme.pipedrive.com',
    });
    expect(pd.out).not.toContain('Left unset');
    // The click-to-call block, uncommented, is what the PBX needs.
    const dial = join(pd.dir, 'dial.yaml');
    writeFileSync(dial, pd.yaml.replace(/^( {4})# (pbx:| {2}url:| {2}key:)/gm, '$1$2'));
    const withPbx = loadConfig(dial, {
      ...envOf(pd.dir),
      PIPEDRIVE_TOKEN: 'pd-0123456789',
      PBX_WEBAPI_KEY: 'key-1234',
    });
    expect(withPbx.sources[0]!.pbx).toMatchObject({ url: 'https://pbx.acme.cz:5001' });
    const check = cli(['check', '--config', join(pd.dir, 'relay.yaml')], {
      env: { PIPEDRIVE_TOKEN: 'pd-0123456789' },
    });
    expect(check.status, check.err).toBe(0);

    const hs = initYes(['--crm', 'hubspot', '--portal-id', '1234567'], {
      env: { HUBSPOT_TOKEN: 'pat-na1-00000000' },
    });
    expect(hs.cfg.targets[0]).toMatchObject({ type: 'hubspot', portalId: '1234567' });

    // Left out: the summary says what each means.
    const bare = initYes(['--crm', 'pipedrive'], { env: { PIPEDRIVE_TOKEN: 'pd-0123456789' } });
    expect(bare.cfg.sources[0]!.recordings.allowHosts).toEqual([]);
    for (const line of [
      'no PBX URL (--pbx-url): Pipedrive gets no recordings',
      'no company domain (--company-domain): the console cannot link to the CRM',
      'no agents (--agent): calls reach the CRM without an owner',
    ])
      expect(bare.out).toContain(`  ${line}`);
    expect(hs.out).not.toContain('no portal id');
    const hubspot = { ...hsAnswers, portalId: undefined };
    expect(leftUnset(hubspot)).toContain(
      'no portal id (--portal-id): the console cannot link to the CRM',
    );
    // A dry run links nowhere: nothing to say about the account.
    expect(leftUnset({ ...hubspot, dryRun: true }).join('\n')).not.toContain('portal id');

    // A value that will not do: exit 2, naming the flag and what to write.
    const bad = cli(['init', '--yes', '--dir', tempDir(), '--pbx-url', 'pbx.acme.cz']);
    expect(bad.status).toBe(2);
    expect(bad.err).toMatch(
      /^--pbx-url: expected the PBX's web address .*https:\/\/pbx\.example\.com:5001/,
    );
    // An account flag of the other CRM (--yes's is HubSpot's sandbox) is not silently dropped.
    const other = cli(['init', '--yes', '--dir', tempDir(), '--company-domain', 'acme']);
    expect(other.status).toBe(2);
    expect(other.err).toContain('--company-domain is for Pipedrive (--crm pipedrive)');
  });

  it('takes flags and answers in the forms people write them, and refuses the rest', () => {
    expect(parse.pbxUrl('https://pbx.acme.cz:5001/')).toBe('https://pbx.acme.cz:5001');
    for (const d of ['acme', 'ACME', 'acme.pipedrive.com', 'https://acme.pipedrive.com/deals'])
      expect(parse.companyDomain(d)).toBe('acme');
    expect(parse.country('cz')).toBe('CZ');
    expect(parse.agents('101=a@acme.cz, 102 = 17')).toEqual([
      ['101', 'a@acme.cz'],
      ['102', '17'],
    ]);
    for (const [field, value] of [
      ['pbxUrl', 'pbx.acme.cz'],
      ['pbxUrl', 'https://pbx.acme.cz/webapi/'],
      ['companyDomain', 'acme corp'],
      ['country', 'XX'],
      ['timezone', 'Europe/Praha'],
      ['portalId', 'acme'],
      ['agents', '101'],
      ['agents', '101=bob'],
    ] as const)
      expect(() => parse[field](value), `${field} ${value}`).toThrow(Refused);
  });

  it.each(['caddy', 'nginx'] as const)(
    '--proxy %s: on loopback behind it, and its configuration as docs/https.md has it',
    (proxy) => {
      const { dir, out, cfg } = initYes(['--url', 'https://relay.acme.cz', '--proxy', proxy]);
      expect(cfg.server.host).toBe('127.0.0.1');
      expect(cfg.server.trustProxy).toEqual(['127.0.0.1']);
      const docs = readFileSync(join(ROOT, 'docs', 'https.md'), 'utf8');
      const recipe = new RegExp(
        `\`\`\`${proxy === 'caddy' ? 'caddyfile' : 'nginx'}\\n([^]*?)\`\`\``,
      )
        .exec(docs)![1]!
        .replaceAll('relay.example.com', 'relay.acme.cz');
      expect(`${proxySnippet(proxy, 'relay.acme.cz')}\n`).toBe(recipe);
      const shown = recipe
        .trimEnd()
        .split('\n')
        .map((l) => (l ? `  ${l}` : l))
        .join('\n');
      expect(out).toContain(`(docs/https.md):\n${shown}\n`);
      expect(cli(['check', '--config', join(dir, 'relay.yaml')]).status).toBe(0);
    },
  );

  it('without --proxy, a public URL listens on every interface as before', () => {
    const direct = initYes(['--url', 'https://relay.acme.cz']);
    expect(direct.cfg.server).toMatchObject({ host: '0.0.0.0', trustProxy: [] });
    expect(direct.out).not.toContain('in front (docs/https.md');
  });
});
