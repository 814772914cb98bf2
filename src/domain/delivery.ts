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

/**
 * The operation of the attempt row that notes an agent the CRM has no user for (the call went
 * without an owner): targets write it, the setup page reads it (store migration 10 indexes it).
 */
export const NO_USER_OPERATION = "finding the agent's CRM user";

/** `dryRun`: the run was a sandbox's (targets[].dryRun); kept with the delivery. */
export type DeliveryOutcome =
  | { ok: true; rev: number; remote: RemoteState; dryRun?: boolean }
  | {
      ok: false;
      dead: boolean;
      retryAt?: string;
      error: string;
      remote?: RemoteState;
      dryRun?: boolean;
    };

/**
 * Why the target wrote nothing for the call on its latest delivery (a REST recipe's `skip:`), kept
 * in its remote state as `skipped`; a dry run's in its sandbox part.
 */
export function skippedReason(d: { remote: RemoteState; dryRun?: boolean }): string | undefined {
  const r = d.dryRun ? (d.remote.sandbox as RemoteState | undefined) : d.remote;
  const why = r?.skipped;
  return typeof why === 'string' && why ? why : undefined;
}

/** How a delivery stands, as the console's badges, the API and the CLI say it. */
export type DeliveryBadge =
  | { kind: 'delivered' }
  /** Due, never failed: waiting for its settle window (or a free slot) until `at`. */
  | { kind: 'waiting'; at: string }
  /** Failed `attempts` times; next try at `at`. */
  | { kind: 'retrying'; at: string; attempts: number }
  | { kind: 'dead'; attempts: number };

export function deliveryBadge(d: {
  state: 'due' | 'done' | 'dead';
  attempts: number;
  dueAt: string;
}): DeliveryBadge {
  if (d.state === 'done') return { kind: 'delivered' };
  if (d.state === 'dead') return { kind: 'dead', attempts: d.attempts };
  return d.attempts > 0
    ? { kind: 'retrying', at: d.dueAt, attempts: d.attempts }
    : { kind: 'waiting', at: d.dueAt };
}

/** A badge in a few words: "delivered", "retrying (3 failed), next 12:04:05". */
export function badgeText(b: DeliveryBadge): string {
  const time = (iso: string): string => iso.replace('T', ' ').slice(0, 19);
  switch (b.kind) {
    case 'delivered':
      return 'delivered';
    case 'waiting':
      return `waiting until ${time(b.at)}`;
    case 'retrying':
      return `retrying (${b.attempts} failed), next ${time(b.at)}`;
    case 'dead':
      return `dead after ${b.attempts} attempts`;
  }
}
