// Why a delivery did not succeed, in a form the engine can act on: retry (when), or dead-letter;
// and what a network error means for whoever reads it.

/** What a network error code means, and what to look at, for `crm`'s host. */
export function networkHint(code: string, crm: string): string | undefined {
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return `the relay cannot resolve ${crm}'s host; check DNS or the proxy`;
  if (code === 'ECONNREFUSED') return `nothing accepts connections there; check the URL and port`;
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT')
    return `no answer to the connection; check the firewall or the outbound proxy`;
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH')
    return `no route to ${crm}; check the network`;
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return 'the connection was cut';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code))
    return `${crm}'s TLS certificate is not trusted here; a proxy that inspects TLS needs its CA in NODE_EXTRA_CA_CERTS`;
  return undefined;
}

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

/**
 * The CRM refused the contact id the request carried (the contact was merged or deleted since it
 * was looked up): the next attempt looks the number up again.
 */
export class StaleContactError extends DeliveryError {}

/**
 * A failure of the OAuth token endpoint, not of the CRM's API: its status (a 404 token URL) says
 * nothing about the record a lookup asked for, so it never reads as "not found".
 */
export class TokenEndpointError extends DeliveryError {
  /** The endpoint refused the grant (invalid_grant): another instance may hold a newer one. */
  readonly refusedGrant: boolean;

  constructor(
    message: string,
    opts: ConstructorParameters<typeof DeliveryError>[1] & { refusedGrant?: boolean },
  ) {
    super(message, opts);
    this.name = 'TokenEndpointError';
    this.refusedGrant = opts.refusedGrant ?? false;
  }
}

/**
 * The target's request budget (a REST recipe's `budget:`) has no slot free in time: nothing was
 * sent. A delivery goes back to the store, due then; a phone system's lookup answers nobody.
 */
export class BudgetSpent extends DeliveryError {}
