// Issue 9's small defects at the HTTP edge, each measured on the code before its fix: a source
// token in a logged path, HEAD stored as a webhook, a trailing slash answered with a wrong
// reason.

import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { createLogger } from '../../src/telemetry/log.js';
import { sourceToken, tempDir, writeRelayYaml } from '../support.js';

const TOKEN = sourceToken('3cx');

describe('the webhook edge', () => {
  let relay: Relay | undefined;
  const lines: string[] = [];
  afterEach(async () => {
    await relay?.close();
    relay = undefined;
    lines.splice(0);
  });

  async function open(server?: string): Promise<Relay> {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger('info', sink);
    relay = await startRelay(loadConfig(writeRelayYaml(tempDir(), { server }), {}), log);
    return relay;
  }

  it('never logs the source token of a path, even for a client that aborts mid-body', async () => {
    const r = await open();
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const s = connect(r.port, '127.0.0.1', () => {
          s.write(
            `POST /hooks/3cx/${TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
              'Content-Length: 100000\r\n\r\n{"event":',
          );
          setTimeout(() => {
            s.destroy();
            resolve();
          }, 50);
        });
      });
    }
    await new Promise((res) => setTimeout(res, 200));
    const logged = lines.join('');
    expect(logged).toContain('/hooks/3cx/');
    expect(logged).not.toContain(TOKEN);
    expect((await r.store.listInbox({ limit: 10 })).length).toBe(0);
  });

  it('answers HEAD on a hook URL without storing anything', async () => {
    const r = await open();
    const res = await fetch(`http://127.0.0.1:${r.port}/hooks/3cx/${TOKEN}`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    const wrong = await fetch(`http://127.0.0.1:${r.port}/hooks/3cx/wrong-token-1`, {
      method: 'HEAD',
    });
    expect(wrong.status).toBe(401);
    expect(await r.store.listInbox({ limit: 10 })).toEqual([]);
  });

  it('says what is wrong with a trailing slash or an extra segment', async () => {
    const r = await open();
    for (const path of [`/hooks/3cx/${TOKEN}/`, `/hooks/3cx/${TOKEN}/extra`]) {
      const res = await fetch(`http://127.0.0.1:${r.port}${path}`, { method: 'POST', body: '{}' });
      expect(res.status, path).toBe(404);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('RELAY_ERR_NOT_FOUND');
      expect(body.error.message).toMatch(/\/hooks\/<source>\/<token>/);
      expect(body.error.message).not.toContain(TOKEN);
    }
    const put = await fetch(`http://127.0.0.1:${r.port}/hooks/3cx/${TOKEN}`, { method: 'PUT' });
    expect(put.status).toBe(405);
    expect(await r.store.listInbox({ limit: 10 })).toEqual([]);
  });

  it('logs refused webhooks without the token, at most once a minute per source and reason', async () => {
    const r = await open();
    for (let i = 0; i < 30; i++)
      await fetch(`http://127.0.0.1:${r.port}/hooks/3cx/wrong-token-${i}`, { method: 'POST' });
    await fetch(`http://127.0.0.1:${r.port}/hooks/3cx/${TOKEN}/`, { method: 'POST' });
    await new Promise((res) => setTimeout(res, 100));
    const refused = lines.filter((l) => l.includes('refused a webhook'));
    const unauthorized = refused.filter((l) => l.includes('RELAY_ERR_UNAUTHORIZED'));
    expect(unauthorized).toHaveLength(1);
    expect(unauthorized[0]).toContain('"source":"3cx"');
    expect(refused.filter((l) => l.includes('RELAY_ERR_NOT_FOUND'))).toHaveLength(1);
    expect(refused.join('')).not.toContain(TOKEN);
    expect(refused.join('')).not.toMatch(/wrong-token-\d/);
  });

  it('cuts off a client that dribbles its body, and caps open connections', async () => {
    const r = await open('  requestTimeoutSec: 1\n  maxConnections: 3\n');
    const t0 = Date.now();
    const answer = await new Promise<string>((resolve) => {
      let got = '';
      const s = connect(r.port, '127.0.0.1', () => {
        s.write(`POST /hooks/3cx/${TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{`);
      });
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('close', () => resolve(got));
    });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);

    // Three idle connections fill the server; a fourth is closed without an answer.
    const idle = await Promise.all(
      [1, 2, 3].map(
        () =>
          new Promise<ReturnType<typeof connect>>((resolve) => {
            const s = connect(r.port, '127.0.0.1', () => resolve(s));
          }),
      ),
    );
    await new Promise((res) => setTimeout(res, 50));
    const refused = await fetch(`http://127.0.0.1:${r.port}/healthz`).then(
      (x) => x.status,
      () => 'refused',
    );
    expect(refused).toBe('refused');
    for (const s of idle) s.destroy();
    await new Promise((res) => setTimeout(res, 50));
    expect((await fetch(`http://127.0.0.1:${r.port}/healthz`)).status).toBe(200);
    expect(await r.store.listInbox({ limit: 10 })).toEqual([]);
  });
});
