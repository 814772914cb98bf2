// What the agents' pages need from the running relay, handed in by runtime.ts (as the console's
// options are): the directory, and later the lookups and the dialer, as functions.

/** One person of relay.yaml's agents: directory. */
export interface AgentEntry {
  extension: string;
  name?: string | undefined;
  email?: string | undefined;
}

/** relay.yaml auth.oidc: agents' company sign-in, with its redirect URI on server.publicUrl. */
export interface OidcSettings {
  issuer: string;
  clientId: string;
  clientSecret: string;
  scopes: string;
  label?: string | undefined;
  domains?: string[] | undefined;
  /** <server.publicUrl>/agent/oidc/callback */
  redirectUri: string;
}

export interface AgentOptions {
  /** relay.yaml's agents: now (a reload changes it). Someone no longer in it is signed out. */
  directory(): readonly AgentEntry[];
  /**
   * Listen for folds committed (calls changed): in this process, and on PostgreSQL on any
   * instance sharing the store. The live card's cue; returns the unsubscribe.
   */
  onChange(listener: () => void): () => void;
  /** Company sign-in as relay.yaml sets it now (a reload may change it); unset: links only. */
  oidc?(): OidcSettings | undefined;
}
