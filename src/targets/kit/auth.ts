// How a target proves who it is to its CRM. A fixed credential (an API key, a bearer token,
// Basic) is a fixed header; an OAuth 2 access token (kit/oauth.ts) is fetched, cached, refreshed
// before it expires and after the CRM refuses it. The CRM client asks for the headers before
// every request and reports a refusal, so that a token that expired early is refreshed once and
// the request tried again.

export interface CrmAuth {
  /** The credential headers for the next request (a token fetched or refreshed first if due). */
  headers(): Promise<Record<string, string>>;
  /**
   * The CRM refused the credential these headers carried (401). True when trying again may work
   * (a new access token was or will be fetched); false for a fixed credential, which stays wrong.
   */
  rejected(sent: Record<string, string>): Promise<boolean>;
  /** The API's base URL the token answer named (Salesforce `instance_url`), once known. */
  baseUrl?(): string | undefined;
  close?(): Promise<void>;
}

/** A credential that never changes: the same headers on every request. */
export function fixedAuth(headers: Record<string, string>): CrmAuth {
  return {
    headers: () => Promise.resolve(headers),
    rejected: () => Promise.resolve(false),
  };
}
