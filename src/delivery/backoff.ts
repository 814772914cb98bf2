// When to try a failed delivery again: exponential backoff with full jitter, never sooner than
// the CRM asked for (Retry-After, rate-limit windows).

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 1000, maxMs: 10 * 60_000 };

/** Exponential backoff with full jitter, never sooner than the CRM asked for. */
export function backoffMs(
  attempt: number,
  retryAfter: number | undefined,
  o: BackoffOptions = DEFAULT_BACKOFF,
  random = Math.random,
): number {
  const cap = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(attempt, 30));
  const jittered = Math.round(cap / 2 + random() * (cap / 2));
  return Math.max(jittered, retryAfter ?? 0);
}
