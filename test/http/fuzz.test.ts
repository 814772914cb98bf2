// The webhook endpoint under random input (fast-check): bodies of any bytes and size, any content
// type, query strings, methods, tokens in every place or none, and raw bytes that are not HTTP at
// all. Whatever comes, the relay answers below 500, stays up, stores exactly the requests it
// accepted, and stores each byte for byte.

import { connect } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { ADAPTER_NAMES, sourceToken, tempDir, writeRelayYaml } from '../support.js';

const LIMIT = 64 * 1024;

const headerText = fc.stringMatching(/^[\x20-\x7e]{0,60}$/).map((s) => s.trim());
// As a URL carries it (fetch would percent-encode a bare ' on the wire).
const encode = (s: string): string =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
const queryPart = fc
  .tuple(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ maxLength: 24 }))
  .filter(([k]) => k !== 'token')
  .map(([k, v]) => `${encode(k)}=${encode(v)}`);

const body = fc.oneof(
  fc.json().map((s) => Buffer.from(s)),
  fc.string({ unit: 'binary', maxLength: 2000 }).map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 4000 }).map((a) => Buffer.from(a)),
  fc
    .dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 30 }))
    .map((d) => Buffer.from(new URLSearchParams(d).toString())),
  // At, around and well over the body limit.
  fc.integer({ min: LIMIT - 2, max: LIMIT + 2 }).map((n) => Buffer.alloc(n, 0x61)),
  fc.integer({ min: LIMIT, max: LIMIT * 4 }).map((n) => Buffer.alloc(n, 0x62)),
);

const request = fc.record({
  source: fc.constantFrom(...ADAPTER_NAMES, 'nosuch'),
  tokenIn: fc.constantFrom('path', 'bearer', 'query', 'wrong', 'none'),
  method: fc.constantFrom('POST', 'POST', 'POST', 'GET', 'PUT', 'DELETE', 'PATCH'),
  contentType: fc.option(
    fc.oneof(
      fc.constantFrom(
        'application/json',
        'application/x-www-form-urlencoded',
        'text/plain; charset=utf-8',
        'multipart/form-data; boundary=x',
        'application/json; charset=latin1',
      ),
      headerText,
    ),
    { nil: undefined },
  ),
  query: fc.array(queryPart, { maxLength: 4 }),
  body,
});

describe('the webhook endpoint under random input', () => {
  let relay: Relay;
  beforeAll(async () => {
    relay = await startRelay(loadConfig(writeRelayYaml(tempDir(), { bodyLimit: `${LIMIT}B` }), {}));
  });
  afterAll(() => relay.close());

  it('never answers 5xx, and stores every accepted request byte for byte', async () => {
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const token = r.source === 'nosuch' ? 'x'.repeat(16) : sourceToken(r.source);
        const query = [...r.query];
        if (r.tokenIn === 'query') query.splice(query.length >> 1, 0, `token=${token}`);
        const path = r.tokenIn === 'path' ? `/hooks/${r.source}/${token}` : `/hooks/${r.source}`;
        const headers: Record<string, string> = {};
        if (r.contentType !== undefined) headers['content-type'] = r.contentType;
        if (r.tokenIn === 'bearer') headers.authorization = `Bearer ${token}`;
        if (r.tokenIn === 'wrong') headers.authorization = `Bearer ${token}x`;
        const sent = r.method === 'GET' ? Buffer.alloc(0) : r.body;
        const res = await fetch(
          `http://127.0.0.1:${relay.port}${path}${query.length ? `?${query.join('&')}` : ''}`,
          { method: r.method, headers, body: r.method === 'GET' ? undefined : sent },
        );
        const answer = await res.text();
        expect(res.status, answer).toBeLessThan(500);

        const acceptable =
          r.source !== 'nosuch' &&
          ['path', 'bearer', 'query'].includes(r.tokenIn) &&
          ['GET', 'POST'].includes(r.method) &&
          sent.length <= LIMIT;
        expect(res.ok, `${res.status} ${answer}`).toBe(acceptable);
        if (!res.ok) return;
        accepted++;
        const { id } = JSON.parse(answer) as { id: number };
        const stored = await relay.store.getInbox(id);
        expect(stored?.body.equals(sent)).toBe(true);
        expect(stored?.method).toBe(r.method);
        expect(stored?.source).toBe(r.source);
        expect(stored?.query).toBe(r.query.join('&'));
        expect(stored?.contentType ?? undefined).toBe(r.contentType);
      }),
      { numRuns: 500 },
    );
    // Nothing refused was stored.
    const counts = await relay.store.countInbox();
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(accepted);
    expect(accepted).toBeGreaterThan(50);
  }, 120_000);

  it('stays up under bytes that are not HTTP, or are HTTP cut and mangled', async () => {
    const prefix = `POST /hooks/3cx/${sourceToken('3cx')} HTTP/1.1\r\nHost: x\r\n`;
    const raw = fc.oneof(
      fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
      fc
        .tuple(fc.string({ unit: 'binary', maxLength: 200 }), fc.uint8Array({ maxLength: 300 }))
        .map(([head, rest]) => Buffer.concat([Buffer.from(prefix + head), Buffer.from(rest)])),
      fc
        .tuple(fc.integer({ min: -5, max: 5 }), fc.string({ maxLength: 100 }))
        .map(([delta, text]) =>
          Buffer.from(`${prefix}Content-Length: ${Buffer.byteLength(text) + delta}\r\n\r\n${text}`),
        ),
    );
    await fc.assert(
      fc.asyncProperty(raw, async (bytes) => {
        const answer = await new Promise<string>((resolve) => {
          let got = '';
          const s = connect(relay.port, '127.0.0.1', () => s.end(bytes));
          s.setTimeout(300, () => s.destroy());
          s.on('data', (d: Buffer) => (got += d.toString('latin1')));
          s.on('error', () => {});
          s.on('close', () => resolve(got));
        });
        const status = /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1];
        if (status) expect(Number(status), answer).toBeLessThan(500);
      }),
      { numRuns: 300 },
    );
    expect((await fetch(`http://127.0.0.1:${relay.port}/healthz`)).status).toBe(200);
  }, 120_000);
});
