// The delivery contract between the store, the engine and the targets: a job claimed for one
// target and one call, and how its attempt ended.

import type { CallRecord } from './model.js';

/** What a target has recorded about its copy of a call (remote ids, progress); JSON. */
export type RemoteState = Record<string, unknown>;

/** A claimed delivery: deliver `record` (at `rev`) to `target`; the lease keeps others off it. */
export interface DeliveryJob {
  id: number;
  target: string;
  source: string;
  callId: string;
  rev: number;
  attempts: number;
  firstFailedAt: string | null;
  remote: RemoteState;
  record: CallRecord;
}

export type DeliveryOutcome =
  | { ok: true; rev: number; remote: RemoteState }
  | { ok: false; dead: boolean; retryAt?: string; error: string; remote?: RemoteState };
