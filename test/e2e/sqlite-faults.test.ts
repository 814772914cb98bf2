// SQLite faults: the file full (store.maxSizeMB, as a disk running full would) or locked by another
// process gives 503 and a clear log line, never a 2xx without a commit; and it recovers. A file
// deleted or replaced under the running relay is noticed (503, /readyz fails, a rescued copy), and
// the next start refuses to begin with an empty one unless told to (--init).

import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay } from '../../src/runtime.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { createLogger } from '../../src/telemetry/log.js';
import { freePort, MAIN, ROOT, startAndStop, tempDir, TOKENS, writeRelayYaml } from '../support.js';

function capture(): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, log: createLogger('info', { write: (s: string) => void lines.push(s) }) };
}

const ring = (i: number, pad = ''): string =>
  `{"Event":"ringing","Callerid":"1","User":"800","Id":"261301100000_${i}-0","Pad":"${pad}"}`;

describe('SQLite faults', () => {
  it('a full store answers 503 with a clear log line and keeps every acknowledged request', async () => {
    const dir = tempDir();
    const cfg = loadConfig(
      writeRelayYaml(dir, { store: 'sqlite: ./relay.db\n  maxSizeMB: 0.6' }),
      {},
    );
    const { lines, log } = capture();
    const relay = await startRelay(cfg, log);
    const acked: number[] = [];
    let refused = 0;
    for (let i = 0; i < 200 && !refused; i++) {
      const res = await fetch(`http://127.0.0.1:${relay.port}/hooks/3cx/${TOKENS.threecx}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: ring(i, 'x'.repeat(20_000)),
      });
      if (res.status === 200) acked.push(((await res.json()) as { id: number }).id);
      else {
        expect(res.status).toBe(503);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
          'RELAY_ERR_STORE_UNAVAILABLE',
        );
        refused++;
      }
    }
    expect(refused).toBe(1);
    expect(acked.length).toBeGreaterThan(3);
    expect(lines.join('')).toMatch(
      /"err":"database or disk is full".*storing a request failed; answering 503/,
    );
    await relay.close().catch(() => {});
    const store = new SqliteStore(join(dir, 'relay.db'));
    for (const id of acked)
      expect((await store.getInbox(id))?.body.toString()).toContain('261301100000_');
    await store.close();
  });

  it('a file locked by another process answers 503 until the lock is gone', async () => {
    const dir = tempDir();
    const cfg = loadConfig(
      writeRelayYaml(dir, { store: 'sqlite: ./relay.db\n  busyTimeoutMs: 200' }),
      {},
    );
    const { lines, log } = capture();
    const relay = await startRelay(cfg, log);
    const send = async (i: number): Promise<number> =>
      (
        await fetch(`http://127.0.0.1:${relay.port}/hooks/3cx/${TOKENS.threecx}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: ring(i),
        })
      ).status;
    expect(await send(1)).toBe(200);
    const locker = spawn(
      process.execPath,
      [
        '-e',
        `const D=require('better-sqlite3');const d=new D(process.argv[1]);d.exec('BEGIN EXCLUSIVE');console.log('locked');setInterval(()=>{},1000)`,
        join(dir, 'relay.db'),
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((r) => locker.stdout!.once('data', () => r()));
    try {
      expect(await send(2)).toBe(503);
      expect((await fetch(`http://127.0.0.1:${relay.port}/readyz`)).status).toBe(503);
      expect(lines.join('')).toMatch(
        /"err":"database is locked".*storing a request failed; answering 503/,
      );
    } finally {
      locker.kill('SIGKILL');
      await new Promise((r) => locker.once('exit', r));
    }
    expect(await send(3)).toBe(200);
    await relay.pipeline.drain();
    expect((await relay.store.listCalls({ limit: 10 })).map((c) => c.record.callId).sort()).toEqual(
      ['261301100000_1', '261301100000_3'],
    );
    await relay.close();
  });

  it('a file deleted while running: 503, /readyz fails, one log line, a rescued copy, no empty restart', async () => {
    const dir = tempDir();
    const file = writeRelayYaml(dir);
    const cfg = loadConfig(file, {});
    const db = join(dir, 'relay.db');
    const { lines, log } = capture();
    const relay = await startRelay(cfg, log);
    const send = (i: number): Promise<Response> =>
      fetch(`http://127.0.0.1:${relay.port}/hooks/3cx/${TOKENS.threecx}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: ring(i),
      });
    const acked = (await (await send(1)).json()) as { id: number };
    rmSync(db);
    for (let i = 2; i < 12; i++) {
      const res = await send(i);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
        'RELAY_ERR_STORE_UNAVAILABLE',
      );
    }
    const ready = await fetch(`http://127.0.0.1:${relay.port}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toContain('was deleted while the relay was running');
    // One line says what happened, however many requests were refused.
    const said = lines.filter((l) => l.includes('storing a request failed'));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/relay\.db was deleted while the relay was running.*copied to/);
    await relay.close().catch(() => {});

    // Everything acknowledged is in the rescued copy.
    const rescued = readdirSync(dir).filter((f) => f.startsWith('relay.db.rescued-'));
    expect(rescued).toHaveLength(1);
    const copy = new SqliteStore(join(dir, rescued[0]!));
    expect((await copy.getInbox(acked.id))?.body.toString()).toBe(ring(1));
    await copy.close();

    // The next start refuses to create an empty database in its place and names the copy...
    await expect(startRelay(cfg, log)).rejects.toThrow(
      new RegExp(`database ${db} is gone.*${rescued[0]}.*--init`),
    );
    expect(existsSync(db)).toBe(false);
    const cli = spawnSync(process.execPath, [MAIN, 'calls', '--config', file], {
      encoding: 'utf8',
    });
    expect(cli.status).toBe(1);
    expect(cli.stderr).toContain('is gone');
    // ...and starts with the copy put back, or anew when told to.
    renameSync(join(dir, rescued[0]!), db);
    const back = await startRelay(cfg, log);
    expect((await back.store.getInbox(acked.id))?.body.toString()).toBe(ring(1));
    await back.close();
    rmSync(db);
    const fresh = await startRelay(cfg, log, { init: true });
    expect(await fresh.store.getInbox(acked.id)).toBeUndefined();
    await fresh.close();
  });

  it('a file replaced while running is noticed as well', async () => {
    const dir = tempDir();
    const cfg = loadConfig(writeRelayYaml(dir), {});
    const db = join(dir, 'relay.db');
    const relay = await startRelay(cfg);
    copyFileSync(db, join(dir, 'other.db'));
    renameSync(join(dir, 'other.db'), db);
    const ready = await fetch(`http://127.0.0.1:${relay.port}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toContain('was replaced while the relay was running');
    await relay.close().catch(() => {});
  });

  it('callrelay start --init creates the database a marker says was lost', async () => {
    const dir = tempDir();
    const port = await freePort();
    const file = writeRelayYaml(dir, { port });
    const first = await startRelay(loadConfig(file, {}));
    await first.close();
    rmSync(join(dir, 'relay.db'));
    const refused = spawnSync(process.execPath, [MAIN, 'start', '--config', file], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/callrelay start: the SQLite database .* is gone.*--init/);
    await startAndStop(['--config', file, '--init'], port);
    expect(existsSync(join(dir, 'relay.db'))).toBe(true);
  });
});
