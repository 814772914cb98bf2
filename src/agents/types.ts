// What the agents' pages need from the running relay, handed in by runtime.ts (as the console's
// options are): the directory, and later the lookups and the dialer, as functions.

import type { CrmContact } from '../domain/callerid.js';

/** One person of relay.yaml's agents: directory. */
export interface AgentEntry {
  extension: string;
  name?: string | undefined;
  email?: string | undefined;
  /** Queues and ring groups they answer: calls ringing there are theirs too. */
  groups?: readonly string[] | undefined;
}

export interface AgentOptions {
  /** relay.yaml's agents: now (a reload changes it). Someone no longer in it is signed out. */
  directory(): readonly AgentEntry[];
  /**
   * Listen for folds committed (calls changed): in this process, and on PostgreSQL on any
   * instance sharing the store. The live card's cue; returns the unsubscribe.
   */
  onChange(listener: () => void): () => void;
  /**
   * Who has this number (E.164) in the CRMs, from the caller-ID lookup's cache (callerid/):
   * waits at most `withinMs` (`settled` false: not known yet, the search goes on). Unset: cards
   * show numbers only.
   */
  lookup?(e164: string, withinMs: number): Promise<{ contact?: CrmContact; settled: boolean }>;
  /** The relay's signed link to a call's recording; undefined without server.publicUrl. */
  recordingLink?(source: string, callId: string, url: string): string | undefined;
}
