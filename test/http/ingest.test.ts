// HTTP ingest against a real listening relay (temp SQLite file): content types, auth, limits,
// error codes, durability failures and every golden flow sent over the wire.

import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { compareCalls, type Flow } from '../../src/flows.js';
import { createApp } from '../../src/http/app.js';
import { Pipeline } from '../../src/pipeline/pipeline.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import {
  goldenCases,
  sendFlowRequest,
  sourceToken,
  tempDir,
  TOKENS,
  writeRelayYaml,
  type SourceSettings,
} from '../support.js';

async function launch(
  opts: {
    bodyLimit?: string;
    busyTimeoutMs?: number;
    sources?: Record<string, SourceSettings | undefined>;
  } = {},
): Promise<{ relay: Relay; base: string; dir: string }> {
  const dir = tempDir();
  const cfg = loadConfig(
    writeRelayYaml(dir, { bodyLimit: opts.bodyLimit, sources: opts.sources }),
    {},
  );
  const store = new SqliteStore(join(dir, 'relay.db'), { busyTimeoutMs: opts.busyTimeoutMs });
  const relay = await startRelay(cfg, undefined, { store });
  return { relay, base: `http://127.0.0.1:${relay.port}`, dir };
}

const admin = { authorization: `Bearer ${TOKENS.admin}` };
const V2_RINGING =
  '{ "Event": "ringing", "Callerid": "05552221133", "User": "800", "Usertype": "other", "Did": "", "Id": "230307114903_10-0" }';

async function json(res: Response): Promise<Record<string, any>> {
  return (await res.json()) as Record<string, any>;
}

describe('HTTP ingest', () => {
  let ctx: Awaited<ReturnType<typeof launch>>;
  beforeAll(async () => {
    ctx = await launch({ bodyLimit: '4KiB' });
  });
  afterAll(async () => {
    await ctx.relay.close();
  });
  const hook = (path: string, init?: RequestInit): Promise<Response> =>
    fetch(`${ctx.base}${path}`, init);
  const storedBody = async (id: number): Promise<Buffer> =>
    (await ctx.relay.store.getInbox(id))!.body;

  it('answers /healthz and /readyz', async () => {
    expect(await json(await hook('/healthz'))).toEqual({ status: 'ok' });
    expect(await json(await hook('/readyz'))).toEqual({ status: 'ready', store: 'sqlite' });
  });

  it('accepts JSON with the token in the path, and keeps the raw bytes', async () => {
    const res = await hook(`/hooks/3cx/${TOKENS.threecx}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: V2_RINGING,
    });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toMatchObject({
      ok: true,
      status: 'mapped',
      rule: 'ringing',
      events: [{ type: 'ringing', callId: '230307114903_10' }],
    });
    expect((await storedBody(body.id)).toString()).toBe(V2_RINGING);
  });

  it('accepts the token as Authorization: Bearer and as ?token=, and never stores it', async () => {
    const a = await hook('/hooks/3cx', {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.threecx}`, 'content-type': 'application/json' },
      body: V2_RINGING,
    });
    expect(a.status).toBe(200);
    const b = await hook(
      `/hooks/3cx?event=dialing&token=${TOKENS.threecx}&callerid=05552221133&user=117&id=230307135611_31-0`,
    );
    expect(b.status).toBe(200);
    const row = (await ctx.relay.store.getInbox((await json(b)).id))!;
    expect(row.query).toBe('event=dialing&callerid=05552221133&user=117&id=230307135611_31-0');
    expect(JSON.stringify(row)).not.toContain(TOKENS.threecx);
    const rowA = (await ctx.relay.store.getInbox((await json(a)).id))!;
    expect(JSON.stringify(rowA.headers)).not.toContain(TOKENS.threecx);
  });

  it("accepts the token as the password of Authorization: Basic (3CX's CRM template)", async () => {
    const basic = (password: string): string =>
      `Basic ${Buffer.from(`3cx:${password}`).toString('base64')}`;
    const journal = JSON.stringify({
      callType: 'Inbound',
      number: '+420774852629',
      agent: '105',
      start: '20261206101502',
      durationSec: '72',
    });
    const post = (authorization: string): Promise<Response> =>
      hook('/hooks/3cx-crm-template', {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/json' },
        body: journal,
      });
    const token = sourceToken('3cx-crm-template');
    const ok = await post(basic(token));
    expect(ok.status).toBe(200);
    const body = await json(ok);
    expect(body).toMatchObject({
      status: 'mapped',
      events: [{ type: 'report', callId: '3cxrc-20261206101502-105-420774852629-inbound' }],
    });
    expect(JSON.stringify(await ctx.relay.store.getInbox(body.id))).not.toContain(token);

    const wrongPassword = `${token}-not`;
    const wrong = await post(basic(wrongPassword));
    expect(wrong.status).toBe(401);
    const refusal = await wrong.text();
    expect(refusal).toContain('RELAY_ERR_UNAUTHORIZED');
    expect(refusal).not.toContain(token);
    // Another source's token is no good either: each source has its own.
    expect((await post(basic(TOKENS.threecx))).status).toBe(401);
    // The refusal kept for Setup names neither the token nor the password tried.
    await vi.waitFor(
      async () =>
        expect((await ctx.relay.store.refusals()).map((r) => r.source)).toContain(
          '3cx-crm-template',
        ),
      { timeout: 5000 },
    );
    const kept = JSON.stringify(await ctx.relay.store.refusals());
    expect(kept).not.toContain(token);
  });

  it('maps form-encoded, text/plain, query-only, and JSON with a wrong or missing content type', async () => {
    const form =
      'SourceNumber=9958123456&DestinationNumber=01204567890&DialWhomNumber=9289012345&CallDuration=12&Status=BUSY&StartTime=2023-01-02+18%3A00%3A00&EndTime=2023-01-02+18%3A00%3A12&CallSid=1672662222.9601111&Direction=IVR';
    const f = await json(
      await hook(`/hooks/callerdesk/${TOKENS.callerdesk}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form,
      }),
    );
    expect(f).toMatchObject({
      status: 'mapped',
      rule: 'report',
      events: [{ type: 'report', callId: '1672662222.9601111' }],
    });

    const t = await json(
      await hook(`/hooks/3cx/${TOKENS.threecx}`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: 'https://pbx:5001/webapi/recording/230102104542_15-1-1.mp3',
      }),
    );
    expect(t).toMatchObject({
      status: 'mapped',
      rule: 'recording-url',
      events: [{ type: 'recording', callId: '230102104542_15' }],
    });
    const quoted = await json(
      await hook(`/hooks/3cx/${TOKENS.threecx}`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: '"https://pbx:5001/webapi/recording/230102104542_15-1-1.mp3"',
      }),
    );
    expect(quoted).toMatchObject({ status: 'mapped', rule: 'recording-url' });

    const q = await json(
      await hook(
        `/hooks/3cx/${TOKENS.threecx}?event=ringing&callerid=420774852629&user=800&usertype=other&did=DID-420222000320&id=230102104542_15-0`,
      ),
    );
    expect(q).toMatchObject({ status: 'mapped', rule: 'ringing' });

    const wrongType = await json(
      await hook(`/hooks/3cx/${TOKENS.threecx}`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: V2_RINGING,
      }),
    );
    expect(wrongType).toMatchObject({ status: 'mapped', rule: 'ringing' });
    const formType = await json(
      await hook(`/hooks/3cx/${TOKENS.threecx}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: V2_RINGING,
      }),
    );
    expect(formType).toMatchObject({ status: 'mapped', rule: 'ringing' });
    const noType = await hook(`/hooks/3cx/${TOKENS.threecx}`, {
      method: 'POST',
      body: new TextEncoder().encode(V2_RINGING),
    });
    expect((await ctx.relay.store.getInbox((await json(noType)).id))!.contentType).toBeNull();
  });

  it('stores what it cannot map, says why, and lists it', async () => {
    const cases: [RequestInit, string][] = [
      [
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"Event":"hold","Id":"1_2-0"}',
        },
        'RELAY_ERR_UNKNOWN_EVENT',
      ],
      [
        { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"Event":' },
        'RELAY_ERR_UNPARSEABLE_BODY',
      ],
      [
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"Event":"ringing","User":"800"}',
        },
        'RELAY_ERR_MISSING_CALL_ID',
      ],
    ];
    for (const [init, code] of cases) {
      const res = await hook(`/hooks/3cx/${TOKENS.threecx}`, init);
      expect(res.status).toBe(200);
      const body = await json(res);
      expect(body).toMatchObject({ ok: true, status: 'unmapped', reason: { code } });
      expect((await storedBody(body.id)).toString()).toBe(init.body);
    }
    const list = await json(await hook('/api/inbox?state=unmapped', { headers: admin }));
    expect(list.requests.map((r: { reason: { code: string } }) => r.reason.code)).toEqual(
      expect.arrayContaining(cases.map((c) => c[1])),
    );
  });

  it('stores a request with a malformed query string rather than failing', async () => {
    const res = await hook(`/hooks/3cx/${TOKENS.threecx}?event=ringing&bad=%E0%A4%A&id=1_2-0`);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect((await ctx.relay.store.getInbox(body.id))!.query).toBe(
      'event=ringing&bad=%E0%A4%A&id=1_2-0',
    );
  });

  it('keeps bytes that are not UTF-8 exactly', async () => {
    const bytes = Buffer.from([0x7b, 0xff, 0xfe, 0x00, 0x41]);
    const body = await json(
      await hook(`/hooks/3cx/${TOKENS.threecx}`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: bytes,
      }),
    );
    expect((await storedBody(body.id)).equals(bytes)).toBe(true);
    const detail = await json(await hook(`/api/inbox/${body.id}`, { headers: admin }));
    expect(Buffer.from(detail.bodyBase64, 'base64').equals(bytes)).toBe(true);
  });

  it('answers errors as JSON from the catalogue', async () => {
    const check = async (res: Response, status: number, code: string): Promise<void> => {
      expect(res.status).toBe(status);
      const body = await json(res);
      expect(Object.keys(body)).toEqual(['error']);
      expect(body.error.code).toBe(code);
      expect(typeof body.error.message).toBe('string');
    };
    await check(
      await hook('/hooks/3cx', { method: 'POST', body: V2_RINGING }),
      401,
      'RELAY_ERR_UNAUTHORIZED',
    );
    await check(
      await hook('/hooks/3cx/wrong-token', { method: 'POST', body: V2_RINGING }),
      401,
      'RELAY_ERR_UNAUTHORIZED',
    );
    await check(
      await hook(`/hooks/3cx?token=${TOKENS.callerdesk}`, { method: 'POST', body: V2_RINGING }),
      401,
      'RELAY_ERR_UNAUTHORIZED',
    );
    await check(
      await hook(`/hooks/nope/${TOKENS.threecx}`, { method: 'POST', body: V2_RINGING }),
      404,
      'RELAY_ERR_UNKNOWN_SOURCE',
    );
    await check(await hook('/nowhere'), 404, 'RELAY_ERR_NOT_FOUND');
    const put = await hook(`/hooks/3cx/${TOKENS.threecx}`, { method: 'PUT', body: 'x' });
    expect(put.headers.get('allow')).toBe('GET, POST');
    await check(put, 405, 'RELAY_ERR_METHOD_NOT_ALLOWED');
    await check(await hook('/api/calls'), 401, 'RELAY_ERR_UNAUTHORIZED');
    await check(await hook('/api/calls?limit=0', { headers: admin }), 400, 'RELAY_ERR_BAD_REQUEST');
    await check(
      await hook('/api/calls?since=yesterday', { headers: admin }),
      400,
      'RELAY_ERR_BAD_REQUEST',
    );
    await check(await hook('/api/calls/nope', { headers: admin }), 404, 'RELAY_ERR_CALL_NOT_FOUND');
    await check(
      await hook('/api/inbox/999999', { headers: admin }),
      404,
      'RELAY_ERR_INBOX_NOT_FOUND',
    );
    await check(
      await hook('/api/inbox?state=odd', { headers: admin }),
      400,
      'RELAY_ERR_BAD_REQUEST',
    );
  });

  it('refuses bodies over the limit, declared or streamed, with 413', async () => {
    const big = 'x'.repeat(5000);
    const declared = await hook(`/hooks/3cx/${TOKENS.threecx}`, { method: 'POST', body: big });
    expect(declared.status).toBe(413);
    expect((await json(declared)).error.code).toBe('RELAY_ERR_BODY_TOO_LARGE');
    const stream = new ReadableStream({
      start(c) {
        for (let i = 0; i < 5; i++) c.enqueue(new TextEncoder().encode('y'.repeat(1000)));
        c.close();
      },
    });
    const chunked = await hook(`/hooks/3cx/${TOKENS.threecx}`, {
      method: 'POST',
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    const atLimit = await hook(`/hooks/3cx/${TOKENS.threecx}`, {
      method: 'POST',
      body: 'z'.repeat(4096),
    });
    expect(atLimit.status).toBe(200);
  });

  it('reads calls back, with since, limit and source', async () => {
    await ctx.relay.pipeline.drain();
    const all = await json(await hook('/api/calls?limit=500', { headers: admin }));
    expect(all.calls.length).toBeGreaterThan(2);
    expect(all.calls[0]).toHaveProperty('updatedAt');
    const one = await json(await hook('/api/calls?limit=1', { headers: admin }));
    expect(one.calls).toHaveLength(1);
    const future = await json(
      await hook(`/api/calls?since=${encodeURIComponent('2999-01-01T00:00:00Z')}`, {
        headers: admin,
      }),
    );
    expect(future.calls).toEqual([]);
    const cd = await json(await hook('/api/calls?source=callerdesk', { headers: admin }));
    expect(cd.calls.map((c: { source: string }) => c.source)).toEqual(['callerdesk']);
    const call = await json(await hook('/api/calls/230307114903_10', { headers: admin }));
    expect(call).toMatchObject({
      callId: '230307114903_10',
      source: '3cx',
      status: 'ringing',
      rang: ['800'],
      revision: 1,
      truncated: false,
      droppedEvents: 0,
    });
  });

  it('says 409 when two sources have the same call id, and ?source= picks one', async () => {
    const report = {
      CallSid: '230307114903_10',
      Status: 'ANSWER',
      CallDuration: '5',
      SourceNumber: '9958123456',
      Direction: 'IVR',
      StartTime: '2023-01-02 14:32:40',
      EndTime: '2023-01-02 14:32:45',
    };
    await hook(`/hooks/callerdesk/${TOKENS.callerdesk}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(report),
    });
    await ctx.relay.pipeline.drain();
    const res = await hook('/api/calls/230307114903_10', { headers: admin });
    expect(res.status).toBe(409);
    expect((await json(res)).error.code).toBe('RELAY_ERR_AMBIGUOUS_CALL');
    expect(
      (await json(await hook('/api/calls/230307114903_10?source=callerdesk', { headers: admin })))
        .provider,
    ).toBe('callerdesk');
  });
});

describe('shutting down', () => {
  it('answers new webhooks 503 with Retry-After, and /readyz too, while draining', async () => {
    const store = new SqliteStore(':memory:');
    const cfg = loadConfig(writeRelayYaml(tempDir()), {});
    const app = createApp({
      pipeline: new Pipeline(store, cfg.sources),
      bodyLimit: 1024,
      adminToken: undefined,
      isDraining: () => true,
    });
    const res = await app.request(`/hooks/3cx/${TOKENS.threecx}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: V2_RINGING,
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toEqual({
      code: 'RELAY_ERR_STORE_UNAVAILABLE',
      message: 'shutting down; retry',
    });
    expect((await app.request('/readyz')).status).toBe(503);
    expect(await store.countInbox()).toMatchObject({ pending: 0, applied: 0 });
    await store.close();
  });
});

describe('admin API switched off', () => {
  it('answers 403 when relay.yaml has no admin.token', async () => {
    const store = new SqliteStore(':memory:');
    const app = createApp({
      pipeline: new Pipeline(store, []),
      bodyLimit: 1024,
      adminToken: undefined,
    });
    const res = await app.request('/api/calls', { headers: admin });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
      'RELAY_ERR_ADMIN_DISABLED',
    );
    await store.close();
  });
});

describe('durability', () => {
  it('answers 503 (never 2xx) while the store cannot commit, and recovers by itself', async () => {
    const ctx = await launch({ busyTimeoutMs: 100 });
    const locker = new Database(join(ctx.dir, 'relay.db'));
    locker.exec('BEGIN EXCLUSIVE');
    const send = (): Promise<Response> =>
      fetch(`${ctx.base}/hooks/3cx/${TOKENS.threecx}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: V2_RINGING,
      });
    try {
      const res = await send();
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect((await json(res)).error.code).toBe('RELAY_ERR_STORE_UNAVAILABLE');
      const ready = await fetch(`${ctx.base}/readyz`);
      expect(ready.status).toBe(503);
    } finally {
      locker.exec('ROLLBACK');
      locker.close();
    }
    const ok = await send();
    expect(ok.status).toBe(200);
    expect(
      (await ctx.relay.store.countInbox()).pending + (await ctx.relay.store.countInbox()).applied,
    ).toBe(1);
    await ctx.relay.close();
  });
});

describe('every golden flow over HTTP', () => {
  const cases = goldenCases();
  it.each(cases.map((c) => [`${c.adapter}/${c.flow.name}`, c.adapter, c.flow] as const))(
    '%s',
    async (_n, adapter, flow: Flow) => {
      const ctx = await launch({ sources: { [adapter]: flow.source } });
      try {
        for (const r of flow.requests.filter((x) => x.direction !== 'to-pbx')) {
          const res = (await sendFlowRequest(ctx.relay.port, adapter, r))!;
          expect(res.status).toBe(200);
          expect((await json(res)).status).toBe('mapped');
        }
        await ctx.relay.pipeline.drain();
        const calls = (await ctx.relay.store.listCalls({ limit: 100 })).map((c) => c.record);
        // startedAt of 3CX calls depends on the source's time zone (Europe/Prague here), not
        // checked by these flows.
        expect(compareCalls(flow.expect!.calls, calls)).toEqual([]);
      } finally {
        await ctx.relay.close();
      }
    },
  );
});
