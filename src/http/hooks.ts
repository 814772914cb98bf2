// Webhook ingest on /hooks/<source>[/<token>]: the sender's address (allowIps), the source's token
// from the path, a Bearer header, the password of a Basic header (3CX's CRM template) or ?token=,
// its rate limit, the body and its signature (guard.ts; a signed endpoint check is answered),
// then the raw request (minus the token) into the pipeline. A refusal is logged (throttled) and
// kept as the source's newest (refusals.ts).

import type { Context, Hono } from 'hono';
import { RelayError } from '../domain/errors.js';
import type { RawRequest } from '../domain/request.js';
import type { Redactor } from '../lib/redact.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import { UNKNOWN_SOURCE } from '../store/types.js';
import type { Logger } from '../telemetry/log.js';
import type { RelayMetrics } from '../telemetry/metrics.js';
import { ThrottledLog } from '../telemetry/throttle.js';
import { basicPassword, bearer, loggablePath, peerAddress, tokenMatches } from './auth.js';
import { readBody } from './body.js';
import type { SourceGuards } from './guard.js';
import { RefusalRecorder } from './refusals.js';

export interface HookOptions {
  pipeline: Pipeline;
  bodyLimit: number;
  log: Logger;
  isDraining?: () => boolean;
  metrics?: RelayMetrics;
  /** allowIps, rate limits and signatures of the sources that have them. */
  guards?: SourceGuards;
  /** Keeps the newest refusal per source for Setup and `status` (default: one of its own). */
  refusals?: RefusalRecorder;
  redact?: Redactor;
}

/** The metrics label of a refused webhook, by the error that refused it. */
function refusal(err: unknown): string {
  const code = err instanceof RelayError ? err.code : '';
  if (code === 'RELAY_ERR_UNAUTHORIZED' || code === 'RELAY_ERR_BAD_SIGNATURE')
    return 'unauthorized';
  if (code === 'RELAY_ERR_FORBIDDEN_ADDRESS') return 'forbidden';
  if (code === 'RELAY_ERR_RATE_LIMITED') return 'limited';
  if (code === 'RELAY_ERR_STORE_UNAVAILABLE') return 'unavailable';
  return 'rejected';
}

/**
 * A refused webhook is logged (an admin whose PBX gets 401 must see why), but at most once a
 * minute per source and reason, with how many were like it, so that a flood cannot flood the log.
 */
class RefusalLog {
  private readonly throttled: ThrottledLog;
  constructor(log: Logger) {
    this.throttled = new ThrottledLog(log);
  }

  note(source: string, err: RelayError, path: string): void {
    this.throttled.write(
      'warn',
      `${source}\0${err.code}`,
      { source, code: err.code, status: err.status, path },
      `refused a webhook: ${err.message}`,
    );
  }
}

/** The few request headers worth keeping with a webhook (never Authorization). */
const KEPT_HEADERS = [
  'content-type',
  'content-length',
  'user-agent',
  'x-forwarded-for',
  'x-real-ip',
  'x-request-id',
];

function decodeQueryPart(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s; // a malformed %-sequence stays as sent
  }
}

/** The raw query string without any `token` parameter, otherwise byte for byte. */
export function queryWithoutToken(url: string): { query: string; token: string | undefined } {
  const q = url.includes('?') ? url.slice(url.indexOf('?') + 1).split('#')[0]! : '';
  let token: string | undefined;
  const kept = q
    .split('&')
    .filter((part) => {
      if (!part) return false;
      const eq = part.indexOf('=');
      const key = decodeQueryPart(eq < 0 ? part : part.slice(0, eq));
      if (key !== 'token') return true;
      token = decodeQueryPart(eq < 0 ? '' : part.slice(eq + 1));
      return false;
    })
    .join('&');
  return { query: kept, token };
}

export function mountHooks(app: Hono, opts: HookOptions): void {
  const { pipeline, bodyLimit, log } = opts;
  const refusals = new RefusalLog(log);
  const recorder =
    opts.refusals ?? new RefusalRecorder(pipeline.store, { log, redact: opts.redact });
  /** Logged (throttled) and kept as the source's newest refusal. */
  const refused = (c: Context, source: string, err: RelayError): void => {
    const path = loggablePath(c.req.path);
    refusals.note(source, err, path);
    recorder.note({
      source,
      status: err.status,
      code: err.code,
      reason: err.message,
      path,
      address: opts.guards ? opts.guards.sender(c) : (peerAddress(c) ?? ''),
    });
  };

  // Counted and timed per known source only: an unknown name in the URL is anybody's to choose,
  // and must not grow the label set.
  const measured = async (c: Context): Promise<Response> => {
    const t0 = performance.now();
    const name = c.req.param('source')!;
    const known = pipeline.sources.has(name);
    let result = 'rejected';
    try {
      return await hook(c, (status) => (result = status));
    } catch (err) {
      result = refusal(err);
      // Unknown source names are noted under one name: anybody can put any name in a URL.
      if (err instanceof RelayError) refused(c, known ? name : UNKNOWN_SOURCE, err);
      throw err;
    } finally {
      if (known && opts.metrics) {
        opts.metrics.ingestRequests.inc({ source: name, result });
        opts.metrics.ackSeconds.observe({ source: name }, (performance.now() - t0) / 1000);
      }
    }
  };

  const hook = async (c: Context, filed: (status: string) => void): Promise<Response> => {
    const name = c.req.param('source')!;
    const src = pipeline.sources.get(name);
    if (!src) throw new RelayError('RELAY_ERR_UNKNOWN_SOURCE', `no source "${name}" in relay.yaml`);
    opts.guards?.checkAddress(name, c);
    const { query, token: queryToken } = queryWithoutToken(c.req.url);
    const given = c.req.param('token') ?? bearer(c) ?? basicPassword(c) ?? queryToken;
    if (!tokenMatches(given, src.token)) {
      throw new RelayError(
        'RELAY_ERR_UNAUTHORIZED',
        given === undefined
          ? 'missing token: put it in the URL path, as Authorization: Bearer, as the password ' +
              'of Authorization: Basic, or as ?token='
          : 'wrong token',
      );
    }
    // A reachability check (Hono routes HEAD to GET handlers): the URL and token are right, and
    // nothing is stored.
    if (c.req.method === 'HEAD') {
      filed('checked');
      return c.body(null, 200);
    }
    if (opts.isDraining?.())
      throw new RelayError('RELAY_ERR_STORE_UNAVAILABLE', 'shutting down; retry', {
        headers: { 'retry-after': '1' },
      });
    opts.guards?.take(name);
    const body = c.req.method === 'GET' ? Buffer.alloc(0) : await readBody(c, bodyLimit);
    opts.guards?.checkSignature(name, c, body);
    // A signed endpoint check (Zoom's URL validation) gets its answer and is no call of anybody's.
    const answer = opts.guards?.challenge(name, body);
    if (answer) {
      filed('checked');
      log.info({ source: name, status: 200 }, 'answered the endpoint validation');
      return c.json(answer);
    }
    const headers: Record<string, string> = {};
    for (const h of KEPT_HEADERS) {
      const v = c.req.header(h);
      if (v !== undefined) headers[h] = v;
    }
    const req: RawRequest = {
      source: name,
      kind: 'webhook',
      receivedAt: new Date().toISOString(),
      method: c.req.method,
      query,
      contentType: c.req.header('content-type') ?? null,
      headers,
      body,
    };
    const { id, result } = await pipeline.ingest(req);
    filed(result.status);
    if (result.status === 'mapped') {
      log.info(
        {
          source: name,
          id,
          rule: result.rule,
          events: result.events.map((e) => e.type).join(','),
          call: result.events.find((e) => e.callId)?.callId ?? null,
          status: 200,
        },
        'webhook',
      );
      return c.json({
        ok: true,
        id,
        status: 'mapped',
        rule: result.rule,
        events: result.events.map((e) => ({ type: e.type, callId: e.callId ?? null })),
      });
    }
    if (result.status === 'ignored') {
      log.info({ source: name, id, rule: result.rule, status: 200 }, 'webhook ignored');
      return c.json({ ok: true, id, status: 'ignored', rule: result.rule });
    }
    log.warn(
      { id, source: name, code: result.code, reason: result.message },
      'stored an unmapped request',
    );
    return c.json({
      ok: true,
      id,
      status: 'unmapped',
      reason: { code: result.code, message: result.message },
    });
  };
  app.on(['GET', 'POST'], ['/hooks/:source', '/hooks/:source/:token'], measured);
  app.all('/hooks/*', (c) => {
    const source = c.req.path.split('/')[2] ?? '';
    const label = pipeline.sources.has(source) ? source : UNKNOWN_SOURCE;
    let err: RelayError;
    // The method is fine: the path is not (a trailing slash, an extra segment).
    if (['GET', 'POST', 'HEAD'].includes(c.req.method))
      err = new RelayError(
        'RELAY_ERR_NOT_FOUND',
        'a webhook URL is /hooks/<source>/<token> (or /hooks/<source> with the token as ' +
          'Authorization: Bearer or ?token=) with nothing after it: check for a trailing slash',
      );
    else {
      c.header('allow', 'GET, POST');
      err = new RelayError(
        'RELAY_ERR_METHOD_NOT_ALLOWED',
        `${c.req.method} is not accepted on webhooks; use GET or POST`,
      );
    }
    refused(c, label, err);
    throw err;
  });
}
