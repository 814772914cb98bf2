// Every request a target makes while delivering one call, timed, with the CRM's answer, collected
// without threading a parameter through each target: the engine runs `deliver` inside
// `traceRequests`, and the shared CrmClient reports each request to whatever trace is current.

import { AsyncLocalStorage } from 'node:async_hooks';

export interface RequestTrace {
  /** What the request did: "creating the call engagement". */
  operation: string;
  method: string;
  /**
   * Path only: some CRMs take credentials in the query string. A REST recipe's dry run keeps the
   * query (no credential in it).
   */
  path: string;
  startedAt: string;
  durationMs: number;
  /** Time spent waiting for the rate limiter before the request left. */
  waitedMs: number;
  status: number | null;
  requestId: string | null;
  /** Why it failed (null: it worked). */
  error: string | null;
  /** The body sent, kept in dry runs only (targets[].dryRun). */
  sent?: string | null;
  /**
   * Set on every copy of a batch request but one (kit/batcher.ts): each delivery it carried shows
   * it among its attempts, while the request counters count it once.
   */
  copy?: true;
  /**
   * Not a request: something the run went without, said where the admin reads the requests (an
   * agent the CRM has no user for: kit/user-lookup.ts; a recipe's skip:). `error` holds the
   * sentence. Made by recordNote().
   */
  note?: true;
}

/** Where a delivery's requests go: its trace (an array), or several (a batch, kit/batcher.ts). */
export interface TraceSink {
  push(t: RequestTrace): unknown;
}

const current = new AsyncLocalStorage<TraceSink>();

/** Runs `fn`, collecting the requests made inside it into `into`. */
export function traceRequests<T>(into: TraceSink, fn: () => Promise<T>): Promise<T> {
  return current.run(into, fn);
}

/** The trace of the delivery running now, if any (a batch keeps it to report to it later). */
export function currentTrace(): TraceSink | undefined {
  return current.getStore();
}

/** Adds a request to the current trace, if there is one (checks and lookups outside a delivery). */
export function recordRequest(t: RequestTrace): void {
  current.getStore()?.push(t);
}

/** A note among the current delivery's requests (RequestTrace.note): what it went without. */
export function recordNote(operation: string, sentence: string): void {
  recordRequest({
    operation,
    method: '',
    path: '',
    startedAt: new Date().toISOString(),
    durationMs: 0,
    waitedMs: 0,
    status: null,
    requestId: null,
    error: sentence,
    note: true,
  });
}

/** Headers CRMs use for their request id (HubSpot, Pipedrive, Cloudflare in front of either). */
const REQUEST_ID_HEADERS = [
  'x-request-id',
  'x-hubspot-correlation-id',
  'x-correlation-id',
  'request-id',
  'cf-ray',
];

export function requestIdOf(headers: Record<string, string>): string | null {
  for (const h of REQUEST_ID_HEADERS) if (headers[h]) return headers[h].slice(0, 200);
  return null;
}
