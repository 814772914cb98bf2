// Dry runs (`targets[].dryRun: true`): the target builds every request exactly as it would for the
// CRM, and a sandbox answers it in-process instead of the network, the way an empty account of
// that CRM would. The requests, bodies included, become the delivery's attempt rows, so an admin
// sees what the CRM would get before giving the relay a token.

/** A request as the sandbox sees it: the path with its query, the JSON body if there is one. */
export interface SandboxRequest {
  method: string;
  path: string;
  json: unknown;
  /** A text body (form-encoded), where the request has one instead of JSON. */
  body?: string;
  /** The step of a REST recipe that made it (HttpCall.step). */
  step?: string;
}

export interface SandboxAnswer {
  status: number;
  body: unknown;
  /** Lower-cased names (an id in Location). */
  headers?: Record<string, string>;
}

/**
 * A CRM's sandbox: answers one request (target folders: sandbox.ts); a recipe's answers are
 * expressions, so its sandbox may answer later.
 */
export type Sandbox = (req: SandboxRequest) => SandboxAnswer | Promise<SandboxAnswer>;

/** What a sandbox keeps between requests: ids it handed out, per kind of object. */
export class SandboxIds {
  private next = 9_000_001;
  private readonly named = new Map<string, number>();

  /** A fresh id for a created object (numeric, as both CRMs' ids are). */
  fresh(): number {
    return this.next++;
  }

  /** The same id for the same name (a user looked up by email twice is one user). */
  of(name: string): number {
    let id = this.named.get(name);
    if (id === undefined) this.named.set(name, (id = this.fresh()));
    return id;
  }
}

/** The query parameter of a sandbox request's path. */
export function queryParam(path: string, name: string): string | null {
  const q = path.indexOf('?');
  return q < 0 ? null : new URLSearchParams(path.slice(q + 1)).get(name);
}

/** What the attempt row shows as the body sent: the JSON, the text, or what a stream would be. */
export function describeBody(c: {
  json?: unknown;
  body?: string | Buffer;
  stream?: unknown;
  what: string;
}): string | null {
  if (c.json !== undefined) return JSON.stringify(c.json);
  if (typeof c.body === 'string') return c.body;
  if (c.body) return `(${c.body.length} bytes)`;
  // A dry run never fetches a recording: it says what would have been streamed.
  if (c.stream) return `(streamed: ${c.what}; not fetched in a dry run)`;
  return null;
}
