// The made-up Pebble CRM behind an OAuth 2 authorization server (test/fakes/oauth.ts) that
// rotates the refresh token on every use: a refresh-token recipe whose access token expires in
// the middle of a run is refreshed once and delivery goes on, and the rotated refresh token is
// what a restarted relay uses (the one in relay.yaml no longer works by then).

import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { FakeOAuth } from '../fakes/oauth.js';
import { FakePebble } from '../fakes/pebble.js';
import {
  MAIN,
  ROOT,
  sendFlowRequest,
  settleDeliveries,
  tempDir,
  writeRelayYaml,
} from '../support.js';

const RECIPE = join(ROOT, 'test', 'recipes', 'pebble-crm.yaml');

/** The Pebble recipe with its API key swapped for a refresh-token grant. */
function oauthRecipe(): string {
  const text = readFileSync(RECIPE, 'utf8');
  const fixed = /auth:\n {2}type: header\n {2}fields: \[apiKey\]\n {2}headers: .*\n/;
  expect(text).toMatch(fixed);
  return text
    .replace(fixed, 'auth:\n  type: refresh_token\n  tokenUrl: "{vars.tokenUrl}"\n')
    .replace(/^vars:\n/m, "vars:\n  tokenUrl: { required: true, description: 'Token endpoint' }\n");
}

const call = (i: number): string =>
  `{"Event":"incoming","Callerid":"42077485${String(3000 + i)}","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:21","Id":"260702100000_${i}-1"}`;

describe('a refresh-token recipe (Pebble behind OAuth 2)', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  /** Pebble behind a rotating OAuth server, and a relay.yaml for it (tokenPath: the token URL). */
  async function world(tokenPath = '/token') {
    const auth = await new FakeOAuth().start();
    cleanup.push(() => auth.close());
    auth.rotate = true;
    const crm = await new FakePebble({ bearer: (t) => auth.isLive(t) }).start();
    cleanup.push(() => crm.close());
    const configured = auth.newRefreshToken();
    const dir = tempDir();
    mkdirSync(join(dir, 'targets'));
    writeFileSync(join(dir, 'targets', 'pebble-crm.yaml'), oauthRecipe());
    const file = writeRelayYaml(dir, {
      more:
        'targets:\n  - name: pebble\n    type: rest\n    recipe: pebble-crm\n' +
        `    vars: { url: "${crm.url}", tokenUrl: "${auth.url}${tokenPath}" }\n` +
        `    auth: { clientId: ${auth.clientId}, clientSecret: ${auth.clientSecret}, ` +
        `refreshToken: ${configured} }\n`,
    });
    const open = async (): Promise<Relay> => {
      const relay = await startRelay(loadConfig(file, {}), undefined, {
        delivery: { pollMs: 20, backoff: { baseMs: 50, maxMs: 400 } },
      });
      cleanup.push(() => relay.close());
      return relay;
    };
    const send = async (relay: Relay, i: number): Promise<void> => {
      const res = await sendFlowRequest(relay.port, '3cx', {
        method: 'POST',
        contentType: 'application/json',
        body: call(i),
      });
      expect(res?.status).toBe(200);
    };
    return { auth, crm, configured, file, open, send };
  }

  it('check --online uses and keeps the stored (rotated) refresh token: the relay goes on delivering', async () => {
    const { auth, crm, file, open, send } = await world();
    const relay = await open();
    await send(relay, 1);
    await settleDeliveries(relay);
    expect(crm.calls.size).toBe(1);
    // The access token dies, so the check must refresh, with the refresh token the relay rotated.
    auth.expireAll();
    const r = await new Promise<{ status: number; out: string }>((done) =>
      execFile(
        process.execPath,
        [MAIN, 'check', '--online', '--config', file],
        { encoding: 'utf8' },
        (err, stdout, stderr) =>
          done({ status: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
      ),
    );
    expect(r.out).toMatch(/ok {2}pebble \(rest\): credentials accepted/);
    expect(r.status).toBe(0);
    expect(auth.tokenRequests).toHaveLength(2);
    // The relay's token died too: it takes the one the check stored, and delivers.
    await send(relay, 2);
    await settleDeliveries(relay);
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
    expect(crm.calls.size).toBe(2);
    expect(auth.tokenRequests).toHaveLength(2);
  });

  it('a token URL answering 404 is no "nobody has the number": the delivery names the token endpoint', async () => {
    const { crm, open, send } = await world('/gone');
    crm.addContact('Ada', ['+420774853001']);
    const relay = await open();
    await send(relay, 1);
    await settleDeliveries(relay);
    const [dead] = await relay.store.listDeliveries({ state: 'dead', limit: 5 });
    expect(dead?.lastError).toMatch(
      /fetching an access token for target "pebble": the token endpoint answered 404 .*check tokenUrl/,
    );
    // The lookup never ran, so nothing says the caller is nobody.
    expect(dead?.remote.contact).toBeUndefined();
    expect(crm.calls.size).toBe(0);
  });

  it('refreshes a token that expired mid-run once, and a restart uses the rotated refresh token', async () => {
    const { auth, crm, configured, open, send } = await world();

    let relay = await open();
    for (let i = 1; i <= 3; i++) await send(relay, i);
    await settleDeliveries(relay);
    expect(crm.calls.size).toBe(3);
    expect(auth.tokenRequests).toHaveLength(1);

    // The access token dies early (revoked, or a session timeout shorter than said): the next
    // request is refused with 401, one refresh follows, and the calls after it go through.
    auth.expireAll();
    for (let i = 4; i <= 6; i++) await send(relay, i);
    await settleDeliveries(relay);
    expect(crm.calls.size).toBe(6);
    expect(auth.tokenRequests).toHaveLength(2);
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
    // Each refresh used the token the one before handed out: relay.yaml's works only once.
    expect(auth.tokenRequests.map((r) => r.refreshToken)[0]).toBe(configured);
    expect(auth.refreshTokens.has(configured)).toBe(false);

    // A restart on the same store: the access token is gone too, so the relay must refresh with
    // the rotated refresh token it kept, not relay.yaml's revoked one.
    await relay.close();
    cleanup.pop();
    auth.expireAll();
    relay = await open();
    await send(relay, 7);
    await settleDeliveries(relay);
    expect(await relay.store.listDeliveries({ state: 'dead', limit: 5 })).toEqual([]);
    expect(crm.calls.size).toBe(7);
    expect(auth.tokenRequests).toHaveLength(3);
    expect(auth.tokenRequests[2]!.refreshToken).not.toBe(configured);
    // Every call exactly once.
    const refs = [...crm.calls.values()].map((c) => c.fields.external_ref).sort();
    expect(new Set(refs).size).toBe(7);
  });
});
