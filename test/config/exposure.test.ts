// A relay others can reach (server.host not loopback) must not run with tokens that are easy to
// guess, nor with /metrics open: `check` and `start` refuse, naming the place and how to make a
// good token; on loopback the same file is fine.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tokenWeakness } from '../../src/config/load.js';
import { freePort, MAIN, startAndStop, tempDir } from '../support.js';

const GOOD = '3f9c1a7e5b2d8046c1e9a3b7d5f20846';
const GOOD_2 = 'b8e2d4f6a1c3e5079d1b3f5a7c9e0214';
const GOOD_3 = 'Q7v-Kp2xZr9LmW4tYb6NcF8sHd3JgE1u';

function config(o: {
  host: string;
  port?: number;
  admin?: string;
  source?: string;
  metrics?: string;
}): string {
  const file = join(tempDir(), 'relay.yaml');
  writeFileSync(
    file,
    [
      'server:',
      `  port: ${o.port ?? 0}`,
      `  host: ${o.host}`,
      'store:',
      '  sqlite: ./relay.db',
      'admin:',
      `  token: ${o.admin ?? GOOD}`,
      ...(o.metrics === undefined ? [] : ['metrics:', o.metrics]),
      'sources:',
      '  - name: 3cx',
      '    adapter: 3cx',
      `    token: ${o.source ?? GOOD_2}`,
      '',
    ].join('\n'),
  );
  return file;
}

const run = (cmd: string, file: string) =>
  spawnSync(process.execPath, [MAIN, cmd, '--config', file], {
    encoding: 'utf8',
    timeout: 10_000,
  });

describe('tokens and /metrics on an address others can reach', () => {
  it('tells a guessable token from a good one', () => {
    expect(tokenWeakness('short-token-123')).toMatch(/15 characters, fewer than 24/);
    expect(tokenWeakness('abababababababababababababab')).toMatch(/fewer than 8 different/);
    expect(tokenWeakness('abcdefghijklmnopqrstuvwxyzab')).toMatch(/all one kind/);
    expect(tokenWeakness('1234567890123456789012345')).toMatch(/all one kind/);
    expect(tokenWeakness(GOOD)).toBeUndefined();
    expect(tokenWeakness(GOOD_3)).toBeUndefined();
  });

  it('check and start refuse weak tokens and an open /metrics on 0.0.0.0, naming each place', () => {
    const file = config({
      host: '0.0.0.0',
      admin: 'admin-token-1',
      source: 'zzzzzzzzzzzzzzzzzzzzzzzzzzzz',
    });
    for (const cmd of ['check', 'start']) {
      const r = run(cmd, file);
      expect(r.status, cmd).toBe(1);
      expect(r.stderr, cmd).toMatch(
        /relay\.yaml:7:\d+ admin\.token is easy to guess: it has 13 characters, fewer than 24, while server\.host 0\.0\.0\.0 lets others reach the relay: make one with `openssl rand -hex 32`/,
      );
      expect(r.stderr, cmd).toMatch(/relay\.yaml:11:\d+ sources\.0\.token is easy to guess/);
      expect(r.stderr, cmd).toMatch(/relay\.yaml:3:\d+ \/metrics is on without metrics\.token/);
      expect(r.stderr, cmd).toContain('npx callrelay init');
      // The weak tokens themselves are never repeated.
      expect(r.stderr, cmd).not.toContain('admin-token-1');
      expect(r.stderr, cmd).not.toContain('zzzzzzzz');
    }
    const weakMetrics = run('check', config({ host: '0.0.0.0', metrics: '  token: metrics-1234' }));
    expect(weakMetrics.status).toBe(1);
    expect(weakMetrics.stderr).toMatch(/relay\.yaml:9:\d+ metrics\.token is easy to guess/);
  });

  it('accepts good tokens with metrics.token or metrics off, and anything on 127.0.0.1', async () => {
    expect(run('check', config({ host: '0.0.0.0', metrics: `  token: ${GOOD_3}` })).status).toBe(0);
    expect(run('check', config({ host: '0.0.0.0', metrics: '  enabled: false' })).status).toBe(0);
    const local = config({ host: '127.0.0.1', admin: 'admin-token-1', source: 'short-token-2' });
    expect(run('check', local).status).toBe(0);
    const port = await freePort();
    await startAndStop(
      ['--config', config({ host: '0.0.0.0', port, metrics: `  token: ${GOOD_3}` })],
      port,
    );
    const localPort = await freePort();
    await startAndStop(
      ['--config', config({ host: '127.0.0.1', port: localPort, admin: 'admin-token-1' })],
      localPort,
    );
  });
});
