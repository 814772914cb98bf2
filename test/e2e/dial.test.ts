// Click-to-call: POST /api/dial asks the fake 3CX exactly as its WebAPI documents (first = the
// extension, second = the number), keeps the PBX's answer as the call's origin, and the recorded
// makecall flow, carrying the chid the PBX gave, folds into a call that says who placed it, on
// SQLite and on PostgreSQL. A PBX that refuses or is down is a 502 that says why, without its key.

import { execFile } from 'node:child_process';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { dialSignature } from '../../src/lib/links.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { callBody } from '../../src/targets/kit/summary.js';
import { FakePbx } from '../fakes/pbx.js';
import {
  ConsoleClient,
  freshPostgresDatabase,
  goldenCases,
  MAIN,
  sendFlowRequest,
  tempDir,
  TOKENS,
  writeRelayYaml,
} from '../support.js';

const KEY = 'webapi-key-secret-0123';
// The chid the recorded flow's webhooks carry for the answered call.
const FLOW_CHID = '00000000-01dc-27fc-0bdb-88fd0000002f';

describe.each(['sqlite', 'postgres'] as const)('click-to-call (%s)', (backend) => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function setup(): Promise<{
    relay: Relay;
    pbx: FakePbx;
    file: string;
    dial: (b: object) => Promise<Response>;
  }> {
    const pbx = await new FakePbx().start();
    pbx.makecallKey = KEY;
    const file = writeRelayYaml(tempDir(), {
      threecx: `    pbx:\n      url: ${pbx.url}\n      key: ${KEY}\n      timeoutSec: 2\n`,
    });
    const cfg = loadConfig(file, {});
    const store =
      backend === 'postgres'
        ? {
            postgres: await freshPostgresDatabase(inject('pgUrl')),
            maxEventsPerCall: cfg.store.maxEventsPerCall,
            keepRequestsDays: 90,
          }
        : cfg.store;
    const relay = await startRelay({ ...cfg, store });
    cleanup.push(
      () => pbx.close(),
      () => relay.close(),
    );
    const dial = (body: object) =>
      fetch(`http://127.0.0.1:${relay.port}/api/dial`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKENS.admin}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    return { relay, pbx, file, dial };
  }

  it('places the call through the PBX and the call it makes says who placed it', async () => {
    const { relay, pbx, dial } = await setup();
    pbx.makecallAnswer = { status: 200, body: JSON.stringify({ chid: FLOW_CHID }) };
    // A national number: the source's default country (CZ) makes it whole.
    const res = await dial({ source: '3cx', agent: '105', number: '774 852 629', by: 'jana' });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ ok: true, chid: FLOW_CHID, number: '+420774852629' });
    expect(pbx.placed).toEqual([
      { first: '105', second: '420774852629', query: 'first=105&second=420774852629' },
    ]);

    // The call's own webhooks, as 3CX sends them after a makecall (the recorded flow).
    const flow = goldenCases().find(
      (c) => c.flow.name === '3cx-v3-makecall-missed-then-answered-with-ai',
    )!.flow;
    for (const r of flow.requests) await sendFlowRequest(relay.port, '3cx', r);
    await relay.pipeline.drain();
    const [answered] = await relay.store.getCalls('250917195359_47', '3cx');
    expect(answered!.record).toMatchObject({
      channelId: FLOW_CHID,
      outcome: 'answered',
      originatedBy: 'api:jana',
    });
    // Its CRM note says so (the body every CRM target shares).
    expect(callBody(answered!.record, [])).toContain(
      '<b>Placed:</b> from callrelay (click-to-call, api:jana)',
    );
    // The earlier call of the flow had another chid: nobody placed it through the relay.
    const [missed] = await relay.store.getCalls('250917194513_46', '3cx');
    expect(missed!.record.originatedBy).toBeNull();
  });

  it("the console's call page calls the caller back", async () => {
    const { relay, pbx } = await setup();
    const flow = goldenCases().find((c) => c.flow.name === '3cx-v1-incoming-answered')!.flow;
    const { callId, agent } = flow.expect!.calls[0] as { callId: string; agent: string };
    for (const r of flow.requests) await sendFlowRequest(relay.port, '3cx', r);
    await relay.pipeline.drain();
    const client = new ConsoleClient(`http://127.0.0.1:${relay.port}`);
    expect((await client.post('/console/sign-in', { token: TOKENS.admin })).status).toBe(303);
    const page = await (await client.request(`/console/calls/3cx/${callId}`)).text();
    client.csrf = /<meta name="csrf-token" content="([^"]+)"/.exec(page)![1]!;
    expect(page).toContain(`action="/console/calls/3cx/${callId}/dial"`);
    expect(page).toContain(`value="${agent}"`);
    const res = await client.post(`/console/calls/3cx/${callId}/dial`, { agent });
    expect(res.status).toBe(303);
    expect(pbx.placed.map((p) => [p.first, p.second])).toEqual([[agent, '420774852629']]);
    const after = await (await client.request(res.headers.get('location')!)).text();
    expect(after).toContain(`Calling +420774852629: pick up at extension ${agent}.`);
  });

  it('callrelay dial places it through the running relay', async () => {
    const { relay, pbx, file } = await setup();
    // Not spawnSync: the relay answers from this process's event loop.
    const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        [
          MAIN,
          'dial',
          '--config',
          file,
          '--agent',
          '105',
          '--to',
          `http://127.0.0.1:${relay.port}`,
          '+420 774 852 629',
        ],
        { encoding: 'utf8' },
        (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }),
      ),
    );
    expect(out.stderr).toBe('');
    expect(out.stdout).toMatch(/^3cx: ringing extension 105, then \+420774852629 \(chid /);
    expect(pbx.placed.map((p) => p.second)).toEqual(['420774852629']);
  });

  it('answers what went wrong: a bad request 400, a PBX that refuses or is down 502', async () => {
    const { pbx, dial } = await setup();
    const error = async (r: Response) => [r.status, ((await r.json()) as { error: object }).error];
    expect(await error(await dial({ source: '3cx', agent: '105', number: 'call me' }))).toEqual([
      400,
      {
        code: 'RELAY_ERR_BAD_REQUEST',
        message: '"call me" is not a phone number (numbers without a country code are read as CZ)',
      },
    ]);
    expect(
      await error(await dial({ source: 'callerdesk', agent: '1', number: '+420774852629' })),
    ).toMatchObject([400, { message: expect.stringContaining('has no pbx:') }]);
    expect(await error(await dial({ source: '3cx', number: '+420774852629' }))).toMatchObject([
      400,
      { message: '"agent" is required (a string)' },
    ]);
    expect(pbx.placed).toEqual([]);

    pbx.makecallKey = 'another-key';
    const refused = await dial({ source: '3cx', agent: '105', number: '+420774852629' });
    const text = await refused.text();
    expect(refused.status).toBe(502);
    expect(text).toContain('RELAY_ERR_PBX_FAILED');
    expect(text).toContain('the PBX answered 401: Invalid key');
    expect(text).not.toContain(KEY);

    await pbx.close();
    const down = await dial({ source: '3cx', agent: '105', number: '+420774852629' });
    expect(await error(down)).toMatchObject([
      502,
      { code: 'RELAY_ERR_PBX_FAILED', message: expect.stringMatching(/^the PBX did not answer/) },
    ]);
    // Without the admin token: nobody places calls.
    const anon = await fetch(down.url, { method: 'POST', body: '{}' });
    expect(anon.status).toBe(401);
  });
});

describe('click-to-call links for CRMs', () => {
  it('places a call from a signed per-agent link; a changed or expired one is refused', async () => {
    const pbx = await new FakePbx().start();
    pbx.makecallKey = KEY;
    const secret = 'link-secret-0123456789-0123456789-abcdef';
    const file = writeRelayYaml(tempDir(), {
      server: `  publicUrl: https://relay.example.test\n  urlSecret: ${secret}\n`,
      threecx: `    pbx:\n      url: ${pbx.url}\n      key: ${KEY}\n`,
    });
    const relay = await startRelay(loadConfig(file, {}));
    try {
      const made = await new Promise<string>((resolve, reject) =>
        execFile(
          process.execPath,
          [MAIN, 'dial-link', '--config', file, '--agent', '105', '--days', '1'],
          { encoding: 'utf8' },
          (err, stdout) => (err ? reject(err) : resolve(stdout.trim())),
        ),
      );
      expect(made).toMatch(
        /^https:\/\/relay\.example\.test\/dial\?source=3cx&agent=105&until=\d+&sig=[\w-]+&number=$/,
      );
      const local = made.replace('https://relay.example.test', `http://127.0.0.1:${relay.port}`);
      const res = await fetch(`${local}%2B420774852629`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('Calling <b>+420774852629</b>: pick up at extension 105');
      expect(pbx.placed.map((p) => [p.first, p.second])).toEqual([['105', '420774852629']]);
      const [origin] = await relay.store.listInbox({ limit: 1 });
      expect(origin!.query).toContain('originatedby=link%3A105');

      // Another agent with the same signature, or the same link past its time: refused.
      const code = async (url: string) =>
        ((await (await fetch(url)).json()) as { error: { code: string } }).error.code;
      expect(await code(local.replace('agent=105', 'agent=106') + '1234')).toBe(
        'RELAY_ERR_LINK_INVALID',
      );
      const until = Math.floor(Date.now() / 1000) - 1;
      const expired = `http://127.0.0.1:${relay.port}/dial?source=3cx&agent=105&until=${until}&sig=${dialSignature(secret, '3cx', '105', until)}&number=1234`;
      expect(await code(expired)).toBe('RELAY_ERR_LINK_EXPIRED');
      expect(pbx.placed).toHaveLength(1);
    } finally {
      await relay.close();
      await pbx.close();
    }
  });
});
