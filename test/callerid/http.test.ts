// The routes 3CX's CRM template calls, over real HTTP on 127.0.0.1: the relay's own app (app.ts,
// its error answers and the webhooks' catch-all for /hooks/*) with the caller-ID routes mounted
// as runtime.ts mounts them, and small CRM targets of the test's own. Auth as 3CX sends it (Basic
// with the token as password), a wrong token, a source without crm:, allowIps, a "+" in the path,
// the admin API's probe, and webhooks to the same source still received.

import { serve, type ServerType } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallerId } from '../../src/callerid/wiring.js';
import type { CallerSource } from '../../src/callerid/service.js';
import { loadConfig } from '../../src/config/load.js';
import { createApp } from '../../src/http/app.js';
import { SourceGuards } from '../../src/http/guard.js';
import { silentLogger } from '../../src/telemetry/log.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { sourceToken, tempDir, TOKENS, writeRelayYaml } from '../support.js';
import { FakeCrm, jana } from './fakes.js';

const TOKEN = sourceToken('3cx');
const crm = { cacheSec: 300, answerWithinMs: 2000 };

describe('3CX CRM routes', () => {
  let relay: Relay;
  let server: ServerType;
  let base: string;
  const hubspot = new FakeCrm('hubspot', [jana]);
  const refused: string[] = [];
  const sources: (CallerSource & { token: string })[] = [
    { name: '3cx', token: TOKEN, defaultCountry: 'CZ', crm: { ...crm, createIn: 'hubspot' } },
    { name: 'callerdesk', token: sourceToken('callerdesk') },
    { name: 'walled', token: 'walled-token-0000000000', crm },
  ];

  beforeAll(async () => {
    relay = await startRelay(loadConfig(writeRelayYaml(tempDir()), {}));
    const callerId = new CallerId({
      sources: () => sources,
      targets: () => [hubspot],
      publicUrl: () => 'https://relay.example.com',
      checkAddress: (source, c) => guards.checkAddress(source, c),
      refused: (source, c, err) => refused.push(`${source} ${err.code} ${c.req.path}`),
      log: silentLogger,
    });
    const guards = new SourceGuards(
      [{ name: 'walled', guard: { allowIps: ['192.0.2.0/24'] } }],
      [],
    );
    const app = createApp({
      pipeline: relay.pipeline,
      bodyLimit: 1 << 20,
      adminToken: TOKENS.admin,
      beforeHooks: callerId.mount,
      crmLookup: callerId.probe,
    });
    server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => server.once('listening', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    if (server) await new Promise((r) => server.close(r));
    await relay?.close();
  });

  const basic = (password: string, user = '3cx'): Record<string, string> => ({
    authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
  });
  const get = (path: string, headers: Record<string, string> = basic(TOKEN)): Promise<Response> =>
    fetch(`${base}${path}`, { headers });
  const json = async (res: Response): Promise<Record<string, unknown>> =>
    (await res.json()) as Record<string, unknown>;

  it('answers a lookup with Basic auth (any user name), the "+" of the path intact', async () => {
    const res = await get('/hooks/3cx/crm/lookup/+420774852629', basic(TOKEN, 'anyone'));
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = await json(res);
    expect(body).toEqual({
      contacts: [
        {
          id: '101',
          firstName: 'Jana',
          lastName: 'Nováková',
          company: 'Acme s.r.o.',
          email: 'jana@acme.example',
          phoneBusiness: '+420 222 000 320',
          phoneMobile: '+420774852629',
          phoneHome: '',
          phoneOther: '',
          url: 'https://crm.example/contacts/101',
          entityType: 'Contacts',
          target: 'hubspot',
        },
      ],
    });
    // Percent-encoded, as a client that escapes the path sends it.
    const escaped = await json(await get('/hooks/3cx/crm/lookup/%2B420774852629'));
    expect((escaped.contacts as { phoneMobile: string }[])[0]?.phoneMobile).toBe('+420774852629');
  });

  it('also takes the token as a Bearer or ?token=', async () => {
    expect(
      (await get('/hooks/3cx/crm/lookup/+420774852629', { authorization: `Bearer ${TOKEN}` }))
        .status,
    ).toBe(200);
    expect((await get(`/hooks/3cx/crm/lookup/+420774852629?token=${TOKEN}`, {})).status).toBe(200);
  });

  it('refuses a wrong or missing token 401, as webhooks do', async () => {
    const wrong = await get('/hooks/3cx/crm/lookup/+420774852629', basic('not-the-token'));
    expect(wrong.status).toBe(401);
    expect(await json(wrong)).toEqual({
      error: { code: 'RELAY_ERR_UNAUTHORIZED', message: 'wrong token' },
    });
    const missing = await get('/hooks/3cx/crm/search?q=jana', {});
    expect(missing.status).toBe(401);
    expect(JSON.stringify(await json(missing))).toContain('HTTP Basic');
    // Kept for Setup's "Last refused", as a refused webhook is.
    expect(refused.splice(0)).toEqual([
      '3cx RELAY_ERR_UNAUTHORIZED /hooks/3cx/crm/lookup/+420774852629',
      '3cx RELAY_ERR_UNAUTHORIZED /hooks/3cx/crm/search',
    ]);
  });

  it('answers 404 with a clear error for a source without crm:, and for an unknown source', async () => {
    const res = await get('/hooks/callerdesk/crm/lookup/+420774852629', {
      authorization: `Bearer ${sourceToken('callerdesk')}`,
    });
    expect(res.status).toBe(404);
    const body = (await json(res)) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('RELAY_ERR_CRM_NOT_CONFIGURED');
    expect(body.error.message).toContain('callerdesk has no crm:');
    const unknown = await get('/hooks/nope/crm/lookup/+420774852629');
    expect(((await json(unknown)) as { error: { code: string } }).error.code).toBe(
      'RELAY_ERR_UNKNOWN_SOURCE',
    );
  });

  it("checks the sender against the source's allowIps before the token", async () => {
    const res = await get('/hooks/walled/crm/lookup/+420774852629', basic('wrong'));
    expect(res.status).toBe(403);
    expect(((await json(res)) as { error: { code: string } }).error.code).toBe(
      'RELAY_ERR_FORBIDDEN_ADDRESS',
    );
  });

  it('searches by text and looks up by email', async () => {
    const found = await json(await get('/hooks/3cx/crm/search?q=Nov%C3%A1'));
    expect((found.contacts as { id: string }[]).map((c) => c.id)).toEqual(['101']);
    const none = await json(await get('/hooks/3cx/crm/search?q=x'));
    expect(none).toEqual({ contacts: [] });
    const byEmail = await json(await get('/hooks/3cx/crm/email/jana%40acme.example'));
    expect((byEmail.contacts as { id: string }[]).map((c) => c.id)).toEqual(['101']);
    const unknown = await get('/hooks/3cx/crm/lookup/+420606000000');
    expect(unknown.status).toBe(200);
    expect(await json(unknown)).toEqual({ contacts: [] });
  });

  it('creates a contact from the Web Client form, with fields 3CX lacks left out', async () => {
    const res = await fetch(`${base}/hooks/3cx/crm/contacts`, {
      method: 'POST',
      headers: { ...basic(TOKEN), 'content-type': 'application/json' },
      body: JSON.stringify({
        firstName: 'Eva',
        lastName: 'Dvořáková',
        email: '[Email]',
        number: '+420777000111',
      }),
    });
    expect(res.status).toBe(200);
    const body = (await json(res)) as { contacts: { firstName: string; phoneBusiness: string }[] };
    expect(body.contacts[0]).toMatchObject({ firstName: 'Eva', phoneBusiness: '+420777000111' });
    expect(hubspot.created.at(-1)).toEqual({
      firstName: 'Eva',
      lastName: 'Dvořáková',
      e164: '+420777000111',
    });
  });

  it('shows an admin what 3CX would show (GET /api/sources/:name/crm/lookup)', async () => {
    const url = `/api/sources/3cx/crm/lookup?number=${encodeURIComponent('+420774852629')}`;
    expect((await get(url, {})).status).toBe(401);
    const res = await get(url, { authorization: `Bearer ${TOKENS.admin}` });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({
      number: '+420774852629',
      e164: '+420774852629',
      found: true,
      shown: {
        name: 'Jana Nováková',
        company: 'Acme s.r.o.',
        contactUrl: 'https://crm.example/contacts/101',
      },
      target: 'hubspot',
      result: 'hit',
      cached: true,
    });
  });

  it('still receives webhooks on the same source', async () => {
    const res = await fetch(`${base}/hooks/3cx/${TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"Event":"ringing","Callerid":"1","User":"800","Id":"261301100000_1-0"}',
    });
    expect(res.status).toBe(200);
    // A path of neither kind is still the catch-all's.
    const other = await get('/hooks/3cx/crm/lookup');
    expect(other.status).toBe(404);
    expect(((await json(other)) as { error: { code: string } }).error.code).toBe(
      'RELAY_ERR_NOT_FOUND',
    );
  });
});
