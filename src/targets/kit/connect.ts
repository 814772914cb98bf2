// The HTTP side of a CRM target, set up as every CRM needs it: its credentials with JSON headers,
// a limiter for its request window and one for its (tighter) search window, its own error text in
// messages, and its rate-limit headers watched, so that the relay holds off before the CRM
// answers 429.

import type { CrmAuth } from './auth.js';
import { CrmClient, type HttpAnswer, type Review } from './client.js';
import { WindowLimiter } from './limiter.js';
import type { RetryPolicy } from './policy.js';
import type { Sandbox } from './sandbox.js';

interface Rate {
  requests: number;
  perSeconds: number;
}

/** The fields every CRM target's config has (spec.ts). */
export interface CrmEndpoint {
  baseUrl: string;
  rateLimit: Rate;
  searchRateLimit: Rate;
  /** A second window over every request (an account's hourly allowance): full, nobody waits. */
  budget?: Rate | undefined;
  timeoutSec: number;
  /** Build the requests and let `CrmWays.sandbox` answer them: nothing leaves the relay. */
  dryRun: boolean;
}

export interface CrmWays {
  /** The CRM's name in messages: "HubSpot". */
  crm: string;
  /** The credential header, or a credential asked before every request (kit/auth.ts). */
  auth: Record<string, string> | CrmAuth;
  /** A second opinion on every answer (CrmClientOptions.review). */
  review?: (a: HttpAnswer) => Promise<Review | undefined>;
  policy: RetryPolicy;
  /** The fields of an error body that carry the CRM's message (joined by ": "). */
  errorFields: string[];
  /** The header that says how many requests the window has left; at "0", pause this long. */
  windowLeft: { header: string; pauseMs(headers: Record<string, string>): number };
  /** How an empty account of this CRM answers (dry runs). */
  sandbox: () => Sandbox;
}

export interface CrmConnection {
  client: CrmClient;
  /** The CRM's request window, which the client paces every request by (and batches wait for). */
  limiter: WindowLimiter;
  /** For CRM searches: `limiter` of a CrmClient call. */
  searchLimiter: WindowLimiter;
}

export function connectCrm(cfg: CrmEndpoint, ways: CrmWays): CrmConnection {
  const limiter = new WindowLimiter(cfg.rateLimit.requests, cfg.rateLimit.perSeconds * 1000);
  const searchLimiter = new WindowLimiter(
    cfg.searchRateLimit.requests,
    cfg.searchRateLimit.perSeconds * 1000,
  );
  const budget = cfg.budget
    ? new WindowLimiter(cfg.budget.requests, cfg.budget.perSeconds * 1000)
    : undefined;
  const client = new CrmClient({
    crm: ways.crm,
    baseUrl: cfg.baseUrl,
    headers: {
      ...(isCrmAuth(ways.auth) ? {} : ways.auth),
      accept: 'application/json',
      'user-agent': 'callrelay',
    },
    ...(isCrmAuth(ways.auth) ? { auth: ways.auth } : {}),
    ...(ways.review ? { review: ways.review } : {}),
    limiter,
    ...(budget ? { budget } : {}),
    timeoutMs: cfg.timeoutSec * 1000,
    policy: ways.policy,
    ...(cfg.dryRun ? { sandbox: ways.sandbox() } : {}),
    errorText: (body) => {
      if (body && typeof body === 'object') {
        const b = body as Record<string, unknown>;
        return (
          ways.errorFields
            .map((f) => b[f])
            .filter(Boolean)
            .join(': ') || undefined
        );
      }
      return typeof body === 'string' ? body.slice(0, 300) : undefined;
    },
    onAnswer: (a) => {
      if (a.headers[ways.windowLeft.header] === '0')
        limiter.pause(ways.windowLeft.pauseMs(a.headers));
    },
  });
  return { client, limiter, searchLimiter };
}

function isCrmAuth(a: Record<string, string> | CrmAuth): a is CrmAuth {
  return typeof (a as CrmAuth).headers === 'function';
}
