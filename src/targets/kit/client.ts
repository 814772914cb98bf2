// The HTTP client every target uses (CRMs, and the generic HTTP target's receiver): paced by the
// target's limiter, timeouts, the CRM's answer classified by policy (ok / retry when / dead), a few
// quick retries (p-retry) where repeating is safe, and errors that say what was being done and
// what the CRM said, never the credentials.

import { Readable } from 'node:stream';
import pRetry, { AbortError } from 'p-retry';
import { Agent, request, type Dispatcher } from 'undici';
import type { CrmAuth } from './auth.js';
import {
  BudgetSpent,
  DeliveryError,
  StaleContactError,
  TokenEndpointError,
  networkHint,
} from './errors.js';
import { type Paced, type Release, type WindowLimiter } from './limiter.js';
import { classify, type RetryPolicy } from './policy.js';
import { describeBody, type Sandbox } from './sandbox.js';
import { recordRequest, requestIdOf } from './trace.js';

export interface HttpCall {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  /** Path (and query) below the target's base URL, or an absolute URL. */
  path: string;
  headers?: Record<string, string>;
  json?: unknown;
  body?: string | Buffer;
  /** A body made afresh for every try (uploads: a retry fetches the recording again). */
  stream?: () => Promise<AsyncIterable<Uint8Array>>;
  /** Safe to send twice: reads, PATCHes of the same values, webhooks carrying an id. */
  idempotent: boolean;
  /** Which step of a REST recipe this is ("create"), for its sandbox (dry runs). */
  step?: string;
  /** What this request does, for messages: "creating the call engagement". */
  what: string;
  /** A different limiter than the target's own (e.g. HubSpot search, 5/s). */
  limiter?: WindowLimiter;
  /**
   * How long this request may wait for the target's budget (CrmClientOptions.budget), default
   * BUDGET_WAIT_MS: 0 for a phone system's lookup, which takes a slot only if one is free now and
   * nobody is queued for it (else it answers nobody rather than wait).
   */
  budgetWaitMs?: number;
  /**
   * The caller took this request's slot from the limiter already (kit/batcher.ts gathers a batch
   * while it waits for one): the first try goes at once, a quick retry waits its turn again.
   */
  paced?: Paced;
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

export interface CrmClientOptions {
  /** The CRM's name for messages: "HubSpot" (default: the receiver). */
  crm?: string;
  baseUrl: string;
  headers: Record<string, string>;
  /**
   * The credential, asked for its headers before every request (an OAuth token may be due for a
   * refresh); a 401 is reported to it, and if it says trying again may work, the request is sent
   * once more with fresh headers. Its baseUrl(), once known, takes `baseUrl`'s place.
   */
  auth?: CrmAuth;
  limiter: WindowLimiter;
  /**
   * A second window every request counts in (a REST recipe's `budget:`, an account's hourly
   * allowance). Full for longer than a request may wait, the request fails retryable after the
   * wait (BudgetSpent): a delivery goes back to the store, due when a slot frees.
   */
  budget?: WindowLimiter;
  policy?: RetryPolicy;
  timeoutMs?: number;
  /** The CRM's own error text from an error body. */
  errorText?: (body: unknown) => string | undefined;
  /** Watch every answer (rate-limit headers, e.g. remaining = 0 -> pause the limiter). */
  onAnswer?: (a: HttpAnswer) => void;
  /**
   * A second opinion on every answer, 2xx too (a REST recipe's `errors:`): a verdict that takes
   * the status's place (a 200 carrying an error), the CRM's words for messages, and the wait a
   * rate limit asked for. Undefined fields leave the status, errorText and Retry-After to decide.
   */
  review?: (a: HttpAnswer) => Promise<Review | undefined>;
  /** Quick retries inside one attempt (the persisted schedule takes over after). */
  quickRetries?: number;
  /**
   * A dry run: this answers every request instead of the network, and each request's body is
   * kept in the trace (kit/sandbox.ts).
   */
  sandbox?: Sandbox;
}

export interface Review {
  verdict?: 'ok' | 'retry' | 'dead';
  /**
   * The answer means the credential expired or is invalid, whatever its status: the credential is
   * asked to refresh, once (a 401 means this unless a verdict says otherwise).
   */
  unauthorized?: boolean;
  /** The CRM refused the contact id sent: a retry after a new lookup (StaleContactError). */
  relookup?: boolean;
  message?: string;
  afterMs?: number;
}

const MAX_ERROR_BODY = 64 * 1024;
/**
 * The longest a delivery's request waits for the budget. A delivery sends several requests under
 * one lease (5 minutes, never renewed): waiting long for each could outlive it, so a spent budget
 * sends the delivery back to the store, due when a slot frees, instead.
 */
export const BUDGET_WAIT_MS = 5_000;
// Errors raised before the request could have reached the server: always safe to retry.
const NOT_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/** A refused credential that may work anew: the request goes once more with fresh headers. */
class Reauth extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly requestId: string | null,
  ) {
    super(message);
  }
}

function defaultErrorText(body: unknown): string | undefined {
  if (typeof body === 'string') return body.trim().slice(0, 300) || undefined;
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    const parts = [b.message, b.error, b.error_info].filter((x) => typeof x === 'string' && x);
    return parts.length ? parts.join(': ') : JSON.stringify(body).slice(0, 300);
  }
  return undefined;
}

export class CrmClient {
  private readonly dispatcher: Dispatcher;
  private readonly timeoutMs: number;

  constructor(private readonly o: CrmClientOptions) {
    this.timeoutMs = o.timeoutMs ?? 15_000;
    this.dispatcher = new Agent({ connect: { timeout: this.timeoutMs }, keepAliveTimeout: 30_000 });
  }

  async call(c: HttpCall): Promise<HttpAnswer> {
    let paced = c.paced;
    return pRetry(
      () => {
        const slot = paced;
        paced = undefined;
        return this.once(c, slot);
      },
      {
        retries: this.o.quickRetries ?? 2,
        minTimeout: 200,
        maxTimeout: 2000,
        randomize: true,
        // Long pauses and maybe-processed requests go back to the persisted schedule instead.
        // A create answered 5xx may have been made: create-once looks for it first, so it is
        // never simply sent again here (a batch would make up to 100 duplicates). Nor one answered
        // 2xx that a review turned into an error: the CRM may have made it.
        shouldRetry: ({ error }) =>
          error instanceof DeliveryError &&
          error.retryable &&
          !error.ambiguous &&
          (c.idempotent ||
            error.status === undefined ||
            (error.status >= 300 && error.status < 500)) &&
          (error.retryAfterMs ?? 0) <= 2000,
      },
    );
  }

  private async once(c: HttpCall, paced?: Paced, reauthed = false): Promise<HttpAnswer> {
    const queued = paced?.since ?? performance.now();
    // The slot is handed back with the answer (kit/limiter.ts): until then the request counts as
    // just sent, wherever it is on its way.
    let spent: Release | undefined;
    let release: Release;
    try {
      spent = await this.budgetSlot(c);
      const own = paced ? paced.answered : await (c.limiter ?? this.o.limiter).acquire();
      release = () => {
        own();
        spent?.();
      };
    } catch (err) {
      // Never sent: it does not count, in the budget nor in a pacing slot taken for it already.
      spent?.(true);
      paced?.answered(true);
      throw err;
    }
    // The credential first: an OAuth token answer may name the API's base URL (Salesforce).
    let credential: Record<string, string> | undefined;
    let refused: unknown;
    try {
      credential = this.o.sandbox ? undefined : await this.o.auth?.headers();
    } catch (err) {
      refused = err;
    }
    const base = this.o.auth?.baseUrl?.() ?? this.o.baseUrl;
    const url = /^https?:\/\//.test(c.path) ? c.path : `${base.replace(/\/+$/, '')}${c.path}`;
    const sent = performance.now();
    const trace = {
      operation: c.what,
      method: c.method,
      // A recipe's dry run keeps the query (its cases check a search's terms): the sandbox sends
      // nothing, and a recipe's query expressions never see the credentials.
      path: this.o.sandbox && c.step !== undefined ? pathAndQuery(url) : pathOf(url),
      startedAt: new Date().toISOString(),
      waitedMs: Math.round(sent - queued),
      ...(this.o.sandbox ? { sent: describeBody(c) } : {}),
    };
    try {
      if (refused !== undefined) throw refused;
      const answer = await this.exchange(c, url, credential, !reauthed).finally(release);
      recordRequest({
        ...trace,
        durationMs: Math.round(performance.now() - sent),
        status: answer.status,
        requestId: requestIdOf(answer.headers),
        error: null,
      });
      return answer;
    } catch (err) {
      release();
      if (err instanceof Reauth) {
        // The refused request shows in the attempt; the next one waits for a slot of its own.
        recordRequest({
          ...trace,
          durationMs: Math.round(performance.now() - sent),
          status: err.status,
          requestId: err.requestId,
          error: err.message,
        });
        return this.once(c, undefined, true);
      }
      const e = err instanceof AbortError ? err.originalError : (err as Error);
      recordRequest({
        ...trace,
        durationMs: Math.round(performance.now() - sent),
        status: e instanceof DeliveryError ? (e.status ?? null) : null,
        requestId: e instanceof DeliveryError ? e.requestId : null,
        error: e.message,
      });
      throw err;
    }
  }

  /** A slot of the budget, if the target has one; BudgetSpent when none frees in time. */
  private async budgetSlot(c: HttpCall): Promise<Release | undefined> {
    const budget = this.o.budget;
    if (!budget) return undefined;
    try {
      if (c.budgetWaitMs === 0) {
        const now = budget.tryAcquire();
        if (now) return now;
        throw new DeliveryError('the budget has no slot free now', { retryable: true });
      }
      return await budget.acquire(c.budgetWaitMs ?? BUDGET_WAIT_MS);
    } catch (err) {
      const e = err as DeliveryError;
      const after = e.retryAfterMs ?? budget.windowMs;
      throw new BudgetSpent(
        `${c.what}: the request budget (${budget.limit} per ${budget.windowMs / 1000} s) is spent; ` +
          `trying again in ${Math.ceil(after / 1000)} s`,
        { retryable: true, retryAfterMs: after },
      );
    }
  }

  /** One request and its classified answer. */
  private async exchange(
    c: HttpCall,
    url: string,
    credential: Record<string, string> | undefined,
    mayReauth: boolean,
  ): Promise<HttpAnswer> {
    if (this.o.sandbox) {
      const u = new URL(url);
      const said = await this.o.sandbox({
        method: c.method,
        path: u.pathname + u.search,
        json: c.json,
        ...(typeof c.body === 'string' ? { body: c.body } : {}),
        ...(c.step ? { step: c.step } : {}),
      });
      return this.classified(c, { headers: {}, ...said });
    }
    const answer = await this.send(c, url, credential);
    this.o.onAnswer?.(answer);
    const review = await this.o.review?.(answer);
    // A credential refused that may work anew (an OAuth token expired early): once more. A 401
    // means that unless the target's review says otherwise; its `unauthorized` on any status.
    const expired =
      review?.unauthorized === true || (answer.status === 401 && review?.verdict === undefined);
    if (mayReauth && expired && credential && (await this.o.auth!.rejected(credential)))
      throw new Reauth(
        `${c.what}: ${answer.status}: the credential was refused; asking for a fresh one`,
        answer.status,
        requestIdOf(answer.headers),
      );
    return this.classified(c, answer, { review });
  }

  /** One request on the wire, its answer unclassified. */
  private async send(
    c: HttpCall,
    url: string,
    credential: Record<string, string> | undefined,
  ): Promise<HttpAnswer> {
    const headers: Record<string, string> = { ...this.o.headers, ...credential, ...c.headers };
    let body: string | Buffer | Readable | undefined = c.body;
    if (c.stream) body = Readable.from(await c.stream());
    if (c.json !== undefined) {
      body = JSON.stringify(c.json);
      headers['content-type'] ??= 'application/json';
    }
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: c.method,
        headers,
        body,
        dispatcher: this.dispatcher,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (err) {
      // The body's own source failed (a recording found over its cap mid-stream): that is the
      // error, as its source classified it, and no sign that the CRM processed anything.
      if (err instanceof DeliveryError) throw err;
      const code = networkCode(err);
      const sent = !NOT_SENT.has(code);
      const hint = networkHint(code, this.o.crm ?? 'the receiver');
      const e = new DeliveryError(
        `${c.what}: ${code || (err as Error).message}${hint ? ` ${new URL(url).host}: ${hint}` : ''}${sent ? ' (the request may have been received)' : ''}`,
        {
          retryable: true,
          ambiguous: sent && !c.idempotent,
          cause: err,
        },
      );
      throw e.ambiguous ? new AbortError(e) : e;
    }
    return { status: res.statusCode, headers: flatHeaders(res.headers), body: await readBody(res) };
  }

  /** The CRM's answer (or the sandbox's), classified: returned if it worked, else thrown. */
  private async classified(
    c: HttpCall,
    answer: HttpAnswer,
    reviewed?: { review: Review | undefined },
  ): Promise<HttpAnswer> {
    if (!reviewed) this.o.onAnswer?.(answer);
    const review = reviewed ? reviewed.review : await this.o.review?.(answer);
    let verdict = classify(answer.status, answer.headers, answer.body, this.o.policy);
    // A retry the status did not call for waits as a 429 would (Retry-After, the policy's pause).
    if (review?.verdict === 'retry' && verdict.kind !== 'retry')
      verdict = classify(429, answer.headers, answer.body, this.o.policy);
    else if (review?.verdict && review.verdict !== 'retry') verdict = { kind: review.verdict };
    if (verdict.kind === 'retry' && review?.afterMs !== undefined)
      verdict = { kind: 'retry', afterMs: review.afterMs };
    if (verdict.kind === 'ok') return answer;
    const said = review?.message ?? (this.o.errorText ?? defaultErrorText)(answer.body) ?? '';
    const message = `${c.what}: ${answer.status}${said ? ` ${said}` : ''}`;
    const requestId = requestIdOf(answer.headers);
    // Not retried here: the same contact id would be refused again.
    if (review?.relookup)
      throw new AbortError(
        new StaleContactError(message, { retryable: true, status: answer.status, requestId }),
      );
    if (verdict.kind === 'dead')
      throw new AbortError(
        new DeliveryError(message, { retryable: false, status: answer.status, requestId }),
      );
    if (verdict.afterMs !== undefined) this.o.limiter.pause(verdict.afterMs);
    throw new DeliveryError(message, {
      retryable: true,
      status: answer.status,
      retryAfterMs: verdict.afterMs,
      requestId,
    });
  }

  /** Whether a GET finds what `path` names (a 404 says it does not). */
  async exists(path: string, what: string): Promise<boolean> {
    try {
      await this.call({ method: 'GET', path, idempotent: true, what });
      return true;
    } catch (err) {
      const e = err instanceof AbortError ? err.originalError : err;
      if (e instanceof DeliveryError && !(e instanceof TokenEndpointError) && e.status === 404)
        return false;
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

/** The error code of a failed request (undici wraps the socket's error in `cause`). */
export function networkCode(err: unknown): string {
  const e = err as { code?: string; cause?: { code?: string } };
  return (e.code === 'UND_ERR_CONNECT' || !e.code ? e.cause?.code : e.code) ?? e.code ?? '';
}

export function pathOf(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return url.split('?')[0]!;
  }
}

function pathAndQuery(url: string): string {
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return url;
  }
}

export function flatHeaders(
  h: Record<string, string | string[] | undefined>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h))
    if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

async function readBody(res: Dispatcher.ResponseData): Promise<unknown> {
  // An error body is kept for messages only, so it is cut short; a good answer is read whole (a
  // batch of 100 calls with their properties runs to a few hundred KiB, and a cut one is no JSON).
  const whole = await res.body.text();
  const ok = res.statusCode >= 200 && res.statusCode < 300;
  const text = ok ? whole : whole.slice(0, MAX_ERROR_BODY);
  if (!text) return undefined;
  if ((res.headers['content-type'] ?? '').toString().includes('json')) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}
