// Hot reload: SIGHUP makes a running relay read relay.yaml again while webhooks keep coming. No
// request fails across the swap, the new sources and targets are in effect at once, and a broken
// file changes nothing and says where it is broken.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WebhookReceiver } from '../../src/targets/http/fake.js';
import { waitHealthy } from '../harness/relay-process.mjs';
import { freePort, MAIN, ROOT, tempDir, TOKENS, writeRelayYaml } from '../support.js';

const call = (id: string): string =>
  `{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:03","Id":"${id}-1"}`;

/** `callrelay start` at log level info (reloads are logged there), its log kept as it comes. */
function startAtInfo(file: string) {
  const original = readFileSync(file, 'utf8').replace('level: warn', 'level: info');
  writeFileSync(file, original);
  const relay = spawn(process.execPath, [MAIN, 'start', '--config', file], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let text = '';
  relay.stdout.on('data', (b: Buffer) => (text += b.toString()));
  const exited = new Promise<number | null>((r) => relay.once('exit', r));
  return { original, relay, log: () => text, exited };
}

describe('reloading relay.yaml (SIGHUP)', () => {
  it('swaps sources and targets under load without failing a request; a broken file changes nothing', async () => {
    const before = await new WebhookReceiver().start();
    const after = await new WebhookReceiver().start();
    const dir = tempDir();
    const port = await freePort();
    const target = (url: string): string =>
      `targets:\n  - name: hook\n    type: http\n    url: ${url}\n    deliverOn: ended\n`;
    const file = writeRelayYaml(dir, { port, more: target(before.url) });
    const { original, relay, log, exited } = startAtInfo(file);
    let sending = true;
    let senders: Promise<void>[] = [];
    try {
      await waitHealthy(port, { child: relay, timeoutMs: 10_000 });
      const post = (source: string, token: string, id: string) =>
        fetch(`http://127.0.0.1:${port}/hooks/${source}/${token}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: call(id),
        }).then(async (r) => ({ status: r.status, body: await r.text() }));

      // Three senders post without pause for the whole test.
      const statuses: number[] = [];
      let n = 0;
      senders = [0, 1, 2].map(async (s) => {
        while (sending) {
          const r = await post(
            '3cx',
            TOKENS.threecx,
            `261101${String(s)}${String(n++).padStart(5, '0')}_1`,
          );
          statuses.push(r.status);
        }
      });
      const waitLog = async (text: string, from: number): Promise<string> => {
        for (const t0 = Date.now(); !log().slice(from).includes(text);) {
          if (Date.now() - t0 > 10_000) throw new Error(`no "${text}" in the log:\n${log()}`);
          await new Promise((r) => setTimeout(r, 20));
        }
        return log().slice(from);
      };
      await before.waitFor(() => before.received.length >= 3);

      // A new source and another target URL, under load.
      const pbx2 = 'pbx2-token-0123456789';
      writeFileSync(
        file,
        original
          .replace(target(before.url), target(after.url))
          .replace(
            'sources:\n',
            `sources:\n  - name: pbx2\n    adapter: 3cx\n    token: ${pbx2}\n`,
          ),
      );
      let mark = log().length;
      relay.kill('SIGHUP');
      await waitLog('relay.yaml reloaded', mark);
      expect((await post('pbx2', pbx2, '261102000000_1')).status).toBe(200);
      const atSwap = after.received.length;
      await post('3cx', TOKENS.threecx, '261103000000_1');
      await after.waitFor(() => after.received.length > atSwap);
      const sentBefore = before.received.length;

      // A broken file: the log names the place, and everything stays as it was.
      const good = readFileSync(file, 'utf8');
      writeFileSync(file, good.replace('  - name: pbx2\n', '  - name: pbx3\n    evnt: x\n'));
      mark = log().length;
      relay.kill('SIGHUP');
      const said = await waitLog('relay.yaml not reloaded', mark);
      expect(said).toMatch(/relay\.yaml:\d+:\d+ unknown field \\"evnt\\"/);
      expect((await post('pbx2', pbx2, '261104000000_1')).status).toBe(200);
      expect((await post('pbx3', pbx2, '261104000001_1')).status).toBe(404);

      await new Promise((r) => setTimeout(r, 200));
      sending = false;
      await Promise.all(senders);
      // Not one request failed, before, during or after either reload.
      expect(statuses.length).toBeGreaterThan(30);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      // The old URL gets at most the runs that were under way at the swap (concurrency 8): every
      // call since goes to the new one.
      await new Promise((r) => setTimeout(r, 300));
      expect(before.received.length).toBeLessThanOrEqual(sentBefore + 8);
      expect(after.received.length).toBeGreaterThan(10);
    } finally {
      sending = false;
      await Promise.allSettled(senders);
      relay.kill('SIGTERM');
      expect(await exited).toBe(0);
      await before.close();
      await after.close();
    }
  });

  it('a new admin.token applies at once: the old one gets 401, its sessions end, the new one works', async () => {
    const dir = tempDir();
    const port = await freePort();
    // Links are signed with a secret derived from admin.token (no server.urlSecret here): a dial
    // link made after the rotation must open on the running relay.
    const file = writeRelayYaml(dir, {
      port,
      server: `  publicUrl: http://127.0.0.1:${port}\n`,
      threecx: '    pbx:\n      url: http://127.0.0.1:9\n      key: webapi-key-1234\n',
    });
    const { original, relay, log, exited } = startAtInfo(file);
    const base = `http://127.0.0.1:${port}`;
    const api = (token: string) =>
      fetch(`${base}/api/calls`, { headers: { authorization: `Bearer ${token}` } });
    const setup = (cookie: string) =>
      fetch(`${base}/console/setup`, { headers: { cookie }, redirect: 'manual' });
    try {
      await waitHealthy(port, { child: relay, timeoutMs: 10_000 });
      const signed = await fetch(`${base}/console/sign-in`, {
        method: 'POST',
        redirect: 'manual',
        headers: { origin: base },
        body: new URLSearchParams({ token: TOKENS.admin }),
      });
      expect(signed.status).toBe(303);
      const cookie = signed.headers.get('set-cookie')!.split(';')[0]!;
      expect((await setup(cookie)).status).toBe(200);
      expect((await api(TOKENS.admin)).status).toBe(200);

      const rotated = 'rotated-admin-token-5e0c9a1f7b3d';
      writeFileSync(
        file,
        original.replace(`admin:\n  token: ${TOKENS.admin}`, `admin:\n  token: ${rotated}`),
      );
      const mark = log().length;
      relay.kill('SIGHUP');
      for (const t0 = Date.now(); !log().slice(mark).includes('relay.yaml reloaded');) {
        if (Date.now() - t0 > 10_000) throw new Error(`no reload in the log:\n${log()}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      // Nothing waits for a restart.
      expect(log().slice(mark)).not.toContain('apply at the next start');
      expect((await api(TOKENS.admin)).status).toBe(401);
      expect((await api(rotated)).status).toBe(200);
      const old = await setup(cookie);
      expect(old.status).toBe(303);
      expect(old.headers.get('location')).toContain('/console/sign-in');
      const link = execFileSync(
        process.execPath,
        [MAIN, 'dial-link', '--config', file, '--agent', '105'],
        { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: process.env.HOME } },
      ).trim();
      const page = await fetch(`${link}${encodeURIComponent('+420774852629')}`);
      expect(page.status, await page.clone().text()).toBe(200);
      expect(await page.text()).toContain('Call');
    } finally {
      relay.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });

  it('a reload reads the relay.yaml the relay started with, not a config/relay.yaml written since', async () => {
    // The quick start runs on ./relay.yaml; `init` then writes config/relay.yaml, which commands
    // find first. A SIGHUP (or the console's reload) to the running relay must not take it over.
    const dir = tempDir();
    const port = await freePort();
    const file = writeRelayYaml(dir, { port });
    const original = readFileSync(file, 'utf8').replace('level: warn', 'level: info');
    writeFileSync(file, original);
    const relay = spawn(process.execPath, [MAIN, 'start'], {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let log = '';
    relay.stdout.on('data', (b: Buffer) => (log += b.toString()));
    const exited = new Promise<number | null>((r) => relay.once('exit', r));
    try {
      await waitHealthy(port, { child: relay, timeoutMs: 15_000 });
      mkdirSync(join(dir, 'config'));
      writeFileSync(
        join(dir, 'config', 'relay.yaml'),
        original.replace(
          'sources:\n',
          'sources:\n  - name: pbx2\n    adapter: 3cx\n    token: pbx2-token-0123456789\n',
        ),
      );
      const mark = log.length;
      relay.kill('SIGHUP');
      for (const t0 = Date.now(); !log.slice(mark).includes('relay.yaml reloaded');) {
        if (Date.now() - t0 > 10_000) throw new Error(`no reload in the log:\n${log}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(log.slice(mark)).not.toContain('pbx2');
      const hook = await fetch(`http://127.0.0.1:${port}/hooks/pbx2/pbx2-token-0123456789`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"Event":"incoming","Id":"26110500000_1"}',
      });
      expect(hook.status).toBe(404);
    } finally {
      relay.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('callrelay reload signals the relay that npm start runs, through its pid file; a stale one is never signalled', async () => {
    const dir = tempDir();
    const port = await freePort();
    const file = writeRelayYaml(dir, { port });
    writeFileSync(file, readFileSync(file, 'utf8').replace('level: warn', 'level: info'));
    const env = { PATH: process.env.PATH, HOME: process.env.HOME };
    const reload = () =>
      spawnSync(process.execPath, [MAIN, 'reload', '--config', file], { env, encoding: 'utf8' });
    const pidFile = join(dir, 'relay.db.pid');
    // As a user runs it from the clone: npm is the process in front, and the relay its child.
    const npm = spawn('npm', ['start', '--silent', '--', '--config', file], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let log = '';
    npm.stdout.on('data', (b: Buffer) => (log += b.toString()));
    const npmExited = new Promise<number | null>((r) => npm.once('exit', r));
    try {
      await waitHealthy(port, { child: npm, timeoutMs: 15_000 });
      // Written once the relay listens: a moment after /healthz may answer, on a busy machine.
      for (const t0 = Date.now(); !existsSync(pidFile) && Date.now() - t0 < 10_000;)
        await new Promise((r) => setTimeout(r, 20));
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      expect(pid).not.toBe(npm.pid);
      // No shell between npm and the relay: npm's SIGTERM and SIGINT reach the relay itself.
      const parent = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1];
      expect(Number(parent)).toBe(npm.pid);

      writeFileSync(
        file,
        readFileSync(file, 'utf8').replace(
          'sources:\n',
          'sources:\n  - name: pbx2\n    adapter: 3cx\n    token: pbx2-token-0123456789\n',
        ),
      );
      const mark = log.length;
      const sent = reload();
      expect(sent.status, sent.stderr).toBe(0);
      expect(sent.stdout).toContain(`sent SIGHUP to the relay, process ${pid}`);
      for (const t0 = Date.now(); !log.slice(mark).includes('relay.yaml reloaded');) {
        if (Date.now() - t0 > 10_000) throw new Error(`no reload in the log:\n${log}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(log.slice(mark)).toContain('pbx2:3cx');
      const hook = await fetch(`http://127.0.0.1:${port}/hooks/pbx2/pbx2-token-0123456789`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"Event":"incoming","Id":"26110500000_1"}',
      });
      expect(hook.status).toBe(200);
    } finally {
      npm.kill('SIGTERM');
    }
    expect(await npmExited).toBe(0);
    expect(existsSync(pidFile), 'the relay removes its pid file at exit').toBe(false);
    const none = reload().stderr;
    expect(none).toMatch(/nothing sent: no pid file .*relay\.db\.pid/);
    // The usual cause: the relay was started with another relay.yaml.
    expect(none).toContain('started with --config FILE or $RELAY_CONFIG needs the same here');

    // Stale: a process that is gone, and one that is not a relay.
    const other = spawn('sleep', ['60']);
    const gone = spawnSync('true').pid;
    try {
      writeFileSync(pidFile, `${gone}\n`);
      const r = reload();
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`is stale: process ${gone} is gone`);
      writeFileSync(pidFile, `${other.pid}\n`);
      expect(reload().stderr).toContain(`is stale: process ${other.pid} is not a relay now`);
      expect(other.exitCode === null && other.signalCode === null).toBe(true);
    } finally {
      other.kill();
    }
  });
});
