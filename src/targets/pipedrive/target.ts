// Pipedrive target. Call logs cannot be updated, so the relay waits a settle window after the call
// ends (recording and AI summary usually arrive by then) and creates one call log: outcome,
// numbers, UTC times, duration, subject, HTML note, the person found by phone, the agent's user.
// The recording is fetched from the PBX and uploaded to the call log. What arrives after the log
// exists goes into a note on the same person (a late first recording is still uploaded).
// Facts: docs/crm-notes.md section B. What is sent is built in mapping.ts.
//
// Exactly one call log per call, whoever's it is (docs/crm-notes.md B.5): Pipedrive lists only the
// token user's call logs, so a log made for an agent could not be found after a lost answer.
// Instead a `call` activity is made first (API v2; found again among its owner's activities by
// the marker "callrelay <source>/<callId>" in its note), and the call log converts it
// (activity_id). After a lost answer for the log, the activity tells whether it was converted:
// its note is the log's now. Both creates go through kit/create-once.ts.

import { randomBytes } from 'node:crypto';
import type { CallRecord } from '../../domain/model.js';
import { DeliveryError } from '../kit/errors.js';
import type { RemoteState } from '../../domain/delivery.js';
import type { CrmClient } from '../kit/client.js';
import { connectCrm } from '../kit/connect.js';
import { pipedriveSandbox } from './sandbox.js';
import type { WindowLimiter } from '../kit/limiter.js';
import {
  allowedRecordingUrl,
  fetchRecording,
  withRecordingLinks,
  type RecordingLink,
} from '../kit/recordings.js';
import { PhoneLookup, type Other } from '../kit/phone-lookup.js';
import { UserLookup } from '../kit/user-lookup.js';
import { createOnce, type PendingCreate } from '../kit/create-once.js';
import type {
  ContactCard,
  ContactQuery,
  DeliveryContext,
  NewContact,
  RecordingAccess,
  Target,
  TargetDeps,
} from '../types.js';
import { PipedriveContacts } from './contacts.js';
import { silentLogger, type Logger } from '../../telemetry/log.js';
import type { PipedriveConfig } from './spec.js';
import { Shape } from '../kit/shape.js';
import { OpenDeals, rejectedField, shapedCallLog } from './shaping.js';
import {
  AWAITING_CALL_LOG,
  callActivity,
  callActivityOf,
  callLogBody,
  DEFAULT_OUTCOMES,
  followUpActivity,
  followUpOf,
  lateNote,
} from './mapping.js';

/** Pipedrive's clock may be behind ours: look this much before the intent for what it made. */
const CLOCK_SKEW_MS = 10 * 60_000;

interface Activity {
  id: number;
  note?: string;
  owner_id?: number;
}

interface Remote {
  /** Unknown only if the log was made for another user and its answer was lost (`logged`). */
  callLogId?: string;
  /** The `call` activity the call log converts. */
  callActivityId?: number;
  /** The call log exists (also when its id is unknown). */
  logged?: boolean;
  personId?: number | null;
  /** The person's open deal the call log goes on (`deal: open`); null: none. */
  dealId?: number | null;
  /** Other persons with the caller's number (the call went to the one made first). */
  sharedWith?: Other<number>[];
  /** The follow-up activity for a missed call. */
  activityId?: number;
  /** The recording attached to the call log as audio. */
  uploaded?: string;
  /** Why the recording could not be uploaded, if it could not (it is not tried again). */
  uploadFailed?: string;
  /** Recording URLs already in the call log's note or a later note. */
  mentioned?: string[];
  /** Whether the AI summary is in the call log's note or a later note. */
  aiNoted?: boolean;
  pendingCreate?: PendingCreate;
  [k: string]: unknown;
}

/** What createOnce adopts for a call log that exists but whose id cannot be learnt. */
const UNKNOWN_ID = 'unknown';

class PipedriveTarget implements Target {
  readonly type = 'pipedrive';
  readonly name: string;
  private readonly http: CrmClient;
  private readonly searchLimiter: WindowLimiter;
  /** The person with a caller's number. */
  private readonly persons: PhoneLookup<number>;
  /** The Pipedrive user of an agent: a numeric id as is, an email through the users API. */
  private readonly users: UserLookup<number>;
  private me: number | undefined;
  /** relay.yaml's expressions for the call log (subject, note, fields): shaping.ts. */
  private readonly shape: Shape;
  private readonly deals: OpenDeals;
  /** Persons for a phone system's caller lookup (contacts.ts). */
  private readonly cards: PipedriveContacts;

  constructor(
    private readonly cfg: PipedriveConfig,
    private readonly recordingAccess: Record<string, RecordingAccess>,
    private readonly recordingLink?: RecordingLink,
    log: Logger = silentLogger,
  ) {
    this.name = cfg.name;
    this.persons = new PhoneLookup({
      ttlMs: cfg.cacheSec * 1000,
      // The caller-ID lookup's search (contacts.ts): a ring's search serves the call's delivery.
      search: async (_term, e164) =>
        (await this.cards.withNumber(e164)).map((i) => ({
          id: i.id,
          numbers: i.phones ?? [],
          ...(i.name ? { name: i.name } : {}),
        })),
    });
    this.users = new UserLookup({
      agents: cfg.agents,
      ttlMs: cfg.cacheSec * 1000,
      fromNumber: Number,
      byEmail: (email) => this.userByEmail(email),
      exists: (id) => this.http.exists(`/api/v1/users/${id}`, `looking up the user ${id}`),
      who: { crm: 'Pipedrive', target: cfg.name },
    });
    const crm = connectCrm(cfg, {
      crm: 'Pipedrive',
      sandbox: pipedriveSandbox,
      auth: { 'x-api-token': cfg.token },
      policy: {
        pause: (_s, h) =>
          h['x-ratelimit-reset'] ? Number(h['x-ratelimit-reset']) * 1000 : undefined,
      },
      errorFields: ['error', 'error_info'],
      windowLeft: {
        header: 'x-ratelimit-remaining',
        pauseMs: (h) => (Number(h['x-ratelimit-reset']) || 2) * 1000,
      },
    });
    this.http = crm.client;
    this.searchLimiter = crm.searchLimiter;
    this.shape = new Shape(
      { subject: cfg.subject, note: cfg.note, fields: cfg.fields },
      cfg.shapePlaces,
    );
    this.deals = new OpenDeals(crm.client, cfg.cacheSec * 1000);
    this.cards = new PipedriveContacts(crm.client, crm.searchLimiter, { ...cfg, log });
  }

  findContacts(q: ContactQuery): Promise<ContactCard[]> {
    return this.cards.find(q);
  }

  async addContact(c: NewContact): Promise<ContactCard> {
    const card = await this.cards.add(c);
    // A delivery's cached miss for the number would hide the new contact for a while.
    this.persons.forget(c.e164 ?? null);
    this.cards.forgetNumber(c.e164);
    return card;
  }

  async deliver(ctx: DeliveryContext): Promise<Remote> {
    const c = ctx.job.record;
    const remote: Remote = { ...(ctx.job.remote as Remote) };
    if (remote.personId === undefined) {
      const match = await this.persons.find(c.externalE164);
      remote.personId = match?.id ?? null;
      if (match?.others.length) remote.sharedWith = match.others;
    }
    const userId = await this.users.forAgent(c.agent, ctx.log);

    if (!remote.callLogId && !remote.logged) {
      if (this.cfg.deal === 'open' && remote.dealId === undefined)
        remote.dealId = remote.personId ? await this.deals.find(remote.personId) : null;
      if (remote.callActivityId === undefined) {
        remote.callActivityId = await this.createActivity(ctx, remote, {
          // The log takes its deal from the activity it converts (B.5), so the deal goes here.
          body: {
            ...callActivity(c, { userId, personId: remote.personId }),
            ...(remote.dealId ? { deal_id: remote.dealId } : {}),
          },
          ownerId: userId,
          ours: (a) => callActivityOf(c, a.note),
          what: 'creating the call activity',
        });
        await ctx.save(remote);
      }
      remote.callLogId = await this.createCallLog(ctx, remote, c, userId, remote.callActivityId);
      remote.logged = true;
      remote.mentioned = [...c.recordings];
      remote.aiNoted = !!c.ai?.summary;
      await ctx.save(remote);
    }

    // The first recording goes onto the call log as audio (if the PBX host is allowed), even late.
    const first = c.recordings[0];
    const access = this.recordingAccess[c.source];
    if (
      this.cfg.uploadRecordings &&
      first &&
      !remote.uploaded &&
      allowedRecordingUrl(first, access)
    ) {
      try {
        if (remote.callLogId) await this.upload(remote.callLogId, first, access!);
        else
          // Another user's log whose answer was lost: Pipedrive shows its id nowhere we can read.
          throw new DeliveryError(
            'uploading the recording: the call log exists but its id is unknown (its answer was lost); the recording is linked in a note',
            { retryable: false },
          );
      } catch (err) {
        // A recording the PBX will never give (403, too big, a bad URL) costs that recording only:
        // its URL is in the call log's note, the failure is among the attempts, the rest goes on.
        if (!(err instanceof DeliveryError) || err.retryable) throw err;
        remote.uploadFailed = err.message;
        ctx.log.warn({ call: c.callId, err: err.message }, 'recording not uploaded');
      }
      remote.uploaded = first;
      await ctx.save(remote);
    }

    // What arrived after the call log (it cannot be updated): one note on the same person.
    const late = c.recordings.filter((r) => !(remote.mentioned ?? []).includes(r));
    const lateAi = !!c.ai?.summary && !remote.aiNoted;
    if (late.length || lateAi) {
      if (remote.personId) {
        await this.http.call({
          method: 'POST',
          path: '/api/v1/notes',
          json: {
            content: lateNote(
              c,
              late.map((u) => this.recordingLink?.(c.source, c.callId, u) ?? u),
              lateAi,
            ),
            person_id: remote.personId,
          },
          idempotent: false,
          what: 'adding a note with what arrived after the call log',
        });
      } else {
        ctx.log.info(
          { target: this.name, call: c.callId },
          'no person to attach a note to: later recordings and summary stay in the call record only',
        );
      }
      remote.mentioned = [...(remote.mentioned ?? []), ...late];
      remote.aiNoted = remote.aiNoted || lateAi;
      await ctx.save(remote);
    }

    if (this.cfg.missedCallActivity && c.outcome !== 'answered' && !remote.activityId) {
      remote.activityId = await this.createActivity(ctx, remote, {
        body: followUpActivity(c, { userId, personId: remote.personId }),
        ownerId: userId,
        ours: (a) => followUpOf(c, a.note),
        what: 'creating the follow-up activity',
      });
      await ctx.save(remote);
    }
    return remote;
  }

  /** An activity (API v2), made once: after a lost answer, looked for among its owner's. */
  private async createActivity(
    ctx: DeliveryContext,
    remote: Remote,
    o: {
      body: Record<string, unknown>;
      ownerId: number | undefined;
      ours: (a: Activity) => boolean;
      what: string;
    },
  ): Promise<number> {
    const { id } = await createOnce({
      ctx,
      remote,
      crm: 'Pipedrive',
      what: o.what,
      find: async () => {
        const since = Date.parse(remote.pendingCreate!.at) - CLOCK_SKEW_MS;
        const hit = await this.findActivity(o.ownerId, new Date(since), o.ours);
        return hit === undefined ? undefined : String(hit.id);
      },
      create: async () => {
        const res = await this.http.call({
          method: 'POST',
          path: '/api/v2/activities',
          json: o.body,
          idempotent: false,
          what: o.what,
        });
        const id = (res.body as { data?: { id?: number } }).data?.id;
        return id === undefined ? undefined : String(id);
      },
    });
    return Number(id);
  }

  /**
   * The call log that converts the call activity: its id, or undefined if it exists but its id
   * cannot be known (another user's log whose answer was lost).
   */
  private async createCallLog(
    ctx: DeliveryContext,
    remote: Remote,
    c: CallRecord,
    userId: number | undefined,
    activityId: number,
  ): Promise<string | undefined> {
    const linked = withRecordingLinks(c, this.recordingLink);
    const built = callLogBody(linked, {
      userId,
      personId: remote.personId ?? undefined,
      activityId,
      sharedWith: remote.sharedWith,
      outcomes: { ...DEFAULT_OUTCOMES, ...this.cfg.outcomes },
    });
    if (remote.dealId) built.deal_id = remote.dealId;
    const { body: json, shaped } = await shapedCallLog(this.shape, linked, built, {
      target: this.name,
      ...(remote.personId ? { personId: remote.personId } : {}),
      others: remote.sharedWith ?? [],
      ...(userId === undefined ? {} : { userId }),
    });
    const { id } = await createOnce({
      ctx,
      remote,
      crm: 'Pipedrive',
      what: 'creating the call log',
      find: async () => {
        // Converted means the activity holds the log's note now instead of its own.
        const a = await this.activity(activityId);
        if (a.note?.includes(AWAITING_CALL_LOG)) return undefined;
        const me = await this.tokenUser();
        const found =
          (a.owner_id ?? userId ?? me) === me ? await this.tokenUserLog(activityId) : undefined;
        return found ?? UNKNOWN_ID;
      },
      create: async () => {
        const res = await this.http
          .call({
            method: 'POST',
            path: '/api/v1/callLogs',
            json,
            idempotent: false,
            what: 'creating the call log',
          })
          .catch((err: unknown) => {
            throw rejectedField(err, shaped, this.shape);
          });
        const id = (res.body as { data?: { id?: string } }).data?.id;
        return id ? String(id) : undefined;
      },
    });
    return id === UNKNOWN_ID ? undefined : id;
  }

  /** Activities since a time, the owner's (any visible one's without), that pass `ours`. */
  private async findActivity(
    ownerId: number | undefined,
    since: Date,
    ours: (a: Activity) => boolean,
  ): Promise<Activity | undefined> {
    let cursor: string | null | undefined;
    for (let page = 0; page < 10; page++) {
      const q = new URLSearchParams({
        updated_since: since.toISOString().replace(/\.\d+Z$/, 'Z'),
        sort_by: 'update_time',
        sort_direction: 'desc',
        limit: '500',
      });
      if (ownerId !== undefined) q.set('owner_id', String(ownerId));
      if (cursor) q.set('cursor', cursor);
      const res = await this.http.call({
        method: 'GET',
        path: `/api/v2/activities?${q.toString()}`,
        idempotent: true,
        what: 'looking for an activity whose create was lost',
      });
      const b = res.body as {
        data?: Activity[];
        additional_data?: { next_cursor?: string | null };
      };
      const hit = b.data?.find(ours);
      if (hit) return hit;
      cursor = b.additional_data?.next_cursor;
      if (!cursor) return undefined;
    }
    return undefined;
  }

  private async activity(id: number): Promise<Activity> {
    const res = await this.http.call({
      method: 'GET',
      path: `/api/v2/activities/${id}`,
      idempotent: true,
      what: 'reading the call activity',
    });
    return (res.body as { data: Activity }).data;
  }

  /** The token's own user, whose call logs (only) the call-log list shows. */
  private async tokenUser(): Promise<number> {
    if (this.me === undefined) {
      const res = await this.http.call({
        method: 'GET',
        path: '/api/v1/users/me',
        idempotent: true,
        what: "reading the token's user",
      });
      this.me = Number((res.body as { data?: { id?: number } }).data?.id);
    }
    return this.me;
  }

  /** The token user's call log that converted this activity (among their recent ones). */
  private async tokenUserLog(activityId: number): Promise<string | undefined> {
    for (let start = 0; start < 150; start += 50) {
      const res = await this.http.call({
        method: 'GET',
        path: `/api/v1/callLogs?start=${start}&limit=50`,
        idempotent: true,
        what: 'looking for a call log whose create was lost',
      });
      const b = res.body as {
        data?: { id: string; activity_id?: number }[];
        additional_data?: { pagination?: { more_items_in_collection?: boolean } };
      };
      const hit = b.data?.find((l) => l.activity_id === activityId);
      if (hit) return String(hit.id);
      if (!b.additional_data?.pagination?.more_items_in_collection) return undefined;
    }
    return undefined;
  }

  private async upload(callLogId: string, url: string, access: RecordingAccess): Promise<void> {
    const boundary = `callrelay-${randomBytes(12).toString('hex')}`;
    try {
      await this.http.call({
        method: 'POST',
        path: `/api/v1/callLogs/${callLogId}/recordings`,
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
        stream: async () => {
          const rec = await fetchRecording(url, access);
          return (async function* () {
            yield Buffer.from(
              `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${rec.filename.replace(/"/g, '')}"\r\nContent-Type: ${rec.contentType}\r\n\r\n`,
            );
            yield* rec.body;
            yield Buffer.from(`\r\n--${boundary}--\r\n`);
          })();
        },
        idempotent: true, // a second upload gets 409, which means it is there
        what: 'uploading the recording',
      });
    } catch (err) {
      if (err instanceof DeliveryError && err.status === 409) return;
      throw err;
    }
  }

  private async userByEmail(email: string): Promise<number | undefined> {
    const res = await this.http.call({
      method: 'GET',
      path: `/api/v1/users/find?term=${encodeURIComponent(email)}&search_by_email=1`,
      idempotent: true,
      what: `looking up the user ${email}`,
    });
    return (res.body as { data?: { id: number; email: string }[] }).data?.find(
      (u) => u.email.toLowerCase() === email.toLowerCase(),
    )?.id;
  }

  /** The call log (or its activity); the link opens the person, whose history shows the call. */
  link(remote: RemoteState): { id: string; url: string | null } | undefined {
    const r = remote as Remote;
    if (!r.callLogId && !r.logged) return undefined;
    const domain = this.cfg.companyDomain;
    const url =
      domain && r.personId ? `https://${domain}.pipedrive.com/person/${r.personId}` : null;
    const id = r.callLogId ? `call log ${r.callLogId}` : `call activity ${r.callActivityId}`;
    return { id, url };
  }

  get mappedAgents(): string[] {
    return Object.keys(this.cfg.agents);
  }

  unknownAgents(): Promise<string[]> {
    return this.users.unknown('Pipedrive');
  }

  async check(): Promise<string> {
    const res = await this.http.call({
      method: 'GET',
      path: '/api/v1/users/me',
      idempotent: true,
      what: "reading the token's user",
    });
    const me = (
      res.body as { data?: { name?: string; company_name?: string; company_domain?: string } }
    ).data;
    return `token accepted (user ${me?.name ?? '?'}, company ${me?.company_name ?? '?'}, companyDomain ${me?.company_domain ?? '?'})`;
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

export function create(config: PipedriveConfig, deps: TargetDeps): Target {
  return new PipedriveTarget(config, deps.recordings, deps.recordingLink, deps.log);
}
