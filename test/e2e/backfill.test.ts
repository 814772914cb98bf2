// Backfill: calls stored before a target was added reach it once asked, never twice. The CLI
// counts first and queues with --yes; the admin API does the same (a dry run by default); a
// relay then delivers what was queued to the fake CRM.

import { spawnSync } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay } from '../../src/runtime.js';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import {
  ConsoleClient,
  MAIN,
  settleDeliveries,
  sourceToken,
  tempDir,
  TOKENS,
  writeRelayYaml,
} from '../support.js';

const HS_TOKEN = 'pat-eu1-backfill-test-01';
const ended = (id: string): string =>
  JSON.stringify({
    event: 'incoming',
    id: `${id}-1`,
    callerid: '420774852629',
    user: '102',
    finishtype: 'Ok',
    transfer: 'False',
    did: '',
  });
const ringing = (id: string): string =>
  JSON.stringify({ Event: 'ringing', Callerid: '1', User: '800', Id: `${id}-0` });

describe('backfill', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  /**
   * Calls stored (and folded) by a relay without targets, then HubSpot added to its relay.yaml:
   * the situation a backfill is for.
   */
  async function storedBeforeTarget(bodies: string[]): Promise<{ hs: FakeHubspot; file: string }> {
    const hs = await new FakeHubspot(HS_TOKEN).start();
    cleanup.push(() => hs.close());
    const file = writeRelayYaml(tempDir());
    const first = await startRelay(loadConfig(file, {}));
    const hook = `http://127.0.0.1:${first.port}/hooks/3cx/${sourceToken('3cx')}`;
    for (const body of bodies)
      expect((await fetch(hook, { method: 'POST', body })).status).toBe(200);
    await first.pipeline.drain();
    await first.close();
    writeFileSync(
      file,
      `${readFileSync(file, 'utf8')}targets:\n  - name: hubspot\n    type: hubspot\n` +
        `    token: ${HS_TOKEN}\n    baseUrl: ${hs.url}\n    settleSec: 0\n`,
    );
    return { hs, file };
  }

  it('queues the calls stored before a target was added, once, and they are delivered', async () => {
    // The ringing call is stored too: not due at a target that delivers ended calls.
    const { hs, file } = await storedBeforeTarget([
      ended('261101100000_1'),
      ended('261101100000_2'),
      ringing('261101100000_3'),
    ]);
    const cli = (...args: string[]): { status: number | null; out: string; err: string } => {
      const r = spawnSync(process.execPath, [MAIN, 'backfill', '--config', file, ...args], {
        encoding: 'utf8',
      });
      return { status: r.status, out: r.stdout, err: r.stderr };
    };
    const count = cli('--target', 'hubspot', '--since', '2020-01-01');
    expect(count.status).toBe(0);
    // The ringing call is not due at a target that delivers ended calls.
    expect(count.out).toMatch(
      /^2 call\(s\) started since 2020-01-01T00:00:00.000Z would be queued for hubspot \(1 more/,
    );
    expect(count.out).toContain('--yes');
    const queued = cli('--target', 'hubspot', '--since', '2020-01-01', '--yes');
    expect(queued.out).toMatch(/^queued 2 call\(s\)/);
    expect(queued.err).toContain('queued 2 of about 2');
    expect(cli('--target', 'hubspot', '--since', '2020-01-01', '--yes').out).toMatch(/^queued 0 /);
    // Wrong use is said plainly.
    expect(cli('--target', 'nosuch', '--since', '2020-01-01')).toMatchObject({
      status: 2,
      err: expect.stringMatching(/--target must name a target of .*: hubspot/),
    });
    expect(cli('--target', 'hubspot', '--since', 'last tuesday').status).toBe(2);

    const relay = await startRelay(loadConfig(file, {}), undefined, { delivery: { pollMs: 20 } });
    cleanup.push(() => relay.close());
    await settleDeliveries(relay);
    expect(hs.count('POST', '/crm/v3/objects/calls')).toBe(2);

    // The API: a dry run by default, a count of nothing left; errors name what was wrong.
    const api = (path: string, body: unknown): Promise<Response> =>
      fetch(`http://127.0.0.1:${relay.port}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKENS.admin}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const dry = await api('/api/targets/hubspot/backfill', { since: '2020-01-01' });
    expect(await dry.json()).toMatchObject({ dryRun: true, scanned: 1, matched: 0 });
    expect((await api('/api/targets/nosuch/backfill', { since: '2020-01-01' })).status).toBe(404);
    const bad = await api('/api/targets/hubspot/backfill', { since: 'soon' });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('since must be an ISO-8601 date or time');
    expect(hs.count('POST', '/crm/v3/objects/calls')).toBe(2);
  });

  it('the API queues with dryRun false, and a relay delivers at once', async () => {
    const { hs, file } = await storedBeforeTarget([ended('261101100000_9')]);
    const relay = await startRelay(loadConfig(file, {}), undefined, {
      delivery: { pollMs: 60_000 },
    });
    cleanup.push(() => relay.close());
    const res = await fetch(`http://127.0.0.1:${relay.port}/api/targets/hubspot/backfill`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.admin}` },
      body: JSON.stringify({ since: '2020-01-01', dryRun: false }),
    });
    expect(await res.json()).toMatchObject({ dryRun: false, scanned: 1, matched: 1 });
    // Not the minute-long poll: the API woke the engine.
    await settleDeliveries(relay, 5000);
    expect(hs.count('POST', '/crm/v3/objects/calls')).toBe(1);
  });

  it('the console counts first, then queues on confirmation', async () => {
    const { hs, file } = await storedBeforeTarget([ended('261101100000_7')]);
    const relay = await startRelay(loadConfig(file, {}), undefined, { delivery: { pollMs: 20 } });
    cleanup.push(() => relay.close());
    const client = new ConsoleClient(`http://127.0.0.1:${relay.port}`);
    expect((await client.post('/console/sign-in', { token: TOKENS.admin })).status).toBe(303);
    const setup = await (await client.request('/console/setup')).text();
    client.csrf = /<meta name="csrf-token" content="([^"]+)"/.exec(setup)![1]!;
    expect(setup).toContain('action="/console/setup/targets/hubspot/backfill"');
    const count = await (
      await client.request('/console/setup/targets/hubspot/backfill?since=2020-01-01')
    ).text();
    expect(count).toContain(
      '1 call(s) that started since 2020-01-01 have not been sent to hubspot',
    );
    expect(count).toContain('Queue 1 call(s)');
    // Counting queued nothing.
    expect(await relay.store.listDeliveries({ target: 'hubspot', limit: 5 })).toEqual([]);
    const queued = await client.post('/console/setup/targets/hubspot/backfill', {
      since: '2020-01-01T00:00:00.000Z',
    });
    expect(queued.status).toBe(303);
    await settleDeliveries(relay);
    expect(hs.count('POST', '/crm/v3/objects/calls')).toBe(1);
    const again = await (
      await client.request('/console/setup/targets/hubspot/backfill?since=2020-01-01')
    ).text();
    expect(again).toContain('Nothing to backfill');
    const bad = await client.request('/console/setup/targets/hubspot/backfill?since=someday');
    expect(bad.status).toBe(400);
  });
});
