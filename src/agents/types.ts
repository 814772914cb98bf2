// What the agents' pages need from the running relay, handed in by runtime.ts (as the console's
// options are): the directory, sign-in, the change cue, lookups, recordings and the dialer.

import type { DialResult } from '../domain/dial.js';
import type { CrmContact } from '../domain/callerid.js';

/** One person of relay.yaml's agents: directory. */
export interface AgentEntry {
  extension: string;
  name?: string | undefined;
  email?: string | undefined;
  /** The source whose PBX places their click-to-call (default: the only one with pbx:). */
  source?: string | undefined;
  /** Queues and ring groups they answer: calls ringing there are theirs too. */
  groups?: readonly string[] | undefined;
  /** The sources (PBXs) their calls come through; unset: every source. */
  sources?: readonly string[] | undefined;
}

/** A number as click-to-call would dial it for an agent (dial/ decides). */
export interface DialPreview {
  /** The source whose PBX would place it. */
  source: string;
  /** E.164. */
  number: string;
  /** For people: "+420 774 852 629". */
  formatted: string;
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
  /**
   * Click-to-call from the agent's own extension (dial/, passed in): `checkDial` shows the number
   * as it would be dialled and counts nothing; `dial` places it (number rules, the agent's calls
   * a minute), the call's originatedBy `agent:<extension>`. Both throw a RelayError saying why not.
   */
  checkDial(agent: AgentEntry, number: string): DialPreview;
  dial(agent: AgentEntry, number: string): Promise<DialResult>;
  /**
   * Who has this number (E.164) in the CRMs, from the caller-ID lookup's cache (callerid/):
   * waits at most `withinMs` (`settled` false: not known yet, the search goes on). Unset: cards
   * show numbers only.
   */
  lookup?(e164: string, withinMs: number): Promise<{ contact?: CrmContact; settled: boolean }>;
  /** The relay's signed link to a call's recording; undefined without server.publicUrl. */
  recordingLink?(source: string, callId: string, url: string): string | undefined;
}
