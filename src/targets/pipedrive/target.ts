// Pipedrive target. Call logs cannot be updated, so the relay waits a settle window after the call
// ends (recording and AI summary usually arrive by then) and creates one call log: outcome,
// numbers, UTC times, duration, subject, HTML note, the person found by phone, the agent's user.
// The recording is fetched from the PBX and uploaded to the call log. What arrives after the log
// exists goes into a note on the same person (a late first recording is still uploaded).
// Facts: docs/crm-notes.md section B. What is sent is built in mapping.ts.
//
// Ambiguous creates: the note carries the marker "callrelay <source>/<callId>". If a create's
// answer is lost, the next attempt lists the token user's recent call logs for that marker
// before creating again (kit/create-once.ts).

import { randomBytes } from 'node:crypto';
import { parsePhoneNumberFromString } from 'libphonenumber-js';
import type { CallRecord } from '../../domain/model.js';
import { DeliveryError } from '../kit/errors.js';
import type { RemoteState } from '../../domain/delivery.js';
import type { CrmClient } from '../kit/client.js';
import { connectCrm } from '../kit/connect.js';
import type { WindowLimiter } from '../kit/limiter.js';
import { allowedRecordingUrl, fetchRecording } from '../kit/recordings.js';
import { PhoneLookup, type Candidate } from '../kit/phone-lookup.js';
import { UserLookup } from '../kit/user-lookup.js';
import { createOnce, type PendingCreate } from '../kit/create-once.js';
import { marker } from '../kit/summary.js';
import type { DeliveryContext, RecordingAccess, Target, TargetDeps } from '../types.js';
import type { PipedriveConfig } from './spec.js';
import { callLogBody, DEFAULT_OUTCOMES, followUpActivity, lateNote } from './mapping.js';

interface Remote {
  callLogId?: string;
  personId?: number | null;
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

/** The person search matches exactly, and people store numbers in any of these forms. */
const phoneForms = (e164: string): string[] => [
  ...new Set(
    [e164, parsePhoneNumberFromString(e164)?.nationalNumber, e164.replace(/\D/g, '')].filter(
      (t): t is string => !!t,
    ),
  ),
];

class PipedriveTarget implements Target {
  readonly type = 'pipedrive';
  readonly name: string;
  private readonly http: CrmClient;
  private readonly searchLimiter: WindowLimiter;
  /** The person with a caller's number. */
  private readonly persons: PhoneLookup<number>;
  /** The Pipedrive user of an agent: a numeric id as is, an email through the users API. */
  private readonly users: UserLookup<number>;

  constructor(
    private readonly cfg: PipedriveConfig,
    private readonly recordingAccess: Record<string, RecordingAccess>,
  ) {
    this.name = cfg.name;
    this.persons = new PhoneLookup({
      ttlMs: cfg.cacheSec * 1000,
      terms: phoneForms,
      search: (term) => this.personsByPhone(term),
    });
    this.users = new UserLookup({
      agents: cfg.agents,
      ttlMs: cfg.cacheSec * 1000,
      fromNumber: Number,
      byEmail: (email) => this.userByEmail(email),
    });
    const crm = connectCrm(cfg, {
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
  }

  async deliver(ctx: DeliveryContext): Promise<Remote> {
    const c = ctx.job.record;
    const remote: Remote = { ...(ctx.job.remote as Remote) };
    if (remote.personId === undefined)
      remote.personId = (await this.persons.find(c.externalE164)) ?? null;
    const userId = await this.users.forAgent(c.agent);

    if (!remote.callLogId) {
      remote.callLogId = await this.createCallLog(ctx, remote, c, userId);
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
        await this.upload(remote.callLogId, first, access!);
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
          json: { content: lateNote(c, late, lateAi), person_id: remote.personId },
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
      const res = await this.http.call({
        method: 'POST',
        path: '/api/v1/activities',
        json: followUpActivity(c, { userId, personId: remote.personId }),
        idempotent: false,
        what: 'creating the follow-up activity',
      });
      remote.activityId = Number((res.body as { data?: { id?: number } }).data?.id);
      await ctx.save(remote);
    }
    return remote;
  }

  private async createCallLog(
    ctx: DeliveryContext,
    remote: Remote,
    c: CallRecord,
    userId: number | undefined,
  ): Promise<string> {
    const { id } = await createOnce({
      ctx,
      remote,
      crm: 'Pipedrive',
      what: 'creating the call log',
      find: () => this.findCallLog(c),
      create: async () => {
        const json = callLogBody(c, {
          userId,
          personId: remote.personId ?? undefined,
          outcomes: { ...DEFAULT_OUTCOMES, ...this.cfg.outcomes },
        });
        const res = await this.http.call({
          method: 'POST',
          path: '/api/v1/callLogs',
          json,
          idempotent: false,
          what: 'creating the call log',
        });
        const id = (res.body as { data?: { id?: string } }).data?.id;
        return id ? String(id) : undefined;
      },
    });
    return id;
  }

  /** A call log of ours among the token user's recent ones (by the marker in its note). */
  private async findCallLog(c: CallRecord): Promise<string | undefined> {
    const m = marker(c);
    for (let start = 0; start < 150; start += 50) {
      const res = await this.http.call({
        method: 'GET',
        path: `/api/v1/callLogs?start=${start}&limit=50`,
        idempotent: true,
        what: 'looking for a call log whose create was lost',
      });
      const b = res.body as {
        data?: { id: string; note?: string }[];
        additional_data?: { pagination?: { more_items_in_collection?: boolean } };
      };
      const hit = b.data?.find((l) => l.note?.includes(m));
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

  /** Persons that may have this number: the v2 search, exact in one format at a time. */
  private async personsByPhone(term: string): Promise<Candidate<number>[]> {
    const res = await this.http.call({
      method: 'GET',
      path: `/api/v2/persons/search?term=${encodeURIComponent(term)}&fields=phone&exact_match=true&limit=10`,
      idempotent: true,
      limiter: this.searchLimiter,
      what: 'searching persons by phone',
    });
    const items =
      (
        res.body as {
          data?: { items?: { item: { id: number; phones?: (string | { value: string })[] } }[] };
        }
      ).data?.items ?? [];
    return items.map((i) => ({
      id: i.item.id,
      numbers: (i.item.phones ?? []).map((p) => (typeof p === 'string' ? p : p.value)),
    }));
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

  /** The call log by id; the link opens the person, whose history shows the call log. */
  link(remote: RemoteState): { id: string; url: string | null } | undefined {
    const r = remote as Remote;
    if (!r.callLogId) return undefined;
    const domain = this.cfg.companyDomain;
    const url =
      domain && r.personId ? `https://${domain}.pipedrive.com/person/${r.personId}` : null;
    return { id: `call log ${r.callLogId}`, url };
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
  return new PipedriveTarget(config, deps.recordings);
}
