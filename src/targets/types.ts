// What a CRM target is: a config schema, default timing and pacing, and a deliver function that
// brings the CRM's copy of one call up to date with the call record.

import type { z } from 'zod';
import type { DeliveryJob, RemoteState } from '../domain/delivery.js';
import type { ConfigIssue, LoadedYaml } from '../lib/yaml.js';
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
  /**
   * The CRM's contacts for a phone system's caller-ID lookup, contact search or email lookup
   * (callerid/), best first, at most `q.limit`. By number: only records that really have it
   * (kit/lookup.ts sameNumber, so a look-alike from another country never counts), ordered by
   * the shared-number rule (kit/phone-lookup.ts firstMade). Throws on a CRM failure; the caller
   * answers "not found" instead.
   */
  findContacts?(q: ContactQuery): Promise<ContactCard[]>;
  /** Make a contact (3CX's "create contact" in its Web Client); off unless relay.yaml says. */
  addContact?(c: NewContact): Promise<ContactCard>;
  close(): Promise<void>;
}

/** What a phone system asks a CRM target for: exactly one of `e164`, `text`, `email`. */
export interface ContactQuery {
  /** The caller's number in E.164. */
  e164?: string;
  /** Free text as typed in the phone client's contact search (a name, a company, digits). */
  text?: string;
  email?: string;
  limit: number;
}

/** A CRM's contact as a phone system shows it. */
export interface ContactCard {
  /** The CRM's id of the record. */
  id: string;
  firstName?: string;
  lastName?: string;
  company?: string;
  email?: string;
  /** Its numbers as the CRM stores them. */
  phones: { kind: 'business' | 'mobile' | 'home' | 'other'; number: string }[];
  /** The record's page in the CRM (null when the target cannot say: HubSpot without portalId). */
  url: string | null;
  /** The kind of record as the CRM names it: "contact" (HubSpot), "person" (Pipedrive)... */
  entityType: string;
  /** When the CRM made it (ISO 8601), where known: the shared-number rule uses it. */
  createdAt?: string;
}

/** A contact to make, as the phone client's form gives it. */
export interface NewContact {
  firstName?: string;
  lastName?: string;
  company?: string;
  email?: string;
  /** The number in E.164. */
  e164?: string;
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
  /**
   * What the schema cannot check, at config load (expressions, a recipe and its variables), with
   * issues that name relay.yaml's places. It may add plain-data fields to the target's config (a
   * recipe's resolved file) and defaults of its own (a recipe's rate limit); compiling for real is
   * the implementation's, once, when it is created.
   */
  prepare?(config: Record<string, unknown>, at: TargetPlace): PreparedTarget;
  /**
   * What a phone system's CRM lookup (sources[].crm) may ask of a target so configured (a recipe
   * can look contacts up only if it has a contact lookup); absent: nothing.
   */
  contacts?(config: Record<string, unknown>): { find: boolean; create: boolean };
}

/** Where a target is written: relay.yaml (with positions), its entry, and its folder. */
export interface TargetPlace {
  yaml: LoadedYaml;
  /** ['targets', i] */
  path: (string | number)[];
  /** relay.yaml's folder: an integrator's own files (recipes) are found relative to it. */
  configDir: string;
}

export interface PreparedTarget {
  issues: ConfigIssue[];
  /** Fields added to the target's config (plain data: it is compared on reload, and shown). */
  config?: Record<string, unknown>;
  /** Defaults that take the type's place (a recipe's own rate limit). */
  defaults?: Partial<TargetDefaults>;
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
  /**
   * Credentials a target obtains at run time (OAuth access tokens, a rotated refresh token), kept
   * in the store so that every instance shares them and a restart keeps them (kit/oauth.ts).
   */
  tokens?: TargetTokens;
  /**
   * Keep this secret (a token obtained at run time) out of everything shown from now on; with a
   * `key`, it replaces the one given before under that key (kept for one turn more).
   */
  redact?: (secret: string, key?: string) => void;
}

/** One target's stored credential: opaque to the store (the target seals it). */
export interface StoredCredential {
  /** Sealed JSON: the access token, its expiry, a rotated refresh token. */
  value: string;
  /** Bumped on every write: a write based on an older version loses (two instances refreshing). */
  version: number;
  updatedAt: string;
}

export interface TargetTokens {
  get(target: string): Promise<StoredCredential | undefined>;
  /** Write if the stored version is still `expected` (0: none stored yet); false if it moved on. */
  put(target: string, value: string, expected: number): Promise<boolean>;
  /**
   * Take the right to refresh `target`'s credential for `ms` (one refresh at a time across
   * instances): false while another owner holds an unexpired lease.
   */
  lease(target: string, owner: string, ms: number): Promise<boolean>;
  release(target: string, owner: string): Promise<void>;
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
