// The npm package as a user gets it: `npm pack` (the Dockerfile's step too) holds what it
// should, and the tarball installed globally into a prefix of its own runs: init, check, start,
// a simulated call, reload, stop (that the bin survives a rebuild: quick-start.test.ts). Nothing
// may be downloaded in a test, so the install takes the production dependencies from a registry
// on 127.0.0.1 that serves the ones installed here (localRegistry): code of the package that
// needed a devDependency would fail here.

import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { waitHealthy } from '../harness/relay-process.mjs';
import { freePort, ROOT, tempDir } from '../support.js';

const npm = (args: string[], cwd: string): string =>
  execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });

const execFileAsync = promisify(execFile);

/**
 * The project's production dependencies, as `npm ci` installed them here, served as an npm
 * registry on 127.0.0.1: a test may not download, and npm resolves a tarball's dependency ranges
 * from full registry documents, which `npm ci` (working from the lockfile) never caches. Each
 * package is served as a tarball of its folder, so better-sqlite3 comes with the SQLite binding
 * the project built (the install runs with --ignore-scripts, so nothing compiles or downloads).
 */
async function localRegistry(): Promise<{ url: string; close: () => Promise<void> }> {
  const versions = new Map<string, Map<string, { dir: string; manifest: object }>>();
  for (const dir of npm(['ls', '--omit=dev', '--all', '--parseable'], ROOT).split('\n')) {
    if (!dir || dir === ROOT) continue;
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      name: string;
      version: string;
    };
    const byVersion = versions.get(manifest.name) ?? new Map();
    versions.set(manifest.name, byVersion.set(manifest.version, { dir, manifest }));
  }
  // The binding's sources and build leftovers are not needed to run it.
  const leaveOut = ['./node_modules', './deps', './src', './build/Release/obj*', './build/deps'];
  const server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').slice(1));
    const tgz = /^-\/tgz\/(.+)\/([^/]+)\.tgz$/.exec(path);
    if (tgz) {
      const pkg = versions.get(tgz[1]!)?.get(tgz[2]!);
      if (!pkg) return void res.writeHead(404).end();
      const tar = spawn('tar', [
        '-cz',
        ...leaveOut.map((x) => `--exclude=${x}`),
        '-C',
        pkg.dir,
        '.',
      ]);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      return void tar.stdout.pipe(res);
    }
    const byVersion = versions.get(path);
    if (!byVersion) return void res.writeHead(404).end();
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const doc = {
      name: path,
      'dist-tags': { latest: [...byVersion.keys()].at(-1) },
      versions: Object.fromEntries(
        [...byVersion].map(([v, { manifest }]) => [
          v,
          { ...manifest, dist: { tarball: `${base}/-/tgz/${encodeURIComponent(path)}/${v}.tgz` } },
        ]),
      ),
    };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

describe('the npm package', () => {
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
      'config/recipe.schema.json',
      'targets/README.md',
      'console/console.js',
      'console/console.css',
      'console/agent-dial.js',
      'deploy/callrelay.service',
    ])
      expect(files, f).toContain(f);
    expect(
      files.filter((f) => /^(src|test|bench|scripts|docs)\/|\.map$|\.test\.js$|fake\.js$/.test(f)),
    ).toEqual([]);
    // Of config/, the schemas only: what `callrelay init` wrote there is the user's (and secret).
    expect(files.filter((f) => f.startsWith('config/') && !f.endsWith('.schema.json'))).toEqual([]);

    // Installed as a user would (docs/production.md): npm install -g, into a prefix of its own.
    const prefix = tempDir('callrelay-prefix-');
    const app = tempDir('callrelay-app-');
    const registry = await localRegistry();
    try {
      await execFileAsync(
        'npm',
        [
          'install',
          '--global',
          '--prefix',
          prefix,
          '--registry',
          registry.url,
          '--cache',
          join(prefix, '.npm-cache'),
          '--ignore-scripts',
          // Anything asked of another host than 127.0.0.1 fails here too, not only in CI.
          '--https-proxy',
          'http://127.0.0.1:9',
          '--noproxy',
          '127.0.0.1',
          '--fetch-retries',
          '0',
          '--no-audit',
          '--no-fund',
          '--no-update-notifier',
          join(out, tarball!),
        ],
        { cwd: app },
      );
    } finally {
      await registry.close();
    }
    const bin = join(prefix, 'bin', 'callrelay');
    const port = await freePort();
    const env = { PATH: process.env.PATH, HOME: app, PORT: String(port) };
    const callrelay = (args: string[]) => {
      const r = spawnSync(bin, args, { cwd: app, env, encoding: 'utf8' });
      expect(r.status, `callrelay ${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    expect(callrelay(['--version']).trim()).toBe(`callrelay ${VERSION}`);
    // The admin's path of the README: 3CX into a Pipedrive sandbox, no token needed.
    expect(callrelay(['init', '--yes', '--crm', 'pipedrive', '--sandbox'])).toContain(
      'WEBHOOK_URL = http://127.0.0.1:8080/hooks/3cx/',
    );
    expect(callrelay(['check'])).toMatch(/^ok {2}.*relay\.yaml: 1 source\(s\): 3cx -> 3cx/m);

    const relay = spawn(bin, ['start'], { cwd: app, env, stdio: ['ignore', 'pipe', 'ignore'] });
    let log = '';
    relay.stdout.on('data', (b: Buffer) => (log += b.toString()));
    const exited = new Promise<number | null>((r) => relay.once('exit', r));
    try {
      await waitHealthy(port, { child: relay, timeoutMs: 10_000 });
      // The sample flows come from the package, not from this repository.
      expect(callrelay(['simulate', '3cx-v2-incoming-answered'])).toMatch(/6\/6 accepted/);
      expect(callrelay(['calls'])).toMatch(/inbound\s+ended\s+answered/);
      // Waiting out Pipedrive's settleSec (a call log cannot be updated), marked as the sandbox's.
      expect(callrelay(['calls'])).toMatch(/\bpipedrive:/);
      expect(callrelay(['reload'])).toContain(`sent SIGHUP to the relay, process ${relay.pid}`);
      for (const t0 = Date.now(); !log.includes('relay.yaml reloaded');) {
        if (Date.now() - t0 > 10_000) throw new Error(`no reload in the log:\n${log}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      relay.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 120_000);
});
