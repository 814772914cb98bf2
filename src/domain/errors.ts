// The error catalogue: every error the relay answers with has a RELAY_ERR_* code, an HTTP status
// and a message here; http/ turns a RelayError into `{ error: { code, message } }` in one place.

export const ERRORS = {
  RELAY_ERR_UNAUTHORIZED: { status: 401, message: 'missing or wrong token' },
  RELAY_ERR_BAD_SIGNATURE: {
    status: 401,
    message: "the webhook's signature is missing, wrong or too old",
  },
  RELAY_ERR_FORBIDDEN_ADDRESS: {
    status: 403,
    message: "the sender's address is not in the source's allowIps",
  },
  RELAY_ERR_RATE_LIMITED: {
    status: 429,
    message: "over the source's rate limit; retry after the time in Retry-After",
  },
  RELAY_ERR_LINK_INVALID: {
    status: 403,
    message: 'the link is not one this relay signed (altered, or signed with a rotated secret)',
  },
  RELAY_ERR_LINK_EXPIRED: { status: 403, message: 'the link has expired' },
  RELAY_ERR_LINK_RATE_LIMITED: {
    status: 429,
    message: 'too many requests for this link; retry after the time in Retry-After',
  },
  RELAY_ERR_RECORDING_GONE: {
    status: 404,
    message: 'the recording is no longer there (the call, or the PBX, no longer has it)',
  },
  RELAY_ERR_RANGE_NOT_SATISFIABLE: {
    status: 416,
    message: 'the requested byte range is outside the recording',
  },
  RELAY_ERR_UNKNOWN_SOURCE: { status: 404, message: 'no source of that name in relay.yaml' },
  RELAY_ERR_NOT_FOUND: { status: 404, message: 'no such route' },
  RELAY_ERR_CALL_NOT_FOUND: { status: 404, message: 'no call with that id' },
  RELAY_ERR_INBOX_NOT_FOUND: { status: 404, message: 'no stored request with that id' },
  RELAY_ERR_DELIVERY_NOT_FOUND: { status: 404, message: 'no delivery with that id' },
  RELAY_ERR_AMBIGUOUS_CALL: {
    status: 409,
    message: 'several sources have a call with that id; add ?source=',
  },
  RELAY_ERR_METRICS_DISABLED: {
    status: 404,
    message: 'metrics are off (metrics.enabled: false in relay.yaml)',
  },
  RELAY_ERR_METHOD_NOT_ALLOWED: { status: 405, message: 'method not allowed here' },
  RELAY_ERR_BODY_TOO_LARGE: { status: 413, message: 'request body over the limit' },
  RELAY_ERR_BAD_REQUEST: { status: 400, message: 'bad request' },
  RELAY_ERR_BODY_INCOMPLETE: {
    status: 408,
    message:
      'the request body did not arrive in full: its sender stopped sending (server.bodyIdleSec) or went away',
  },
  RELAY_ERR_BUSY: {
    status: 503,
    message:
      'the relay is busy: its last connections are kept for webhooks (server.webhookReserve); retry after the time in Retry-After',
  },
  RELAY_ERR_TOO_MANY_STREAMS: {
    status: 429,
    message: 'this console session has as many live views open as it may; close a tab',
  },
  RELAY_ERR_ADMIN_DISABLED: {
    status: 403,
    message: 'the admin API is off: set admin.token in relay.yaml',
  },
  RELAY_ERR_CONSOLE_DISABLED: {
    status: 403,
    message: 'the console is off: set admin.token in relay.yaml',
  },
  RELAY_ERR_SIGN_IN_EXPIRED: {
    status: 400,
    message:
      'this sign-in did not come back as it left (too late, used already, or altered): start again',
  },
  RELAY_ERR_SIGN_IN_REFUSED: {
    status: 403,
    message: 'the company account cannot sign in here',
  },
  RELAY_ERR_AGENT_UNKNOWN: {
    status: 403,
    message: 'no agent in relay.yaml agents: has this email; the admin must add it there',
  },
  RELAY_ERR_SIGN_IN_PROVIDER: {
    status: 502,
    message:
      'the company sign-in provider could not be reached or gave an answer the relay cannot use',
  },
  RELAY_ERR_CSRF: {
    status: 403,
    message: 'refused: the form did not come from this console page (reload it and try again)',
  },
  RELAY_ERR_TOO_MANY_ATTEMPTS: {
    status: 429,
    message: 'too many wrong tokens from this address; retry after the time in Retry-After',
  },
  RELAY_ERR_RECORDING_UNAVAILABLE: {
    status: 502,
    message: 'the recording could not be fetched from the phone system',
  },
  RELAY_ERR_DIAL_REFUSED: {
    status: 403,
    message: 'click-to-call does not dial that number (dial.allowTypes, dial.allowCountries)',
  },
  RELAY_ERR_DIAL_RATE_LIMITED: {
    status: 429,
    message: 'too many calls from this link or extension; retry after the time in Retry-After',
  },
  RELAY_ERR_PBX_FAILED: {
    status: 502,
    message: 'the PBX did not place the call',
  },
  RELAY_ERR_DIAL_NOT_CONFIGURED: {
    status: 404,
    message: 'click-to-call is not set up: no source has pbx: in relay.yaml',
  },
  RELAY_ERR_CRM_NOT_CONFIGURED: {
    status: 404,
    message: "the source has no crm: in relay.yaml, so 3CX's CRM lookups are off for it",
  },
  RELAY_ERR_CRM_CREATE_OFF: {
    status: 403,
    message: 'this source does not create contacts (sources[].crm.createIn in relay.yaml)',
  },
  RELAY_ERR_CRM_FAILED: { status: 502, message: 'the CRM did not make the contact' },
  RELAY_ERR_STORE_UNAVAILABLE: {
    status: 503,
    message: 'the store could not commit the request; retry',
  },
  RELAY_ERR_INTERNAL: { status: 500, message: 'internal error' },
  // Not HTTP answers: reasons a stored request stays unmapped (the sender still gets 2xx).
  RELAY_ERR_UNPARSEABLE_BODY: { status: 200, message: 'the body could not be parsed' },
  RELAY_ERR_UNKNOWN_EVENT: { status: 200, message: 'no event rule of the adapter matched' },
  RELAY_ERR_MISSING_CALL_ID: { status: 200, message: 'the event has no call id' },
  RELAY_ERR_MAPPING_FAILED: { status: 200, message: 'an adapter expression failed' },
  // Stored and mapped, but past its call's limit of distinct events: kept as a raw request only.
  RELAY_ERR_CALL_EVENT_LIMIT: {
    status: 200,
    message: 'the call has as many distinct events as the relay keeps per call',
  },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class RelayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly headers: Record<string, string> | undefined;

  constructor(
    code: ErrorCode,
    message?: string,
    opts: { cause?: unknown; headers?: Record<string, string> } = {},
  ) {
    super(
      message ?? ERRORS[code].message,
      opts.cause === undefined ? undefined : { cause: opts.cause },
    );
    this.name = 'RelayError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.headers = opts.headers;
  }

  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/** Prefix an error with what was being done, keeping the original as `cause`. */
export function wrapError(doing: string, err: unknown): Error {
  const msg = err instanceof Error ? err.message : String(err);
  if (err instanceof RelayError)
    return new RelayError(err.code, `${doing}: ${msg}`, { cause: err });
  return new Error(`${doing}: ${msg}`, { cause: err });
}
