// The npm package as a user gets it: `npm pack` (the Dockerfile's step too), its contents, and
// the package run from another folder: init, check, start, a simulated call, stop. Nothing may be
// downloaded in a test, so instead of `npm install` the package is unpacked into node_modules/ of
// a temporary folder beside links to the project's production dependencies only: code of the
// package that needed a devDependency would fail here.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitHealthy } from '../harness/relay-process.mjs';
import { freePort, ROOT, tempDir } from '../support.js';

const npm = (args: string[], cwd: string): string =>
  execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });

const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

describe('the npm package', () => {
  it('has an executable bin after every build: npx callrelay works after a rebuild', () => {
    // A copy of what the build reads, never the real dist/ (the tests beside this one run it).
    const copy = tempDir('callrelay-build-');
    cpSync(join(ROOT, 'src'), join(copy, 'src'), { recursive: true });
    for (const f of ['package.json', 'tsconfig.json', 'tsconfig.build.json'])
      cpSync(join(ROOT, f), join(copy, f));
    symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
    // The first time npx runs the project's bin it links it into its cache (building it with
    // the prepare script, and making it executable); what users hit is every build after that.
    // An executable placeholder stands in for that first build (scripts off), which saves a
    // compile here.
    mkdirSync(join(copy, 'dist'));
    writeFileSync(join(copy, 'dist', 'main.js'), '#!/usr/bin/env node\n', { mode: 0o755 });
    const env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      npm_config_cache: join(copy, '.npm'),
      npm_config_offline: 'true',
      npm_config_update_notifier: 'false',
    };
    const npx = (more = {}) =>
      spawnSync('npx', ['callrelay', '--version'], {
        cwd: copy,
        env: { ...env, ...more },
        encoding: 'utf8',
      });
    expect(npx({ npm_config_ignore_scripts: 'true' }).status).toBe(0);

    // The one build script: npm install, npm pack and npm test (pretest) all run it.
    execFileSync('npm', ['run', 'build'], { cwd: copy, env, stdio: 'ignore' });
    const r = npx();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`callrelay ${VERSION}`);
    expect(statSync(join(copy, 'dist', 'main.js')).mode & 0o111).toBe(0o111);
  }, 180_000);

  it('holds what the relay needs and nothing of the repository, and runs from elsewhere', async () => {
    const out = tempDir();
    // dist/ is built already (npm test builds first); a rebuild now would pull it from under
    // the tests running beside this one.
    npm(['pack', '--ignore-scripts', '--pack-destination', out], ROOT);
    const [tarball] = readdirSync(out).filter((f) => f.endsWith('.tgz'));
    const files = execFileSync('tar', ['-tzf', join(out, tarball!)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, ''));
    for (const f of [
      'package.json',
      'README.md',
      'relay.yaml',
      'dist/main.js',
      'dist/store/sqlite/worker.js',
      'adapters/3cx.yaml',
      'adapters/callerdesk.yaml',
      'adapters/cases/3cx/3cx-v2-incoming-answered.json',
      'config/relay.schema.json',
      'config/adapter.schema.json',
      'console/console.js',
      'console/console.css',
      'deploy/callrelay.service',
    ])
      expect(files, f).toContain(f);
    expect(
      files.filter((f) => /^(src|test|bench|scripts|docs)\/|\.map$|\.test\.js$|fake\.js$/.test(f)),
    ).toEqual([]);

    // Unpacked as npm would install it, with the production dependencies beside it.
    const app = tempDir('callrelay-app-');
    const pkg = join(app, 'node_modules', 'callrelay');
    mkdirSync(pkg, { recursive: true });
    execFileSync('tar', ['-xzf', join(out, tarball!), '-C', pkg, '--strip-components=1']);
    const production = npm(['ls', '--omit=dev', '--all', '--parseable'], ROOT)
      .split('\n')
      .map((p) => relative(join(ROOT, 'node_modules'), p))
      .filter((p) => p && !p.startsWith('..') && !p.includes('node_modules'));
    for (const p of new Set(production)) {
      mkdirSync(dirname(join(app, 'node_modules', p)), { recursive: true });
      symlinkSync(join(ROOT, 'node_modules', p), join(app, 'node_modules', p));
    }
    const bin = join(pkg, 'dist', 'main.js');
    const port = await freePort();
    const env = { PATH: process.env.PATH, HOME: app, PORT: String(port) };
    const callrelay = (args: string[]) => {
      const r = spawnSync(process.execPath, [bin, ...args], { cwd: app, env, encoding: 'utf8' });
      expect(r.status, `callrelay ${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    const version = (
      JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as { version: string }
    ).version;
    expect(callrelay(['--version']).trim()).toBe(`callrelay ${version}`);
    expect(callrelay(['init', '--yes'])).toContain(
      'WEBHOOK_URL = http://127.0.0.1:8080/hooks/3cx/',
    );
    expect(callrelay(['check'])).toMatch(/^ok {2}.*relay\.yaml: 1 source\(s\): 3cx -> 3cx/m);

    const relay = spawn(process.execPath, [bin, 'start'], { cwd: app, env, stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => relay.once('exit', r));
    try {
      await waitHealthy(port, { child: relay, timeoutMs: 10_000 });
      // The sample flows come from the package, not from this repository.
      expect(callrelay(['simulate', '3cx-v2-incoming-answered'])).toMatch(/6\/6 accepted/);
      expect(callrelay(['calls'])).toMatch(/inbound\s+ended\s+answered/);
    } finally {
      relay.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
