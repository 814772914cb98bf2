// The console's Setup page for 3CX's CRM integration, over the app as `start` builds it (a real
// pipeline on a real SQLite store): per source with crm: the template to download (or why not,
// without server.publicUrl), the upload steps, and "what would 3CX show for this number".

import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CallerId } from '../../src/callerid/wiring.js';
import type { CallerSource } from '../../src/callerid/service.js';
import { loadConfig } from '../../src/config/load.js';
import { secretsOf } from '../../src/config/secrets.js';
import { createApp } from '../../src/http/app.js';
import type { ConsoleOptions } from '../../src/http/console/types.js';
import { AuthGate, SESSION_DEFAULTS } from '../../src/http/gate.js';
import { Redactor } from '../../src/lib/redact.js';
import { Pipeline } from '../../src/pipeline/pipeline.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { silentLogger } from '../../src/telemetry/log.js';
import { sourceToken, tempDir, TOKENS, writeRelayYaml } from '../support.js';
import { FakeCrm, jana } from './fakes.js';

const ORIGIN = 'http://localhost';
const open: SqliteStore[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

function makeConsole(publicUrl: string | undefined) {
  const dir = tempDir();
  const cfg = loadConfig(writeRelayYaml(dir), {});
  const store = new SqliteStore(join(dir, 'relay.db'));
  open.push(store);
  const pipeline = new Pipeline(store, cfg.sources);
  const sources: (CallerSource & { token: string })[] = [
    {
      name: '3cx',
      token: sourceToken('3cx'),
      defaultCountry: 'CZ',
      crm: { cacheSec: 300, answerWithinMs: 2000 },
    },
    { name: 'callerdesk', token: sourceToken('callerdesk') },
  ];
  const callerId = new CallerId({
    sources: () => sources,
    targets: () => [new FakeCrm('hubspot', [jana])],
    publicUrl: () => publicUrl,
    log: silentLogger,
  });
  const opts: ConsoleOptions = {
    pipeline,
    redact: new Redactor(secretsOf(cfg)),
    targets: [],
    recording: async () => {
      throw new Error('no recordings here');
    },
    reload: async () => ({ adapters: [], restartNeeded: [] }),
    onChange: () => () => {},
    onDeliveriesDue: () => {},
    version: '9.9.9',
    storeHealth: async () => ({ backend: 'sqlite', ok: true, detail: 'writable' }),
    crm: { templates: callerId.templates, lookup: callerId.probe },
    ...(publicUrl ? { publicUrl } : {}),
  };
  const gate = new AuthGate({ adminToken: TOKENS.admin, trustProxy: [], ...SESSION_DEFAULTS });
  return createApp({
    pipeline,
    bodyLimit: 1 << 20,
    adminToken: TOKENS.admin,
    console: opts,
    auth: gate,
  });
}

async function signIn(app: ReturnType<typeof createApp>): Promise<string> {
  const res = await app.request('/console/sign-in', {
    method: 'POST',
    headers: { origin: ORIGIN, 'sec-fetch-site': 'same-origin' },
    body: new URLSearchParams({ token: TOKENS.admin, next: '/console' }),
  });
  expect(res.status).toBe(303);
  return res.headers.get('set-cookie')!.split(';')[0]!;
}

describe('Setup: 3CX caller names', () => {
  it('offers the template of each source with crm:, with the upload steps', async () => {
    const app = makeConsole('https://relay.example.com');
    const cookie = await signIn(app);
    const page = await (await app.request('/console/setup', { headers: { cookie } })).text();
    expect(page).toContain('<h2>3CX caller names</h2>');
    expect(page).toContain('href="/console/setup/sources/3cx/3cx-template"');
    expect(page).not.toContain('/console/setup/sources/callerdesk/3cx-template');
    expect(page).toContain('Admin &gt; Integrations &gt; CRM &gt; &quot;Add/Upload template&quot;');
    expect(page).toContain('Settings &gt; CRM Integration &gt; Server Side');
    expect(page).toContain('action="/console/setup/sources/3cx/crm-lookup"');
    // The token stays behind Reveal: the template never carries it.
    expect(page).not.toContain(sourceToken('3cx'));

    const xml = await app.request('/console/setup/sources/3cx/3cx-template', {
      headers: { cookie },
    });
    expect(xml.status).toBe(200);
    expect(xml.headers.get('content-disposition')).toBe('attachment; filename="callrelay-3cx.xml"');
    const text = await xml.text();
    expect(text).toContain('Default="https://relay.example.com/hooks/3cx"');
    expect(text).not.toContain(sourceToken('3cx'));
    // Signed out: nothing.
    const anon = await app.request('/console/setup/sources/3cx/3cx-template');
    expect(anon.status).toBe(303);
  });

  it('says why there is no template without server.publicUrl', async () => {
    const app = makeConsole(undefined);
    const cookie = await signIn(app);
    const page = await (await app.request('/console/setup', { headers: { cookie } })).text();
    expect(page).toContain('<code>server.publicUrl</code>');
    expect(page).toContain('callrelay 3cx-template --source 3cx --url https://');
    expect(page).not.toContain('href="/console/setup/sources/3cx/3cx-template"');
  });

  it('shows what 3CX would show for a number, and the bare number for an unknown one', async () => {
    const app = makeConsole('https://relay.example.com');
    const cookie = await signIn(app);
    const hit = await app.request(
      `/console/setup/sources/3cx/crm-lookup?number=${encodeURIComponent('+420 774 852 629')}`,
      { headers: { cookie } },
    );
    expect(hit.status).toBe(200);
    const page = await hit.text();
    expect(page).toContain('3CX would show for +420 774 852 629');
    expect(page).toContain('Jana Nováková');
    expect(page).toContain('Acme s.r.o.');
    expect(page).toContain('href="https://crm.example/contacts/101"');
    expect(page).toMatch(/hubspot \(hit, \d+(\.\d+)? ms\)/);
    const miss = await (
      await app.request('/console/setup/sources/3cx/crm-lookup?number=%2B420606000000', {
        headers: { cookie },
      })
    ).text();
    expect(miss).toContain('Nothing: 3CX shows the bare number');
    const none = await app.request('/console/setup/sources/callerdesk/crm-lookup?number=1', {
      headers: { cookie },
    });
    expect(none.status).toBe(404);
    expect(await none.text()).toContain('callerdesk has no crm:');
  });
});
