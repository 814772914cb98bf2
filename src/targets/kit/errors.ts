// Why a delivery did not succeed, in a form the engine can act on: retry (when), or dead-letter.

export class DeliveryError extends Error {
  /** Retry later (network trouble, 408/425/429/5xx) rather than dead-letter. */
  readonly retryable: boolean;
  /** The CRM asked for this pause (Retry-After, rate-limit headers). */
  readonly retryAfterMs: number | undefined;
  readonly status: number | undefined;
  /**
   * The request may have been processed (connection lost after sending): a create must not be
   * repeated blindly.
   */
  readonly ambiguous: boolean;
  /** The CRM's id of the request that failed, when it sent one (for its support). */
  readonly requestId: string | null;

  constructor(
    message: string,
    opts: {
      retryable: boolean;
      retryAfterMs?: number;
      status?: number;
      ambiguous?: boolean;
      requestId?: string | null;
      cause?: unknown;
    },
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'DeliveryError';
    this.retryable = opts.retryable;
    this.retryAfterMs = opts.retryAfterMs;
    this.status = opts.status;
    this.ambiguous = opts.ambiguous ?? false;
    this.requestId = opts.requestId ?? null;
  }
}
