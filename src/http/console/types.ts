// What the console needs from the running relay, handed in by runtime.ts: the http/ layer never
// imports targets, config or the engine; it gets these functions instead.

import type { RemoteState } from '../../domain/delivery.js';
import type { LookupAnswer } from '../../domain/callerid.js';
import type { DialRequest, DialResult } from '../../domain/dial.js';
import type { Redactor } from '../../lib/redact.js';
import type { Pipeline } from '../../pipeline/pipeline.js';
import type { Logger } from '../../telemetry/log.js';
import type { Context } from 'hono';
import type { Sessions } from './session.js';

export interface ConsoleTarget {
  name: string;
  type: string;
  /** Its requests are answered by a sandbox, never sent (targets[].dryRun). */
  dryRun: boolean;
  /** The CRM's copy of a call as a link (id, and a URL when the target can build one). */
  link(remote: RemoteState): { id: string; url: string | null } | undefined;
  /** `check --online`: one cheap authenticated request; what works, or throws the CRM's reason. */
  check(): Promise<string>;
}

export interface ConsoleRecording {
  body: AsyncIterable<Uint8Array>;
  contentType: string;
}

export interface ConsoleOptions {
  pipeline: Pipeline;
  /** Every configured secret; applied to everything a page or answer shows. */
  redact: Redactor;
  targets: ConsoleTarget[];
  /**
   * A recording of one of the source's calls, fetched from the PBX with the source's credentials
   * and allowHosts (throws if not allowed), so that the browser plays it without PBX access.
   */
  recording(source: string, url: string): Promise<ConsoleRecording>;
  /**
   * Why the relay will not fetch this recording (not an http(s) link, its host not in the
   * source's recordings.allowHosts), without fetching it; undefined: it may.
   */
  recordingProblem?(source: string, url: string): Promise<string | undefined>;
  /** Re-read relay.yaml and the adapter files and use them for new and replayed requests. */
  reload(): Promise<{ adapters: string[]; restartNeeded: string[] }>;
  /** Listen for folds committed in this process (live views); returns the unsubscribe. */
  onChange(listener: () => void): () => void;
  /** Deliveries were made due (retry, deliver again): look for work now. */
  onDeliveriesDue(): void;
  /**
   * Click-to-call (sources with pbx:): the PBX rings the agent, then dials the number; `canDial`
   * says which sources can.
   */
  dial?: (req: DialRequest) => Promise<DialResult>;
  canDial?: (source: string) => boolean;
  /**
   * 3CX's CRM integration (sources with crm:): per source its template (xml undefined without
   * server.publicUrl), and what 3CX's caller-ID lookup answers for a number.
   */
  crm?: {
    templates(): { source: string; hookUrl: string | undefined; xml: string | undefined }[];
    lookup(source: string, number: string): Promise<LookupAnswer>;
  };
  /**
   * The agents' side (src/agents, above http/): relay.yaml's agents: directory and the company
   * sign-in's button label (undefined without auth.oidc), for Setup's "Agents" section.
   */
  agents?: {
    directory(): readonly {
      extension: string;
      name?: string | undefined;
      email?: string | undefined;
    }[];
    companySignIn(): string | undefined;
  };
  /** A one-time sign-in link for the agent of `extension` (agents/links.ts makeSignInLink). */
  agentLink?(
    sessions: Sessions,
    c: Context,
    extension: string,
    hours?: number,
  ): Promise<{ agent: string; url: string; expiresAt: string }>;
  /** server.publicUrl: the webhook URLs Setup shows are built on it (else on the browser's). */
  publicUrl?: string;
  /**
   * The .env beside relay.yaml, where `callrelay init` writes the admin token (as the relay's
   * folder shows it); undefined without one (the quick start), so that sign-in never points an
   * admin at a file this relay does not read.
   */
  tokenFile?: string;
  /** callrelay's version (package.json). */
  version: string;
  /** Store kind and health for the setup page. */
  storeHealth(): Promise<{ backend: string; ok: boolean; detail: string }>;
  /** Unexpected errors behind a console page are logged here (the page says only "internal"). */
  log?: Logger;
  /**
   * Aborted when the relay shuts down: open live streams (SSE) end at once, so that the server
   * can close without waiting for browsers. Unset: a stream ends by itself after a minute and the
   * browser reconnects, so that a shutdown waits at most that long.
   */
  signal?: AbortSignal;
}
