// The admin's whole path on a clean clone, as the README tells it: the quick start run as written
// (its shell lines are read from the README itself, between the quick-start markers), then
// `callrelay init` for 3CX and Pipedrive (a sandbox), a rebuild, `npx callrelay --version`,
// `check`, `npm start` on the new config/ with a database of its own, a changed setting taken by
// `npx callrelay reload`, and a simulated call shown as a dry run. The clone is a git repository:
// nothing the relay or init wrote may show up in `git status`. A README edit that breaks the
// quick start, or a build that leaves the bin unusable, breaks this test.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitHealthy } from '../harness/relay-process.mjs';
import { freePort, ROOT, tempDir } from '../support.js';

/** The commands of the README's quick start, comments stripped, in order. */
function quickStartCommands(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const part = /<!-- quick-start[^>]*-->([\s\S]*?)<!-- \/quick-start -->/.exec(readme)?.[1];
  if (!part) throw new Error('README.md has no quick-start markers');
  return [...part.matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((m) => m[1]!.split('\n'))
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter(Boolean);
}

/**
 * What a user's `git clone` holds (the files git knows, as they are in the work tree), as a git
 * repository of its own, after `npm install`: node_modules linked to this project's, dist/ copied.
 */
function cleanClone(): string {
  const clone = tempDir('callrelay-clone-');
  const files = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
    encoding: 'utf8',
  })
    .stdout.split('\0')
    .filter((f) => f && existsSync(join(ROOT, f)));
  for (const f of files) {
    mkdirSync(dirname(join(clone, f)), { recursive: true });
    copyFileSync(join(ROOT, f), join(clone, f));
  }
  const git = (args: string[]) => {
    const r = spawnSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], {
      cwd: clone,
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
  };
  git(['init', '-q']);
  git(['add', '-A']);
  git(['commit', '-qm', 'clone']);
  symlinkSync(join(ROOT, 'node_modules'), join(clone, 'node_modules'));
  cpSync(join(ROOT, 'dist'), join(clone, 'dist'), { recursive: true });
  return clone;
}

describe('from the clone to production', () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const s of stops.splice(0)) await s();
  });

  it('quick start, init for 3CX + Pipedrive (sandbox), rebuild, check, start, reload, a dry run', async () => {
    const commands = quickStartCommands();
    expect(commands.slice(0, 2)).toEqual(['npm install', 'npm start']);
    const clone = cleanClone();
    const port = await freePort();
    // npm offline, with a cache and home of its own (outside the clone: git would see them);
    // scripts off so that npx never builds behind the test's back (`npm run` and `npm start`
    // still run the script they name).
    const home = tempDir('callrelay-home-');
    const env = {
      PATH: process.env.PATH,
      HOME: home,
      PORT: String(port),
      npm_config_cache: join(home, '.npm'),
      npm_config_offline: 'true',
      npm_config_update_notifier: 'false',
      npm_config_fund: 'false',
      npm_config_ignore_scripts: 'true',
    };
    const run = (cmd: string, args: string[]) => {
      const r = spawnSync(cmd, args, { cwd: clone, env, encoding: 'utf8' });
      expect(r.status, `${cmd} ${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    const npx = (args: string[]) => run('npx', ['callrelay', ...args]);
    const gitStatus = () => run('git', ['status', '--porcelain', '--untracked-files=all']);

    /** `npm start` in the clone: output kept, stopped (its exit code checked) at the end. */
    const npmStart = async () => {
      const relay = spawn('npm', ['start'], { cwd: clone, env, stdio: ['ignore', 'pipe', 'pipe'] });
      const out = { text: '' };
      relay.stdout.on('data', (d: Buffer) => (out.text += d.toString()));
      relay.stderr.on('data', (d: Buffer) => (out.text += d.toString()));
      const exited = new Promise<number | null>((r) => relay.once('exit', r));
      const stop = async () => {
        if (relay.exitCode === null) relay.kill('SIGTERM');
        return exited;
      };
      stops.push(async () => void (await stop()));
      await waitHealthy(port, { child: relay as ChildProcess, timeoutMs: 20_000 }).catch(
        (err: Error) => {
          throw new Error(`${err.message}\n${out.text}`);
        },
      );
      return { out, stop };
    };

    // 1. The quick start, as written.
    let quickCall = '';
    const outputs: Record<string, string> = {};
    let quickRelay: Awaited<ReturnType<typeof npmStart>> | undefined;
    for (const line of commands) {
      // `npm install` is what the clone's copy of dist/ and node_modules stands for.
      if (line === 'npm install') continue;
      if (line === 'npm start') {
        quickRelay = await npmStart();
        continue;
      }
      expect(line).toMatch(/^npx callrelay /);
      const args = line.slice('npx callrelay '.length).split(/\s+/);
      if (args.includes('CALL_ID')) {
        expect(quickCall).not.toBe('');
        // A human runs the next command a moment later: the delivery has happened by then.
        await until(() => npx(['calls']).includes('hubspot:delivered(dry run)'));
      }
      outputs[args[0]!] = npx(args.map((a) => (a === 'CALL_ID' ? quickCall : a)));
      quickCall ||= /-> 3cx: call (\S+), 6\/6 accepted/.exec(outputs.simulate ?? '')?.[1] ?? '';
    }
    expect(quickCall).toMatch(/^\d{12}_10$/);
    expect(outputs.calls).toContain('POST /crm/v3/objects/calls -> 201');
    expect(outputs.calls).toContain('"hs_call_direction": "INBOUND"');

    // What the sandbox kept is the engagement HubSpot would hold for this call.
    const [shown] = JSON.parse(npx(['calls', quickCall, '--json'])) as {
      deliveries: {
        target: string;
        dryRun: boolean;
        attempts: { method: string; path: string; sent: string }[];
      }[];
    }[];
    const [hubspot] = shown!.deliveries;
    expect(hubspot).toMatchObject({ target: 'hubspot', dryRun: true });
    const engagement: Record<string, string> = {};
    for (const w of hubspot!.attempts.filter((a) => a.method !== 'GET').reverse())
      Object.assign(engagement, (JSON.parse(w.sent) as { properties: object }).properties);
    expect(engagement).toMatchObject({
      hs_call_direction: 'INBOUND',
      hs_call_status: 'COMPLETED',
      hs_call_duration: '6000',
      hs_call_from_number: '05552221133',
      hs_call_external_id: `callrelay:3cx:${quickCall}`,
      hs_call_recording_url: `https://FQDN:5001/webapi/recording/${quickCall}-1-1.mp3`,
    });
    // Agent 202 is bob@example.com in the shipped relay.yaml: looked up, and the owner set.
    expect(engagement.hubspot_owner_id).toMatch(/^\d+$/);
    expect(hubspot!.attempts.some((a) => a.path === '/crm/v3/owners')).toBe(true);
    expect(await quickRelay!.stop()).toBe(0);

    // 2. init for the real PBX and CRM: its own folder, the quick start's relay.yaml untouched.
    const shipped = readFileSync(join(clone, 'relay.yaml'), 'utf8');
    const init = npx([
      'init',
      '--yes',
      '--pbx',
      '3cx',
      '--crm',
      'pipedrive',
      '--sandbox',
      '--timezone',
      'Europe/Prague',
      '--agent',
      '105=alice@example.com',
      '--agent',
      '202=bob@example.com',
    ]);
    expect(init).toContain('wrote config/relay.yaml and config/.env');
    expect(init).toMatch(/WEBHOOK_URL = http:\/\/127\.0\.0\.1:8080\/hooks\/3cx\/\S{20,}/);
    expect(readFileSync(join(clone, 'relay.yaml'), 'utf8')).toBe(shipped);
    // Its settings and secrets are the user's: one `git add -A` must not take them.
    expect(gitStatus()).toBe('');

    // 3. An upgrade rebuilds dist/: the command still runs.
    run('npm', ['run', 'build']);
    expect(npx(['--version']).trim()).toMatch(/^callrelay \d+\.\d+\.\d+/);
    expect(npx(['check'])).toMatch(/^using config\/relay\.yaml/m);

    // 4. npm start finds config/relay.yaml, with a database of its own: no sample call in it.
    const relay = await npmStart();
    expect(npx(['calls'])).not.toContain(quickCall);

    // 5. A changed setting, taken by `npx callrelay reload` (the relay, not npm, gets SIGHUP):
    //    the sandbox writes the call log at once instead of 60 s after the call.
    const yamlPath = join(clone, 'config', 'relay.yaml');
    const yaml = readFileSync(yamlPath, 'utf8');
    expect(yaml).toMatch(/^ {4}settleSec: 60\b/m);
    writeFileSync(yamlPath, yaml.replace(/^( {4}settleSec:) 60\b/m, '$1 0'));
    expect(npx(['reload'])).toMatch(/\d+/);
    await until(() => relay.out.text.includes('relay.yaml reloaded'));

    // 6. A simulated call reaches the Pipedrive sandbox, marked as a dry run everywhere.
    const simulated = npx(['simulate', '3cx-v2-incoming-answered']);
    const call = /-> 3cx: call (\S+), 6\/6 accepted/.exec(simulated)?.[1] ?? '';
    expect(call).toMatch(/^\d{12}_10$/);
    await until(() => npx(['calls']).includes('pipedrive:delivered(dry run)'));
    const [detail] = JSON.parse(npx(['calls', call, '--json'])) as {
      deliveries: { target: string; dryRun: boolean; attempts: { method: string }[] }[];
    }[];
    expect(detail!.deliveries).toEqual([
      expect.objectContaining({ target: 'pipedrive', dryRun: true }),
    ]);
    expect(detail!.deliveries[0]!.attempts.some((a) => a.method === 'POST')).toBe(true);

    expect(await relay.stop()).toBe(0);
    expect(existsSync(join(clone, 'config', 'data', 'relay.db.pid'))).toBe(false);
    expect(gitStatus()).toBe('');
  }, 240_000);
});

async function until(ok: () => boolean, timeoutMs = 20_000): Promise<void> {
  for (const t0 = Date.now(); !ok(); await new Promise((r) => setTimeout(r, 200)))
    if (Date.now() - t0 > timeoutMs) throw new Error('timed out');
}
