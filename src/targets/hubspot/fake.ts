// A fake HubSpot on 127.0.0.1 that holds the relay to the documented API (docs/crm-notes.md A,
// specs Calls/Contacts/Owners v3): Bearer auth, required fields, string property values, enum
// values, association specs, search limits and its one sort, and HubSpot's rate limits with its
// own 429 body and headers. Faults can be scripted per request. Call properties are checked
// against the account's definitions as HubSpot does (an unknown one, a value not of its type or
// not among its options: 400 VALIDATION_ERROR naming it); companies and deals are associated with
// contacts (v4 association lists with the "Primary" company label) and read in batches (specs
// Associations v4, Calls v3, docs/crm-notes.md A.2).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { parsePhoneNumberFromString } from 'libphonenumber-js';
import { CrmFake } from '../../../test/fakes/local-server.js';

export interface HsObject {
  id: string;
  properties: Record<string, string>;
  associations: {
    to: { id: string };
    types: { associationCategory: string; associationTypeId: number }[];
  }[];
  createdAt: string;
  updatedAt: string;
}

type Fault =
  | { status: number; body?: unknown; headers?: Record<string, string> }
  | { resetAfterProcessing: true }
  | { resetBeforeProcessing: true };

const CALL_STATUS = [
  'BUSY',
  'CALLING_CRM_USER',
  'CANCELED',
  'COMPLETED',
  'CONNECTING',
  'FAILED',
  'IN_PROGRESS',
  'NO_ANSWER',
  'QUEUED',
  'RINGING',
];
const OPERATORS = [
  'BETWEEN',
  'CONTAINS_TOKEN',
  'EQ',
  'GT',
  'GTE',
  'HAS_PROPERTY',
  'IN',
  'LT',
  'LTE',
  'NEQ',
  'NOT_CONTAINS_TOKEN',
  'NOT_HAS_PROPERTY',
  'NOT_IN',
];
const CATEGORIES = ['HUBSPOT_DEFINED', 'INTEGRATOR_DEFINED', 'USER_DEFINED', 'WORK'];
/** HubSpot's own call properties that the relay may send (the account's definitions). */
const CALL_PROPERTIES = [
  'hs_timestamp',
  'hs_call_title',
  'hs_call_body',
  'hs_call_direction',
  'hs_call_status',
  'hs_call_from_number',
  'hs_call_to_number',
  'hs_call_disposition',
  'hs_call_duration',
  'hs_call_recording_url',
  'hs_call_external_id',
  'hs_call_external_account_id',
  'hs_call_source',
  'hs_activity_type',
  'hs_attachment_ids',
  'hubspot_owner_id',
];

/** A custom property an account defined on calls. */
export type PropertyDefinition =
  { type: 'string' } | { type: 'number' } | { type: 'enumeration'; options: string[] };

/** Inline association types a create may carry, per object: type id -> the object it points to. */
const ASSOCIATION_TYPES: Record<string, Record<number, 'contacts' | 'companies' | 'deals'>> = {
  calls: { 194: 'contacts', 182: 'companies', 206: 'deals' },
  tasks: { 204: 'contacts' },
};

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class FakeHubspot extends CrmFake {
  readonly calls = new Map<string, HsObject>();
  readonly contacts = new Map<string, HsObject>();
  readonly tasks = new Map<string, HsObject>();
  readonly companies = new Map<string, HsObject>();
  readonly deals = new Map<string, HsObject>();
  /** Custom call properties the account has, by name (HubSpot's own are always there). */
  readonly callProperties = new Map<string, PropertyDefinition>();
  /** A contact's companies (with whether it is the primary one) and deals, by contact id. */
  readonly contactCompanies = new Map<string, { id: string; primary: boolean }[]>();
  readonly contactDeals = new Map<string, string[]>();
  readonly owners: { id: string; email: string; type: string; archived: boolean }[] = [];
  /** Faults to apply, in order, to requests matching `match` (method + path prefix). */
  readonly faults: { match: string; fault: Fault }[] = [];
  /** While set, every authenticated request gets this answer (an outage, a revoked scope). */
  failing: { status: number; body?: unknown } | undefined;
  /** Requests allowed per 10 s (general) and per second (search), as documented. */
  limit = { tenSecondly: 100, searchSecondly: 5 };
  /** Milliseconds before a new object shows up in search (search is eventually consistent). */
  searchLag = 0;
  /** The account id the account-info API answers with. */
  portalId = 24_681_357;
  /**
   * The scopes the token was granted (HubSpot answers 403 MISSING_SCOPES without them); checked
   * for the contact and account-info requests.
   */
  readonly scopes = new Set(['oauth', 'crm.objects.contacts.read', 'crm.objects.contacts.write']);
  /** Process every request this late (keeps requests in flight, e.g. for a kill). */
  delayMs = 0;
  /** Batch inputs (by objectWriteTraceId) to fail alone in a 207, with this error. */
  readonly failInputs = new Map<string, { category: string; message: string }>();
  /** Every request as it arrives, before `delayMs` and before it is answered. */
  readonly arrived: string[] = [];
  /** How many inputs each batch request carried, in order. */
  readonly batchSizes: number[] = [];
  private nextId = 1000;
  private window: number[] = [];
  private searchWindow: number[] = [];

  constructor(readonly token: string) {
    super();
  }

  /** A contact; `at` backdates it (made and last modified then), as for a shared number. */
  addContact(
    properties: Record<string, string>,
    at?: { createdAt: string; updatedAt?: string },
  ): string {
    const id = String(this.nextId++);
    const now = new Date().toISOString();
    this.contacts.set(id, {
      id,
      properties: withCalculated(properties),
      associations: [],
      createdAt: at?.createdAt ?? now,
      updatedAt: at?.updatedAt ?? at?.createdAt ?? now,
    });
    return id;
  }

  /** A company, associated with `contactId` (as its primary company if `primary`). */
  addCompany(name: string, contactId?: string, primary = false): string {
    const id = String(this.nextId++);
    const now = new Date().toISOString();
    this.companies.set(id, {
      id,
      properties: { name },
      associations: [],
      createdAt: now,
      updatedAt: now,
    });
    if (contactId)
      this.contactCompanies.set(contactId, [
        ...(this.contactCompanies.get(contactId) ?? []),
        { id, primary },
      ]);
    return id;
  }

  /** A deal of `contactId`, open or closed, last modified at `updatedAt`. */
  addDeal(o: { name: string; contactId: string; closed?: boolean; updatedAt: string }): string {
    const id = String(this.nextId++);
    this.deals.set(id, {
      id,
      properties: {
        dealname: o.name,
        hs_is_closed: String(!!o.closed),
        hs_lastmodifieddate: o.updatedAt,
      },
      associations: [],
      createdAt: o.updatedAt,
      updatedAt: o.updatedAt,
    });
    this.contactDeals.set(o.contactId, [...(this.contactDeals.get(o.contactId) ?? []), id]);
    return id;
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString();
    const url = new URL(req.url ?? '/', 'http://x');
    const key = `${req.method} ${url.pathname}`;
    this.arrived.push(key);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      if (res.destroyed) return;
      this.log.push({ method: req.method!, path: url.pathname, status });
      res.writeHead(status, { 'content-type': 'application/json;charset=utf-8', ...headers });
      res.end(body === undefined ? '' : JSON.stringify(body));
    };
    const error = (
      status: number,
      category: string,
      message: string,
      headers?: Record<string, string>,
    ): void =>
      send(
        status,
        { status: 'error', message, correlationId: 'fake-correlation', category },
        headers,
      );

    if (req.headers.authorization !== `Bearer ${this.token}`)
      return error(401, 'INVALID_AUTHENTICATION', 'Authentication credentials not found.');

    if (this.failing)
      return send(
        this.failing.status,
        this.failing.body ?? { status: 'error', message: 'failing', category: 'INJECTED' },
      );

    const fi = this.faults.findIndex((f) => key.startsWith(f.match));
    const fault = fi >= 0 ? this.faults.splice(fi, 1)[0]!.fault : undefined;
    if (fault && 'resetBeforeProcessing' in fault) return void req.socket.destroy();
    if (fault && 'status' in fault)
      return send(
        fault.status,
        fault.body ?? { status: 'error', message: 'injected', category: 'INJECTED' },
        fault.headers,
      );

    // Rate limits: search has its own per-second limit and is exempt from the ten-secondly one.
    const now = Date.now();
    const isSearch = url.pathname.endsWith('/search');
    const win = isSearch ? this.searchWindow : this.window;
    const span = isSearch ? 1000 : 10_000;
    const max = isSearch ? this.limit.searchSecondly : this.limit.tenSecondly;
    while (win.length && win[0]! <= now - span) win.shift();
    if (win.length >= max) {
      if (isSearch) return error(429, 'RATE_LIMITS', 'You have reached your secondly limit.');
      return send(
        429,
        {
          status: 'error',
          message: 'You have reached your ten_secondly_rolling limit.',
          errorType: 'RATE_LIMIT',
          correlationId: 'x',
          policyName: 'TEN_SECONDLY_ROLLING',
        },
        limitHeaders(max, 0),
      );
    }
    win.push(now);
    const headers = isSearch ? {} : limitHeaders(max, max - win.length);

    let body: Record<string, any> = {};
    if (raw) {
      if (!String(req.headers['content-type']).includes('application/json'))
        return error(415, 'VALIDATION_ERROR', 'Content-Type must be application/json');
      try {
        body = JSON.parse(raw) as Record<string, any>;
      } catch {
        return error(400, 'VALIDATION_ERROR', 'Invalid input JSON');
      }
    }
    const after = (status: number, payload: unknown): void => {
      if (fault && 'resetAfterProcessing' in fault) return void req.socket.destroy(); // done, but the answer is lost
      send(status, payload, headers);
    };

    const scope = scopeOf(req.method!, url.pathname);
    if (scope && !this.scopes.has(scope))
      return send(403, {
        status: 'error',
        message: "This app hasn't been granted all required scopes to make this call.",
        correlationId: 'fake-correlation',
        category: 'MISSING_SCOPES',
        errors: [
          {
            message: `One or more of the following scopes are required.`,
            context: { requiredGranularScopes: [scope] },
          },
        ],
      });
    if (req.method === 'GET' && url.pathname === '/account-info/v3/details')
      return after(200, {
        portalId: this.portalId,
        accountType: 'STANDARD',
        timeZone: 'Europe/Prague',
        companyCurrency: 'EUR',
        additionalCurrencies: [],
        utcOffset: '+01:00',
        utcOffsetMilliseconds: 3_600_000,
        uiDomain: 'app-eu1.hubspot.com',
        dataHostingLocation: 'eu1',
      });

    const assoc = /^\/crm\/v4\/objects\/contacts\/(\d+)\/associations\/(companies|deals)$/.exec(
      url.pathname,
    );
    if (assoc && req.method === 'GET') {
      const [, contact, to] = assoc;
      if (!this.contacts.has(contact!))
        return error(404, 'OBJECT_NOT_FOUND', `resource not found: ${contact}`);
      // v4 lists each associated record with every type (label) it is associated by.
      const results =
        to === 'companies'
          ? (this.contactCompanies.get(contact!) ?? []).map((x) => ({
              toObjectId: Number(x.id),
              associationTypes: [
                ...(x.primary
                  ? [{ category: 'HUBSPOT_DEFINED', typeId: 1, label: 'Primary' }]
                  : []),
                { category: 'HUBSPOT_DEFINED', typeId: 279, label: null },
              ],
            }))
          : (this.contactDeals.get(contact!) ?? []).map((id) => ({
              toObjectId: Number(id),
              associationTypes: [{ category: 'HUBSPOT_DEFINED', typeId: 4, label: null }],
            }));
      return after(200, { results });
    }
    if (req.method === 'POST' && url.pathname === '/crm/v3/objects/deals/batch/read') {
      const inputs = body.inputs as { id?: unknown }[] | undefined;
      if (!Array.isArray(inputs) || inputs.length < 1 || inputs.length > 100)
        return error(400, 'VALIDATION_ERROR', 'inputs must hold 1 to 100 objects');
      const found = inputs
        .map((i) => this.deals.get(String(i.id)))
        .filter((d): d is HsObject => d !== undefined);
      const at = new Date().toISOString();
      return after(200, {
        status: 'COMPLETE',
        results: found.map(view(body.properties)),
        startedAt: at,
        completedAt: at,
      });
    }

    const b = /^\/crm\/v3\/objects\/(calls|contacts|tasks)\/batch\/(create|update)$/.exec(
      url.pathname,
    );
    if (b && req.method === 'POST') {
      const [, type, op] = b;
      const store =
        type === 'calls' ? this.calls : type === 'contacts' ? this.contacts : this.tasks;
      const inputs = body.inputs as Record<string, any>[] | undefined;
      if (!Array.isArray(inputs) || inputs.length < 1 || inputs.length > 100)
        return error(400, 'VALIDATION_ERROR', 'inputs must hold 1 to 100 objects');
      this.batchSizes.push(inputs.length);
      // Per-input errors come back as a 207 only where each input has an objectWriteTraceId
      // (multi-status handling); otherwise one bad input fails the whole request.
      const traced = inputs.every((i) => typeof i.objectWriteTraceId === 'string');
      const problems = inputs.map((i) => {
        const scripted = this.failInputs.get(i.objectWriteTraceId);
        if (scripted) return scripted;
        if (op === 'update') {
          if (typeof i.id !== 'string')
            return { category: 'VALIDATION_ERROR', message: 'id is required' };
          if (!store.has(i.id))
            return { category: 'OBJECT_NOT_FOUND', message: `resource not found: ${i.id}` };
          const p = checkProperties(type!, i.properties ?? {}, false, this.callProperties);
          return p ? { category: 'VALIDATION_ERROR', message: p } : undefined;
        }
        const p = checkCreate(type!, i, this);
        return p ? { category: 'VALIDATION_ERROR', message: p } : undefined;
      });
      const first = problems.findIndex(Boolean);
      if (first >= 0 && !traced)
        return error(
          400,
          problems[first]!.category,
          `inputs[${first}]: ${problems[first]!.message}`,
        );
      const at = new Date().toISOString();
      const results: unknown[] = [];
      const errors: unknown[] = [];
      inputs.forEach((i, n) => {
        const problem = problems[n];
        if (problem) {
          errors.push({
            status: 'error',
            ...problem,
            context:
              op === 'update' ? { ids: [i.id] } : { objectWriteTraceId: [i.objectWriteTraceId] },
          });
          return;
        }
        let o: HsObject;
        if (op === 'update') {
          o = store.get(i.id)!;
          Object.assign(o.properties, i.properties);
          o.updatedAt = at;
        } else {
          const id = String(this.nextId++);
          const props = type === 'contacts' ? withCalculated(i.properties) : { ...i.properties };
          o = { id, properties: props, associations: i.associations, createdAt: at, updatedAt: at };
          store.set(id, o);
        }
        results.push({
          ...view(undefined)(o),
          ...(i.objectWriteTraceId ? { objectWriteTraceId: i.objectWriteTraceId } : {}),
        });
      });
      // HubSpot promises no order: answer in reverse, so that matching by position fails here.
      results.reverse();
      const answer = {
        status: 'COMPLETE',
        results,
        ...(errors.length ? { errors, numErrors: errors.length } : {}),
        startedAt: at,
        completedAt: new Date().toISOString(),
      };
      return after(errors.length ? 207 : op === 'create' ? 201 : 200, answer);
    }

    const m = /^\/crm\/v3\/objects\/(calls|contacts|tasks)(?:\/(search|[^/]+))?$/.exec(
      url.pathname,
    );
    if (m) {
      const [, type, rest] = m;
      const store =
        type === 'calls' ? this.calls : type === 'contacts' ? this.contacts : this.tasks;
      if (req.method === 'POST' && rest === 'search') {
        const problem = checkSearch(body);
        if (problem) return error(400, 'VALIDATION_ERROR', problem);
        const visible = [...store.values()].filter(
          (o) => now - Date.parse(o.createdAt) >= this.searchLag,
        );
        // No filter groups: every record, narrowed by `query` only.
        const results = visible
          .filter(
            (o) =>
              !body.filterGroups.length ||
              body.filterGroups.some((g: any) =>
                g.filters.every(
                  (f: any) =>
                    f.operator !== 'EQ' ||
                    (o.properties[f.propertyName] ?? '').toLowerCase() ===
                      String(f.value).toLowerCase(),
                ),
              ),
          )
          .filter((o) => body.query === undefined || matchesQuery(type!, o, body.query));
        const sort = body.sorts?.[0] as { propertyName: string; direction?: string } | undefined;
        if (sort) {
          const value = (o: HsObject): string =>
            sort.propertyName === 'createdate'
              ? o.createdAt
              : /^(hs_)?lastmodifieddate$/.test(sort.propertyName)
                ? o.updatedAt
                : (o.properties[sort.propertyName] ?? '');
          const dir = sort.direction === 'DESCENDING' ? -1 : 1;
          results.sort((a, b) => dir * (value(a) < value(b) ? -1 : value(a) > value(b) ? 1 : 0));
        }
        return after(200, {
          total: results.length,
          results: results
            .slice(0, body.limit ?? 10)
            .map(type === 'contacts' ? contactView(body.properties) : view(body.properties)),
        });
      }
      if (req.method === 'POST' && !rest) {
        const problem = checkCreate(type!, body, this);
        if (problem) return error(400, 'VALIDATION_ERROR', problem);
        const id = String(this.nextId++);
        const at = new Date().toISOString();
        const props =
          type === 'contacts' ? withCalculated(body.properties) : { ...body.properties };
        store.set(id, {
          id,
          properties: props,
          associations: body.associations,
          createdAt: at,
          updatedAt: at,
        });
        return after(201, { id, properties: props, createdAt: at, updatedAt: at, archived: false });
      }
      if (req.method === 'PATCH' && rest) {
        const o = store.get(rest);
        if (!o) return error(404, 'OBJECT_NOT_FOUND', `resource not found: ${rest}`);
        const problem = checkProperties(type!, body.properties ?? {}, false, this.callProperties);
        if (problem) return error(400, 'VALIDATION_ERROR', problem);
        Object.assign(o.properties, body.properties);
        o.updatedAt = new Date().toISOString();
        return after(200, {
          id: o.id,
          properties: o.properties,
          createdAt: o.createdAt,
          updatedAt: o.updatedAt,
          archived: false,
        });
      }
    }
    if (req.method === 'GET' && url.pathname === '/crm/v3/objects/calls')
      return after(200, { results: [...this.calls.values()].slice(0, 1).map(view(undefined)) });
    if (req.method === 'GET' && url.pathname.replace(/\/$/, '') === '/crm/v3/owners') {
      const email = url.searchParams.get('email');
      const results = this.owners
        .filter((o) => !email || o.email === email)
        .map((o) => ({ ...o, firstName: 'A', lastName: 'B', userId: Number(o.id) }));
      return after(200, { results });
    }
    const owner = /^\/crm\/v3\/owners\/(\d+)$/.exec(url.pathname);
    if (req.method === 'GET' && owner) {
      const o = this.owners.find((x) => x.id === owner[1]);
      if (!o) return error(404, 'OBJECT_NOT_FOUND', `Owner ${owner[1]} not found`);
      return after(200, { ...o, firstName: 'A', lastName: 'B', userId: Number(o.id) });
    }
    error(404, 'OBJECT_NOT_FOUND', `no route ${key}`);
  }
}

function limitHeaders(max: number, remaining: number): Record<string, string> {
  return {
    'x-hubspot-ratelimit-interval-milliseconds': '10000',
    'x-hubspot-ratelimit-max': String(max),
    'x-hubspot-ratelimit-remaining': String(Math.max(0, remaining)),
  };
}

/** HubSpot's calculated phone properties: area code and local number, no country code. */
function withCalculated(p: Record<string, string>): Record<string, string> {
  // Any country code comes off, so look-alikes from other countries share the calculated number
  // (+381 and +386 numbers with the same national digits both search as 629759787).
  const national = (v: string | undefined): string => {
    const raw = (v ?? '').trim().replace(/^00/, '+');
    const parsed = raw.startsWith('+') ? parsePhoneNumberFromString(raw) : undefined;
    return parsed?.nationalNumber ?? raw.replace(/\D/g, '');
  };
  const out = { ...p };
  if (p.phone) out.hs_searchable_calculated_phone_number = national(p.phone);
  if (p.mobilephone) out.hs_searchable_calculated_mobile_number = national(p.mobilephone);
  return out;
}

const view = (props: string[] | undefined) => (o: HsObject) => ({
  id: o.id,
  properties: Object.fromEntries(
    (props ?? Object.keys(o.properties)).map((k) => [k, o.properties[k] ?? null]),
  ),
  createdAt: o.createdAt,
  updatedAt: o.updatedAt,
  archived: false,
});

/** The scope a request needs, where the fake checks it (contacts, account info). */
function scopeOf(method: string, path: string): string | undefined {
  if (path === '/account-info/v3/details') return 'oauth';
  if (path === '/crm/v3/objects/contacts/search') return 'crm.objects.contacts.read';
  if (method === 'POST' && path === '/crm/v3/objects/contacts') return 'crm.objects.contacts.write';
  return undefined;
}

/** The contact properties a search's free-text `query` looks in (HubSpot's default searchable). */
const CONTACT_SEARCHABLE = [
  'firstname',
  'lastname',
  'email',
  'phone',
  'hs_additional_emails',
  'fax',
  'mobilephone',
  'company',
];

/** `query`: every word is found in one of the searchable properties (case-insensitive). */
function matchesQuery(type: string, o: HsObject, query: string): boolean {
  const fields = type === 'contacts' ? CONTACT_SEARCHABLE : [];
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  return words.every((w) => fields.some((f) => (o.properties[f] ?? '').toLowerCase().includes(w)));
}

/** Returned for a contact when a search names no properties (HubSpot's defaults). */
const CONTACT_DEFAULTS = [
  'createdate',
  'email',
  'firstname',
  'hs_object_id',
  'lastmodifieddate',
  'lastname',
];

/**
 * A contact as a search answers it: the properties asked for (else the defaults), and always its
 * id, creation and last-modified dates; a property it lacks is null.
 */
const contactView = (props: string[] | undefined) => (o: HsObject) => {
  const names = [
    ...new Set([...(props ?? CONTACT_DEFAULTS), 'createdate', 'hs_object_id', 'lastmodifieddate']),
  ];
  const own: Record<string, string> = {
    ...o.properties,
    createdate: o.createdAt,
    hs_object_id: o.id,
    lastmodifieddate: o.updatedAt,
  };
  return {
    id: o.id,
    properties: Object.fromEntries(names.map((k) => [k, own[k] ?? null])),
    createdAt: o.createdAt,
    updatedAt: o.updatedAt,
    archived: false,
  };
};

function checkSearch(b: Record<string, any>): string | undefined {
  if (b.query !== undefined && (typeof b.query !== 'string' || b.query.length > 3000))
    return 'query must be a string of up to 3000 characters';
  if (!Array.isArray(b.filterGroups)) return 'filterGroups is required';
  if (b.filterGroups.length > 5) return 'too many filterGroups (max 5)';
  let total = 0;
  for (const g of b.filterGroups) {
    if (!Array.isArray(g.filters) || g.filters.length > 6)
      return 'each filter group needs 1 to 6 filters';
    total += g.filters.length;
    for (const f of g.filters)
      if (!OPERATORS.includes(f.operator) || typeof f.propertyName !== 'string')
        return `bad filter ${JSON.stringify(f)}`;
  }
  if (total > 18) return 'too many filters (max 18)';
  if (b.properties !== undefined && !Array.isArray(b.properties))
    return 'properties must be a list';
  if (b.sorts !== undefined && (!Array.isArray(b.sorts) || b.sorts.length > 1))
    return 'only one sort is allowed';
  if (b.limit !== undefined && (typeof b.limit !== 'number' || b.limit > 200))
    return 'limit must be a number up to 200';
  return undefined;
}

function checkCreate(type: string, b: Record<string, any>, hs: FakeHubspot): string | undefined {
  if (!b.properties || typeof b.properties !== 'object') return 'properties is required';
  if (!Array.isArray(b.associations))
    return 'associations is required (send [] when there is none)';
  for (const a of b.associations) {
    if (!a?.to?.id || !Array.isArray(a.types) || !a.types.length)
      return `bad association ${JSON.stringify(a)}`;
    for (const t of a.types) {
      if (!CATEGORIES.includes(t.associationCategory) || !Number.isInteger(t.associationTypeId))
        return `bad association type ${JSON.stringify(t)}`;
      const kinds = ASSOCIATION_TYPES[type];
      if (!kinds) continue;
      const to = kinds[t.associationTypeId];
      if (!to) return `association type ${t.associationTypeId} is not one from ${type}`;
      if (!hs[to].has(String(a.to.id)))
        return `association to ${to} ${a.to.id}: no such object (INVALID_OBJECT_IDS)`;
    }
  }
  return checkProperties(type, b.properties, true, hs.callProperties);
}

function checkProperties(
  type: string,
  p: Record<string, unknown>,
  create: boolean,
  custom: Map<string, PropertyDefinition>,
): string | undefined {
  for (const [k, v] of Object.entries(p))
    if (typeof v !== 'string') return `Property values must be strings: ${k}`;
  const s = p as Record<string, string>;
  if (type === 'calls') {
    // As HubSpot says it: every property that failed, in the message of one VALIDATION_ERROR.
    const invalid = Object.entries(s)
      .map(([name, v]) => propertyProblem(name, v, custom))
      .filter((x) => x !== undefined);
    if (invalid.length) return `Property values were not valid: ${JSON.stringify(invalid)}`;
    if (create && !s.hs_timestamp) return 'hs_timestamp is required';
    if (s.hs_timestamp && Number.isNaN(Date.parse(s.hs_timestamp)))
      return 'hs_timestamp must be a date';
    if (s.hs_call_direction && !['INBOUND', 'OUTBOUND'].includes(s.hs_call_direction))
      return `bad hs_call_direction ${s.hs_call_direction}`;
    if (s.hs_call_status && !CALL_STATUS.includes(s.hs_call_status))
      return `bad hs_call_status ${s.hs_call_status}`;
    if (s.hs_call_disposition && !GUID.test(s.hs_call_disposition))
      return `hs_call_disposition must be an outcome GUID`;
    if (s.hs_call_duration && !/^\d+$/.test(s.hs_call_duration))
      return 'hs_call_duration must be milliseconds';
    if (s.hs_call_recording_url && !s.hs_call_recording_url.startsWith('https://'))
      return 'hs_call_recording_url must be HTTPS';
  }
  if (type === 'contacts' && create && !s.email && !s.firstname && !s.lastname)
    return 'one of email, firstname, lastname is required';
  if (type === 'tasks' && create && !s.hs_timestamp) return 'hs_timestamp is required';
  return undefined;
}

/** One property's problem as HubSpot reports it inside "Property values were not valid: [...]". */
function propertyProblem(
  name: string,
  value: string,
  custom: Map<string, PropertyDefinition>,
): Record<string, unknown> | undefined {
  const problem = (error: string, message: string) => ({
    isValid: false,
    message,
    error,
    name,
    localizedErrorMessage: message,
  });
  if (CALL_PROPERTIES.includes(name)) return undefined;
  const def = custom.get(name);
  if (!def) return problem('PROPERTY_DOESNT_EXIST', `Property "${name}" does not exist`);
  if (def.type === 'number' && value !== '' && !Number.isFinite(Number(value)))
    return problem('INVALID_DECIMAL', `${JSON.stringify(value)} is not a valid decimal`);
  if (def.type === 'enumeration' && value !== '' && !def.options.includes(value))
    return problem(
      'INVALID_OPTION',
      `${value} was not one of the allowed options: [${def.options.join(', ')}]`,
    );
  return undefined;
}
