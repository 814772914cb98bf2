// The command line as a user meets it: help for every command, mistakes answered with exit code
// 2 and a suggestion, and `callrelay init` writing a relay.yaml and .env that check and start take
// as they are, with the lines for the phone system filled in.

import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/program.js';
import { loadConfig } from '../../src/config/load.js';
import { allowedRecordingUrl } from '../../src/targets/kit/recordings.js';
import { MAIN, tempDir } from '../support.js';

const cli = (args: string[], o: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {}) => {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    cwd: o.cwd,
    input: o.input ?? '',
    encoding: 'utf8',
    // Nothing of the test run's environment decides what the relay reads.
    env: { PATH: process.env.PATH, ...o.env },
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
    // Phone system, CRM, URL (a bad one first), agents, then the defaults for zone and country.
    const r = cli(['init', '--dir', dir], {
      input: 'callerdesk\npipedrive\nnot a url\nhttp://203.0.113.5:8080\n201=ann@example.com\n\n\n',
    });
    expect(r.status, r.err).toBe(0);
    expect(r.out).toContain('"not a url" will not do; try again');
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
    expect(cfg.targets).toMatchObject([{ type: 'hubspot', dryRun: true }]);
  });
});
