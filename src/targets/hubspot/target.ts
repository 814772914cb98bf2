// HubSpot target: one call engagement per call, created when the call ends and PATCHed when the
// recording or the AI summary arrives (creates and updates waiting for the rate limit go out
// together in batch requests: batch.ts); contact found by phone (verified, cached), owner from
// the agent mapping, optional follow-up task for missed calls. Facts: docs/crm-notes.md section A.
//
// Ambiguous creates (the connection dropped after the request was sent): before creating, the
// delivery row records an intent with a token that also goes into hs_call_external_id. If the
// answer is lost, the next attempt waits until HubSpot's search has caught up (it is eventually
// consistent), searches for the token, and adopts the call it finds instead of creating another
// (kit/create-once.ts).

import type { RemoteState } from '../../domain/delivery.js';
import type { CrmClient } from '../kit/client.js';
import { connectCrm } from '../kit/connect.js';
import { hubspotSandbox } from './sandbox.js';
import type { WindowLimiter } from '../kit/limiter.js';
import type { CallRecord } from '../../domain/model.js';
import type {
  ContactCard,
  ContactQuery,
  DeliveryContext,
  NewContact,
  Target,
  TargetDeps,
} from '../types.js';
import { HubspotContacts } from './contacts.js';
import { withRecordingLinks, type RecordingLink } from '../kit/recordings.js';
import type { HubspotConfig } from './spec.js';
import { PhoneLookup, type Candidate, type Other } from '../kit/phone-lookup.js';
import { UserLookup } from '../kit/user-lookup.js';
import { createOnce, type PendingCreate } from '../kit/create-once.js';
import { callProperties, DEFAULT_DISPOSITIONS, taskProperties, toContact } from './mapping.js';
import { callCreates, callUpdates, type CallCreate, type CallUpdate } from './batch.js';
import type { Batcher } from '../kit/batcher.js';
import { Shape } from '../kit/shape.js';
import { Related, rejectedProperty, shapedProperties } from './shaping.js';

interface Remote {
  callObjectId?: string;
  contactId?: string | null;
  /** Other contacts with the caller's number (the call went to the one made first). */
  sharedWith?: Other<string>[];
  taskId?: string;
  pendingCreate?: PendingCreate;
  [k: string]: unknown;
}

interface SearchResult {
  total?: number;
  results?: { id: string; properties: Record<string, string | null>; createdAt?: string }[];
}

class HubspotTarget implements Target {
  readonly type = 'hubspot';
  readonly name: string;
  private readonly http: CrmClient;
  private readonly searchLimiter: WindowLimiter;
  /** Call creates and updates: batched while they wait for the ten-second window (batch.ts). */
  private readonly creates: Batcher<CallCreate, string>;
  private readonly updates: Batcher<CallUpdate, void>;
  /** The contact with a caller's number (found, or made if createContacts). */
  private readonly contacts: PhoneLookup<string>;
  /** hubspot_owner_id for an agent: a numeric id as is, an email through the owners API. */
  private readonly owners: UserLookup<string>;
  /** relay.yaml's expressions for the call (title, body, properties): shaping.ts. */
  private readonly shape: Shape;
  /** The contact's company and open deal (`associate`). */
  private readonly related: Related;
  /** Contacts for a phone system's caller lookup (contacts.ts). */
  private readonly cards: HubspotContacts;

  constructor(
    private readonly cfg: HubspotConfig,
    private readonly recordingLink?: RecordingLink,
  ) {
    this.name = cfg.name;
    this.contacts = new PhoneLookup({
      ttlMs: cfg.cacheSec * 1000,
      search: (_term, e164) => this.contactsByPhone(e164),
      otherwise: cfg.createContacts ? (e164) => this.createContact(e164) : undefined,
    });
    this.owners = new UserLookup({
      agents: cfg.agents,
      ttlMs: cfg.cacheSec * 1000,
      fromNumber: (id) => id,
      byEmail: (email) => this.ownerByEmail(email),
      exists: (id) => this.http.exists(`/crm/v3/owners/${id}`, `looking up the owner ${id}`),
      who: { crm: 'HubSpot', target: cfg.name },
    });
    const crm = connectCrm(cfg, {
      crm: 'HubSpot',
      sandbox: hubspotSandbox,
      auth: { authorization: `Bearer ${cfg.token}` },
      policy: {
        // 423: too much data too fast (wait 2 s); 477: portal migrating (Retry-After).
        statuses: { 423: 'retry', 477: 'retry' },
        pause: (status, _h, body) => {
          if (status === 423) return 2000;
          const b = (body ?? {}) as { policyName?: string; message?: string };
          if (b.policyName === 'TEN_SECONDLY_ROLLING') return 10_000;
          if (b.policyName === 'DAILY') return 3_600_000;
          if (/secondly/i.test(b.message ?? '')) return 1000;
          return undefined;
        },
      },
      errorFields: ['category', 'message'],
      // How much of the 10-second window is left: hold off before HubSpot says 429.
      windowLeft: {
        header: 'x-hubspot-ratelimit-remaining',
        pauseMs: (h) => Number(h['x-hubspot-ratelimit-interval-milliseconds']) || 10_000,
      },
    });
    this.http = crm.client;
    this.searchLimiter = crm.searchLimiter;
    this.creates = callCreates(crm.client, crm.limiter);
    this.updates = callUpdates(crm.client, crm.limiter);
    this.shape = new Shape(
      { title: cfg.title, body: cfg.body, properties: cfg.properties },
      cfg.shapePlaces,
    );
    this.related = new Related(crm.client, cfg.cacheSec * 1000);
    this.cards = new HubspotContacts(crm.client, crm.searchLimiter, cfg);
  }

  findContacts(q: ContactQuery): Promise<ContactCard[]> {
    return this.cards.find(q);
  }

  async addContact(c: NewContact): Promise<ContactCard> {
    const card = await this.cards.add(c);
    // A delivery's cached miss for the number would hide the new contact for a while.
    this.contacts.forget(c.e164 ?? null);
    this.cards.forgetNumber(c.e164);
    return card;
  }

  async deliver(ctx: DeliveryContext): Promise<Remote> {
    const c = ctx.job.record;
    const remote: Remote = { ...(ctx.job.remote as Remote) };
    const ownerId = await this.owners.forAgent(c.agent, ctx.log);
    if (remote.contactId === undefined) {
      const match = await this.contacts.find(c.externalE164);
      remote.contactId = match?.id ?? null;
      if (match?.others.length) remote.sharedWith = match.others;
    }
    const linked = withRecordingLinks(c, this.recordingLink);
    const built = callProperties(linked, {
      ownerId,
      dispositions: { ...DEFAULT_DISPOSITIONS, ...this.cfg.dispositions },
      sharedWith: remote.sharedWith,
    });
    const { properties, shaped } = await shapedProperties(this.shape, linked, built, {
      target: this.name,
      contactId: remote.contactId ?? null,
      others: remote.sharedWith ?? [],
      owner: ownerId,
    });

    try {
      if (remote.callObjectId) {
        await this.updateCall(remote.callObjectId, properties);
      } else {
        const more = await this.related.associations(remote.contactId, this.cfg.associate);
        remote.callObjectId = await this.createCall(ctx, remote, c, properties, more);
      }
    } catch (err) {
      throw rejectedProperty(err, shaped, this.shape);
    }

    if (
      this.cfg.missedCallTask &&
      c.status === 'ended' &&
      c.outcome !== 'answered' &&
      !remote.taskId
    ) {
      remote.taskId = await this.createTask(c, remote.contactId ?? undefined, ownerId);
      await ctx.save(remote);
    }
    return remote;
  }

  private async createCall(
    ctx: DeliveryContext,
    remote: Remote,
    c: CallRecord,
    properties: Record<string, string>,
    /** Associations beyond the contact (`associate`). */
    more: unknown[] = [],
  ): Promise<string> {
    const token = remote.pendingCreate?.token ?? `callrelay:${c.source}:${c.callId}`;
    const { id, adopted } = await createOnce({
      ctx,
      remote,
      crm: 'HubSpot',
      what: 'creating the call engagement',
      token,
      searchLagMs: this.cfg.searchLagSec * 1000,
      find: async () => {
        const found = await this.search(
          'calls',
          [{ propertyName: 'hs_call_external_id', operator: 'EQ', value: token }],
          ['hs_call_external_id'],
        );
        return found.results?.find((r) => r.properties.hs_call_external_id === token)?.id;
      },
      create: () =>
        this.creates.submit({
          properties: { ...properties, hs_call_external_id: token },
          associations: [...toContact(remote.contactId, 194), ...more],
          token,
        }),
    });
    remote.callObjectId = id;
    await ctx.save(remote);
    // Bring an adopted object up to date: it may predate this revision.
    if (adopted) await this.updateCall(id, properties);
    return id;
  }

  private updateCall(id: string, properties: Record<string, string>): Promise<void> {
    return this.updates.submit({ id, properties });
  }

  private async createTask(
    c: CallRecord,
    contactId: string | undefined,
    ownerId: string | undefined,
  ): Promise<string> {
    const res = await this.http.call({
      method: 'POST',
      path: '/crm/v3/objects/tasks',
      json: { properties: taskProperties(c, ownerId), associations: toContact(contactId, 204) },
      idempotent: false,
      what: 'creating the follow-up task',
    });
    return String((res.body as { id?: string }).id);
  }

  private search(
    object: string,
    filters: Record<string, string>[] | Record<string, string>[][],
    properties: string[],
    sort?: { propertyName: string; direction: 'ASCENDING' | 'DESCENDING' },
  ): Promise<SearchResult> {
    const groups = Array.isArray(filters[0])
      ? (filters as Record<string, string>[][])
      : [filters as Record<string, string>[]];
    return this.http
      .call({
        method: 'POST',
        path: `/crm/v3/objects/${object}/search`,
        json: {
          filterGroups: groups.map((f) => ({ filters: f })),
          properties,
          sorts: [
            sort ?? {
              propertyName: object === 'contacts' ? 'lastmodifieddate' : 'hs_lastmodifieddate',
              direction: 'DESCENDING',
            },
          ],
          limit: 10,
        },
        idempotent: true,
        limiter: this.searchLimiter,
        what: `searching ${object}`,
      })
      .then((r) => r.body as SearchResult);
  }

  /** Contacts with this number: the caller-ID lookup's search (contacts.ts), shared with it. */
  private async contactsByPhone(e164: string): Promise<Candidate<string>[]> {
    return (await this.cards.withNumber(e164)).map((r) => {
      const p = r.properties;
      const name = [p.firstname, p.lastname].filter(Boolean).join(' ') || p.email || undefined;
      const createdAt = r.createdAt ?? p.createdate ?? undefined;
      return {
        id: r.id,
        numbers: [p.phone, p.mobilephone],
        ...(name ? { name } : {}),
        ...(createdAt ? { createdAt } : {}),
      };
    });
  }

  private async createContact(e164: string): Promise<string> {
    const res = await this.http.call({
      method: 'POST',
      path: '/crm/v3/objects/contacts',
      json: {
        properties: { phone: e164, firstname: 'Caller', lastname: e164 },
        associations: [],
      },
      idempotent: false,
      what: 'creating a contact for an unknown caller',
    });
    // The miss a ring found would hide the new contact from 3CX for a while.
    this.cards.forgetNumber(e164);
    return String((res.body as { id?: string }).id);
  }

  private async ownerByEmail(email: string): Promise<string | undefined> {
    const res = await this.http.call({
      method: 'GET',
      path: `/crm/v3/owners?email=${encodeURIComponent(email)}&limit=1`,
      idempotent: true,
      what: `looking up the owner ${email}`,
    });
    return (res.body as { results?: { id: string }[] }).results?.[0]?.id;
  }

  /**
   * The call engagement by id; the link opens the contact, whose timeline shows the call (a call
   * has no page of its own in HubSpot's app).
   */
  link(remote: RemoteState): { id: string; url: string | null } | undefined {
    const r = remote as Remote;
    if (!r.callObjectId) return undefined;
    const { portalId, appUrl } = this.cfg;
    const url =
      portalId && r.contactId
        ? `${appUrl.replace(/\/+$/, '')}/contacts/${portalId}/record/0-1/${r.contactId}`
        : null;
    return { id: `call ${r.callObjectId}`, url };
  }

  get mappedAgents(): string[] {
    return Object.keys(this.cfg.agents);
  }

  unknownAgents(): Promise<string[]> {
    return this.owners.unknown('HubSpot');
  }

  async check(): Promise<string> {
    await this.http.call({
      method: 'GET',
      path: '/crm/v3/owners?limit=1',
      idempotent: true,
      what: 'listing owners (scope crm.objects.owners.read)',
    });
    await this.http.call({
      method: 'GET',
      path: '/crm/v3/objects/calls?limit=1',
      idempotent: true,
      what: 'listing calls (scope crm.objects.contacts.read)',
    });
    return 'token accepted; owners and calls readable';
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

export function create(config: HubspotConfig, deps: TargetDeps): Target {
  return new HubspotTarget(config, deps.recordingLink);
}
