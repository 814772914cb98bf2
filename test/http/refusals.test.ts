// Refused webhooks, as an admin finds them: a PBX knocking with a stale token shows on Setup and in
// `callrelay status` (time, reason, masked path, sender), read from the store with the relay
// stopped; a flood of refusals costs a store write every few seconds, not one per request; a URL
// naming no source is kept under one row, and a token pasted into the wrong part of it is masked.

import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import type { Refusal } from '../../src/store/types.js';
import { ConsoleClient, MAIN, sourceToken, tempDir, TOKENS, writeRelayYaml } from '../support.js';

interface Status {
  store: string;
  sources: { source: string; lastAccepted: unknown; lastRefused: Refusal | null }[];
  unknownSource: Refusal | null;
  targets: unknown[];
}

describe('refused webhooks', () => {
  let relay: Relay | undefined;
  afterEach(async () => {
    await relay?.close();
    relay = undefined;
  });

  it('keeps the newest per source for Setup and status, one store write per few seconds', async () => {
    const file = writeRelayYaml(tempDir());
    relay = await startRelay(loadConfig(file, {}));
    const r = relay;
    let writes = 0;
    const write = r.store.noteRefusals.bind(r.store);
    r.store.noteRefusals = (rows) => {
      writes++;
      return write(rows);
    };
    const post = (path: string): Promise<number> =>
      fetch(`http://127.0.0.1:${r.port}${path}`, { method: 'POST', body: '{}' }).then(
        async (res) => (await res.arrayBuffer(), res.status),
      );
    const t0 = Date.now();
    expect(await post('/hooks/3cx/stale-token-123')).toBe(401);
    // The first refusal in a while is written at once: an admin testing the PBX sees it.
    await vi.waitFor(async () => expect(await r.store.refusals()).toHaveLength(1), {
      timeout: 5000,
    });
    expect((await r.store.refusals())[0]).toEqual({
      source: '3cx',
      at: expect.any(String),
      status: 401,
      code: 'RELAY_ERR_UNAUTHORIZED',
      reason: 'wrong token',
      path: '/hooks/3cx/***',
      address: '127.0.0.1',
      count: 1,
    });

    const client = new ConsoleClient(`http://127.0.0.1:${r.port}`);
    expect((await client.post('/console/sign-in', { token: TOKENS.admin })).status).toBe(303);
    const setup = await (await client.request('/console/setup')).text();
    expect(setup).toContain('Last refused');
    expect(setup).toMatch(/wrong token · from 127\.0\.0\.1 · <code>\/hooks\/3cx\/\*\*\*<\/code>/);
    expect(setup).toContain('401 RELAY_ERR_UNAUTHORIZED');

    // A flood: counted in memory, written together. (A few at a time: the relay limits the
    // connections of one address.)
    for (let batch = 0; batch < 40; batch++)
      await Promise.all(Array.from({ length: 5 }, () => post('/hooks/3cx/stale-token-123')));
    // Names that are no source: one row for all of them; a token pasted as the name is masked.
    expect(await post('/hooks/no-such-source/abc')).toBe(404);
    expect(await post(`/hooks/${sourceToken('3cx')}`)).toBe(404);
    const elapsed = Date.now() - t0;
    await r.close();
    relay = undefined;
    expect(writes).toBeGreaterThanOrEqual(2);
    expect(writes).toBeLessThanOrEqual(2 + Math.ceil(elapsed / 5000));

    // Read from the store, with the relay stopped.
    const out = spawnSync(process.execPath, [MAIN, 'status', '--config', file, '--json'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH },
    });
    expect(out.stderr).toBe('');
    expect(out.status).toBe(0);
    expect(out.stdout).not.toContain(sourceToken('3cx'));
    const status = JSON.parse(out.stdout) as Status;
    expect(status.sources.find((s) => s.source === '3cx')).toMatchObject({
      lastAccepted: null,
      lastRefused: { code: 'RELAY_ERR_UNAUTHORIZED', path: '/hooks/3cx/***', count: 201 },
    });
    expect(status.unknownSource).toMatchObject({
      source: '(unknown)',
      status: 404,
      code: 'RELAY_ERR_UNKNOWN_SOURCE',
      path: '/hooks/[redacted]',
      address: '127.0.0.1',
      count: 2,
    });
    const text = spawnSync(process.execPath, [MAIN, 'status', '--config', file], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH },
    }).stdout;
    expect(text).toMatch(
      /^3cx +none yet +\S+ \S+ wrong token from 127\.0\.0\.1 \/hooks\/3cx\/\*\*\*/m,
    );
    expect(text).toContain('(401 RELAY_ERR_UNAUTHORIZED, 201 refused so far)');
    expect(text).toContain('A request to a source that is not in relay.yaml');
  });
});
