// What a CRM target is: a config schema, default timing and pacing, and a deliver function that
// brings the CRM's copy of one call up to date with the call record.

import type { z } from 'zod';
import type { DeliveryJob, RemoteState } from '../domain/delivery.js';
import type { Logger } from '../telemetry/log.js';

export interface DeliveryContext {
  job: DeliveryJob;
  /** Persist progress now (e.g. an id just created), before the next request. */
  save(remote: RemoteState): Promise<void>;
  log: Logger;
}

export interface Target {
  readonly name: string;
  readonly type: string;
  /** Make the CRM reflect `ctx.job.record`; returns what to remember for next time (remote ids). */
  deliver(ctx: DeliveryContext): Promise<RemoteState>;
  /**
   * One cheap request with the configured credentials (`check --online`): what works, or throws why
   * not.
   */
  check?(): Promise<string>;
  /**
   * The `agents` entries the CRM has no user for (`check --online`), one sentence each; empty
   * when every one is known.
   */
  unknownAgents?(): Promise<string[]>;
  /** The extensions relay.yaml maps to a CRM user (calls of others go without an owner). */
  readonly mappedAgents?: readonly string[];
  /** Where an admin sees the CRM's copy of a call (the console links to it), if known. */
  link?(remote: RemoteState): { id: string; url: string | null } | undefined;
  close(): Promise<void>;
}

export interface TargetDefaults {
  deliverOn: 'ended' | 'change';
  settleSec: number;
  /** Documented request rate of the CRM: `requests` per `perSeconds`. */
  rateLimit: { requests: number; perSeconds: number };
  concurrency: number;
}

/** A target type as config/ sees it: its fields and defaults. */
export interface TargetSpec {
  readonly type: string;
  /**
   * Type-specific fields; the common ones (name, rateLimit, retry, ...) are added by the registry.
   */
  readonly configSchema: z.ZodObject;
  readonly defaults: TargetDefaults;
}

/** What a target's implementation module (target.ts) exports. */
export interface TargetModule {
  create(config: CommonTargetConfig & Record<string, unknown>, deps: TargetDeps): Target;
}

/** How to fetch a source's recordings (hosts allowed, credentials, size cap). */
export interface RecordingAccess {
  allowHosts: string[];
  /** Hosts named by DNS may resolve to loopback or private addresses (a PBX on the LAN). */
  allowPrivateAddresses?: boolean;
  bearer?: string;
  basic?: { user: string; password: string };
  maxMB: number;
}

export interface TargetDeps {
  log: Logger;
  /** Per source name: how its recordings may be fetched. */
  recordings: Record<string, RecordingAccess>;
  /**
   * The relay's signed link to a recording (server.publicUrl set): what a CRM gets instead of the
   * PBX's URL, playable from the internet without the PBX's address or credentials.
   */
  recordingLink?: (source: string, callId: string, url: string) => string;
}

export interface CommonTargetConfig {
  name: string;
  type: string;
  deliverOn: 'ended' | 'change';
  settleSec: number;
  rateLimit: { requests: number; perSeconds: number };
  concurrency: number;
  timeoutSec: number;
  /** Keep retrying for this long before the dead-letter list. */
  retryForHours: number;
  /** Requests are built and answered by the target's sandbox, never sent (kit/sandbox.ts). */
  dryRun: boolean;
}
