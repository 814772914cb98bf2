// Delivery outcomes as data: which HTTP answers mean done, retry (and when), or dead letter.
// Targets start from DEFAULT_POLICY and may override single statuses (HubSpot's 423 and 477).

export type Verdict = { kind: 'ok' } | { kind: 'retry'; afterMs?: number } | { kind: 'dead' };

export interface RetryPolicy {
  /** Per-status overrides; anything not listed follows the default rules. */
  statuses?: Record<number, 'ok' | 'retry' | 'dead'>;
  /** Extra pause a target reads from its own headers or body (rate-limit windows). */
  pause?: (status: number, headers: Record<string, string>, body: unknown) => number | undefined;
}

const RETRY_STATUSES = new Set([408, 425, 429]);

export function classify(
  status: number,
  headers: Record<string, string>,
  body: unknown,
  policy: RetryPolicy = {},
): Verdict {
  const o = policy.statuses?.[status];
  const kind =
    o ??
    (status >= 200 && status < 300
      ? 'ok'
      : RETRY_STATUSES.has(status) || status >= 500
        ? 'retry'
        : 'dead');
  if (kind !== 'retry') return { kind };
  const after = retryAfterMs(headers['retry-after']) ?? policy.pause?.(status, headers, body);
  return after === undefined ? { kind: 'retry' } : { kind: 'retry', afterMs: after };
}

/** Retry-After as seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(v: string | undefined, now = Date.now()): number | undefined {
  if (!v) return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(v)) return Math.round(Number(v) * 1000);
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}
