// A fake Salesforce org on 127.0.0.1 that holds a recipe to the documented REST API, so that a
// wrong recipe fails here rather than in a customer's org. It follows (docs/crm-notes.md E):
// - OAuth 2.0 Client Credentials Flow (Salesforce Help, "OAuth 2.0 Client Credentials Flow for
//   Server-to-Server Integration"): the token answer without expires_in, OAuth error bodies;
// - REST API Developer Guide: "Status Codes and Error Responses" (error arrays, 300/401/403/404),
//   "Limit Info Header" (Sforce-Limit-Info: api-usage=n/m), "Create a Record", "Update a Record",
//   "Insert or Update (Upsert) a Record Using an External ID", "Search" and "Query";
// - Object Reference, Task (field types, lengths, Create/Update properties, TaskSubtype
//   create-only, CallType's values, WhoId to a Contact or Lead), Contact, Lead and User;
// - SOQL and SOSL Reference: FIND {...} IN PHONE FIELDS RETURNING ..., SOSL's reserved characters
//   (escaped with a backslash), SOQL's reserved ' and \, case-insensitive string comparison;
// - "API Request Limits and Allocations": REQUEST_LIMIT_EXCEEDED (403) for the 24-hour allocation
//   and for the concurrent long-running requests.
// Where the documentation is silent the fake is strict rather than lenient (phone search matches
// the stored number's digits or their tail, a float for an int field is refused) and says so.

import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CrmFake, readRequest, seededRandom } from './local-server.js';

type FieldType =
  | 'id'
  | 'string'
  | 'textarea'
  | 'url'
  | 'email'
  | 'phone'
  | 'picklist'
  | 'int'
  | 'boolean'
  | 'date'
  | 'datetime'
  | 'reference';

export interface FieldDef {
  type: FieldType;
  label: string;
  length?: number;
  create?: boolean;
  update?: boolean;
  /** A restricted picklist's values (other values are refused). */
  values?: string[];
  /** What a reference may point to: key prefixes (003 Contact, 00Q Lead, 005 User, ...). */
  refersTo?: string[];
  /** Custom fields: marked External ID (usable in an upsert URL) and unique. */
  externalId?: boolean;
  unique?: boolean;
}

export type SfRecord = Record<string, unknown> & { Id: string; CreatedDate: string };

const ro = (type: FieldType, label: string): FieldDef => ({ type, label });
const rw = (type: FieldType, label: string, more: Partial<FieldDef> = {}): FieldDef => ({
  type,
  label,
  create: true,
  update: true,
  ...more,
});

const PREFIX = { Contact: '003', Lead: '00Q', User: '005', Task: '00T', Account: '001' } as const;
const ORG_ID = '00D5g000004Xyz1EAC';

/** Task fields as the Object Reference lists them (the ones a call log can touch). */
const TASK_FIELDS: Record<string, FieldDef> = {
  Id: ro('id', 'Activity ID'),
  Subject: rw('string', 'Subject', { length: 255 }),
  Status: rw('picklist', 'Status', { length: 40 }),
  Priority: rw('picklist', 'Priority', { length: 40 }),
  ActivityDate: rw('date', 'Due Date Only'),
  // Create only: a task's subtype cannot change once it is made.
  TaskSubtype: {
    type: 'picklist',
    label: 'Task Subtype',
    create: true,
    values: ['Task', 'Email', 'ListEmail', 'Cadence', 'Call', 'LinkedIn'],
  },
  Type: rw('picklist', 'Type', { length: 40 }),
  CallType: rw('picklist', 'Call Type', { values: ['Inbound', 'Internal', 'Outbound'] }),
  CallDurationInSeconds: rw('int', 'Call Duration'),
  CallDisposition: rw('string', 'Call Result', { length: 255 }),
  CallObject: rw('string', 'Call Object Identifier', { length: 255 }),
  WhoId: rw('reference', 'Name ID', { refersTo: [PREFIX.Contact, PREFIX.Lead] }),
  WhatId: rw('reference', 'Related To ID', { refersTo: [PREFIX.Account, '006', '500', '701'] }),
  OwnerId: rw('reference', 'Assigned To ID', { refersTo: [PREFIX.User] }),
  Description: rw('textarea', 'Description', { length: 32000 }),
  IsReminderSet: rw('boolean', 'Reminder Set'),
  ReminderDateTime: rw('datetime', 'Reminder Date/Time'),
  AccountId: ro('reference', 'Account ID'),
  IsClosed: ro('boolean', 'Closed'),
  IsHighPriority: ro('boolean', 'High Priority'),
  CompletedDateTime: ro('datetime', 'Completed Date/Time'),
  CreatedDate: ro('datetime', 'Created Date'),
  LastModifiedDate: ro('datetime', 'Last Modified Date'),
  IsDeleted: ro('boolean', 'Deleted'),
};
const PERSON_FIELDS: Record<string, FieldDef> = {
  Id: ro('id', 'ID'),
  FirstName: rw('string', 'First Name', { length: 40 }),
  LastName: rw('string', 'Last Name', { length: 80 }),
  Name: ro('string', 'Full Name'),
  Phone: rw('phone', 'Phone', { length: 40 }),
  MobilePhone: rw('phone', 'Mobile Phone', { length: 40 }),
  Email: rw('email', 'Email', { length: 80 }),
  OwnerId: rw('reference', 'Owner ID', { refersTo: [PREFIX.User] }),
  CreatedDate: ro('datetime', 'Created Date'),
  IsDeleted: ro('boolean', 'Deleted'),
};
const OBJECTS: Record<string, Record<string, FieldDef>> = {
  Task: TASK_FIELDS,
  Contact: {
    ...PERSON_FIELDS,
    HomePhone: rw('phone', 'Home Phone', { length: 40 }),
    OtherPhone: rw('phone', 'Other Phone', { length: 40 }),
    AccountId: rw('reference', 'Account ID', { refersTo: [PREFIX.Account] }),
  },
  Lead: {
    ...PERSON_FIELDS,
    Company: rw('string', 'Company', { length: 255 }),
    Status: rw('picklist', 'Status', { length: 40 }),
    IsConverted: ro('boolean', 'Converted'),
  },
  User: {
    Id: ro('id', 'User ID'),
    Username: rw('string', 'Username', { length: 80 }),
    Name: ro('string', 'Full Name'),
    Email: rw('email', 'Email', { length: 128 }),
    IsActive: rw('boolean', 'Active'),
    CreatedDate: ro('datetime', 'Created Date'),
  },
};
/** The phone fields SOSL's PHONE FIELDS search group covers, per object. */
const PHONE_FIELDS: Record<string, string[]> = {
  Contact: ['Phone', 'MobilePhone', 'HomePhone', 'OtherPhone'],
  Lead: ['Phone', 'MobilePhone'],
};
/** The fields SOSL's NAME FIELDS and EMAIL FIELDS search groups cover, per object. */
const NAME_FIELDS: Record<string, string[]> = {
  Contact: ['Name', 'FirstName', 'LastName'],
  Lead: ['Name', 'FirstName', 'LastName', 'Company'],
};
const EMAIL_FIELDS: Record<string, string[]> = { Contact: ['Email'], Lead: ['Email'] };
/**
 * Custom fields (`…__c`) a test gave a record that hold an email: SOSL's EMAIL FIELDS covers every
 * email field, custom ones too, which a recipe's search does not read.
 */
const customEmails = (r: SfRecord): string[] =>
  Object.keys(r).filter((k) => k.endsWith('__c') && /@/.test(String(r[k] ?? '')));
const SOSL_RESERVED = new Set('?&|!{}[]()^~*:\\"\'+-'.split(''));

/** An error as the REST API answers it: an array of {message, errorCode, fields?}. */
class SfError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    message: string,
    readonly fields?: string[],
  ) {
    super(message);
  }
  body(): unknown {
    return [
      {
        message: this.message,
        errorCode: this.errorCode,
        ...(this.fields ? { fields: this.fields } : {}),
      },
    ];
  }
}

/** The 3-character suffix that makes a 15-character id case-safe (18 characters). */
function caseSafe(id15: string): string {
  const map = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';
  let suffix = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) if (/[A-Z]/.test(id15[chunk * 5 + i]!)) bits |= 1 << i;
    suffix += map[bits];
  }
  return id15 + suffix;
}
const wellFormedId = (v: string): boolean =>
  /^[a-zA-Z0-9]{15}$/.test(v) || (/^[a-zA-Z0-9]{18}$/.test(v) && caseSafe(v.slice(0, 15)) === v);

/** Salesforce's datetime format: "2026-03-11T20:00:00.000+0000". */
const sfTime = (ms: number): string => new Date(ms).toISOString().replace('Z', '+0000');

type Fault =
  | { status: number; body?: unknown; headers?: Record<string, string> }
  | { lostAnswer: true }
  | { reset: true };

export interface SeenRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body: string;
  status: number;
}

export class FakeSalesforce extends CrmFake {
  /** Records by object, in the order made. */
  readonly records: Record<'Task' | 'Contact' | 'Lead' | 'User', Map<string, SfRecord>> = {
    Task: new Map(),
    Contact: new Map(),
    Lead: new Map(),
    User: new Map(),
  };
  /** Every token request: its form fields (the secret masked) and the answer's status. */
  readonly tokenRequests: { grantType: string; clientId: string; status: number }[] = [];
  /** Every API request, as it was answered. */
  readonly requests: SeenRequest[] = [];
  /** Session timeout of the org (Setup > Session Settings); tokens die this long after issue. */
  sessionSec = 7200;
  /** The org's 24-hour API allocation and what is used of it (Sforce-Limit-Info). */
  readonly api = { used: 0, limit: 100_000 };
  /** Whether the app's client credentials flow is enabled with a run-as user. */
  clientCredentialsEnabled = true;
  /** Share of API requests answered 503 before anything is done. */
  failRate = 0;
  /** Share of creates and updates that are done and then lose their answer (socket destroyed). */
  lostRate = 0;
  /** Milliseconds before a new Contact or Lead is in the search index (SOSL lags; SOQL doesn't). */
  searchLagMs = 0;
  /** Process every request this late. */
  delayMs = 0;
  /** Task creates received and still held by `delayMs` (a relay killed now loses their answers). */
  heldCreates = 0;
  /** Scripted faults, in order, for requests whose "METHOD path" starts with `match`. */
  readonly faults: { match: string; fault: Fault }[] = [];
  /** The next n API requests answer REQUEST_LIMIT_EXCEEDED of this kind. */
  private forced: { n: number; kind: 'daily' | 'concurrent' } = { n: 0, kind: 'daily' };
  private readonly tokens = new Map<string, number>();
  private readonly random: () => number;
  private serial = 1;
  /** The run-as user of the client credentials flow (owner of what the API makes). */
  readonly runAsUserId: string;

  constructor(
    readonly client: { id: string; secret: string },
    readonly opts: {
      apiVersion?: string;
      seed?: number;
      /** Custom Task fields, e.g. CallKey__c: { type: 'string', externalId: true }. */
      taskFields?: Record<string, FieldDef>;
    } = {},
  ) {
    super();
    this.random = seededRandom(opts.seed ?? 1);
    for (const [name, def] of Object.entries(opts.taskFields ?? {}))
      this.taskFields[name] = { create: true, update: true, ...def };
    this.runAsUserId = this.addUser({ Email: 'integration@example.com', IsActive: true });
  }

  /** Task fields of this org (standard plus the custom ones it was given). */
  readonly taskFields: Record<string, FieldDef> = { ...TASK_FIELDS };

  // ---- set-up and inspection for tests ----

  private newId(object: keyof typeof PREFIX): string {
    const n = (this.serial++).toString(36).toUpperCase().padStart(5, '0');
    return caseSafe(`${PREFIX[object]}5g00000${n}`);
  }

  private person(
    object: 'Contact' | 'Lead',
    f: Record<string, unknown>,
    createdAt?: string,
  ): string {
    const id = this.newId(object);
    const name = [f.FirstName, f.LastName].filter(Boolean).join(' ');
    this.records[object].set(id, {
      OwnerId: this.runAsUserId,
      IsDeleted: false,
      ...(object === 'Lead' ? { IsConverted: false, Company: 'Unknown' } : {}),
      ...f,
      Id: id,
      Name: name,
      CreatedDate: sfTime(createdAt ? Date.parse(createdAt) : Date.now()),
    });
    return id;
  }

  /** A contact; `createdAt` backdates it (which of several with one number was made first). */
  addContact(f: Record<string, unknown>, createdAt?: string): string {
    return this.person('Contact', f, createdAt);
  }

  addLead(f: Record<string, unknown>, createdAt?: string): string {
    return this.person('Lead', f, createdAt);
  }

  addUser(f: { Email: string; IsActive: boolean; Name?: string }): string {
    const id = this.newId('User');
    this.records.User.set(id, {
      Username: f.Email,
      Name: f.Name ?? f.Email,
      ...f,
      Id: id,
      CreatedDate: sfTime(Date.now()),
    });
    return id;
  }

  get tasks(): SfRecord[] {
    return [...this.records.Task.values()];
  }

  /** Every session ends now (as when the org's timeout passes or an admin revokes them). */
  expireSessions(): void {
    this.tokens.clear();
  }

  /** The next `n` API requests are refused with REQUEST_LIMIT_EXCEEDED. */
  forceRateLimit(n: number, kind: 'daily' | 'concurrent' = 'daily'): void {
    this.forced = { n, kind };
  }

  // ---- the server ----

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { method, url, query, raw } = await readRequest(req);
    if (this.delayMs) {
      const create = method === 'POST' && /\/sobjects\/Task$/.test(url.pathname);
      if (create) this.heldCreates++;
      await new Promise((r) => setTimeout(r, this.delayMs));
      if (create) this.heldCreates--;
    }
    const seen: SeenRequest = {
      method,
      path: url.pathname,
      query,
      body: raw,
      status: 0,
    };
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      if (res.destroyed) return;
      seen.status = status;
      this.log.push({ method, path: url.pathname, status });
      res.writeHead(status, {
        ...(body === undefined ? {} : { 'content-type': 'application/json;charset=UTF-8' }),
        ...headers,
      });
      res.end(body === undefined ? '' : JSON.stringify(body));
    };

    if (url.pathname === '/services/oauth2/token') return this.token(req, raw, method, send);

    this.requests.push(seen);
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const issued = auth ? this.tokens.get(auth) : undefined;
    if (issued === undefined || Date.now() - issued > this.sessionSec * 1000) {
      if (auth) this.tokens.delete(auth);
      return send(401, new SfError(401, 'INVALID_SESSION_ID', 'Session expired or invalid').body());
    }

    const key = `${method} ${url.pathname}`;
    const fi = this.faults.findIndex((f) => key.startsWith(f.match));
    const fault = fi >= 0 ? this.faults.splice(fi, 1)[0]!.fault : undefined;
    if (fault && 'reset' in fault) return void req.socket.destroy();
    if (fault && 'status' in fault)
      return send(
        fault.status,
        fault.body ?? [{ message: 'injected', errorCode: 'UNKNOWN_EXCEPTION' }],
        fault.headers,
      );

    // Limits: the 24-hour allocation counts every API request; its state is in every answer.
    const limited =
      this.forced.n > 0 ? this.forced.kind : this.api.used >= this.api.limit ? 'daily' : undefined;
    if (limited) {
      if (this.forced.n > 0) this.forced.n--;
      return send(
        403,
        new SfError(
          403,
          'REQUEST_LIMIT_EXCEEDED',
          limited === 'daily'
            ? 'TotalRequests Limit exceeded.'
            : 'ConcurrentPerOrgLongTxn Limit exceeded.',
        ).body(),
        { 'sforce-limit-info': `api-usage=${this.api.used}/${this.api.limit}` },
      );
    }
    this.api.used++;
    const headers = { 'sforce-limit-info': `api-usage=${this.api.used}/${this.api.limit}` };
    if (this.failRate && this.random() < this.failRate)
      return send(
        503,
        new SfError(503, 'SERVER_UNAVAILABLE', 'Server temporarily unavailable').body(),
        headers,
      );
    const lose =
      (fault && 'lostAnswer' in fault) ||
      (method !== 'GET' && this.lostRate > 0 && this.random() < this.lostRate);

    try {
      const answer = this.route(method, url, raw, req.headers['content-type']);
      // The work is done; only the answer goes missing.
      if (lose) return void req.socket.destroy();
      send(answer.status, answer.body, { ...headers, ...answer.headers });
    } catch (e) {
      if (!(e instanceof SfError)) throw e;
      send(e.status, e.body(), headers);
    }
  }

  private token(
    req: IncomingMessage,
    raw: string,
    method: string,
    send: (status: number, body: unknown) => void,
  ): void {
    const form = new URLSearchParams(raw);
    let clientId = form.get('client_id') ?? '';
    let secret = form.get('client_secret') ?? '';
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (basic) {
      const [u, p] = Buffer.from(basic, 'base64').toString().split(':');
      clientId = decodeURIComponent(u ?? '');
      secret = decodeURIComponent(p ?? '');
    }
    const grantType = form.get('grant_type') ?? '';
    const record = { grantType, clientId, status: 0 };
    this.tokenRequests.push(record);
    const fail = (status: number, error: string, description: string): void => {
      record.status = status;
      send(status, { error, error_description: description });
    };
    if (method !== 'POST') return fail(400, 'invalid_request', 'must use HTTP POST');
    if (!String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded'))
      return fail(400, 'invalid_request', 'unsupported content type');
    if (!grantType) return fail(400, 'invalid_request', 'grant type is missing');
    if (grantType !== 'client_credentials')
      return fail(400, 'unsupported_grant_type', 'grant type not supported');
    if (clientId !== this.client.id || secret !== this.client.secret)
      return fail(400, 'invalid_client', 'invalid client credentials');
    if (!this.clientCredentialsEnabled)
      return fail(400, 'invalid_grant', 'no client credentials user enabled');
    const now = Date.now();
    const token = `${ORG_ID.slice(0, 15)}!AQ${createHash('sha256').update(`${now}-${this.serial++}`).digest('base64url')}`;
    this.tokens.set(token, now);
    record.status = 200;
    // No expires_in: the session lasts as the org's session timeout says.
    send(200, {
      access_token: token,
      signature: createHash('sha256').update(token).digest('base64'),
      scope: 'api',
      instance_url: this.url,
      id: `${this.url}/id/${ORG_ID}/${this.runAsUserId}`,
      token_type: 'Bearer',
      issued_at: String(now),
    });
  }

  private route(
    method: string,
    url: URL,
    raw: string,
    contentType: string | undefined,
  ): { status: number; body?: unknown; headers?: Record<string, string> } {
    const m = /^\/services\/data\/v(\d+\.\d)\/(.*)$/.exec(url.pathname);
    const version = m ? Number(m[1]) : NaN;
    if (!m || version < 20 || version > Number(this.opts.apiVersion ?? '66.0'))
      throw new SfError(404, 'NOT_FOUND', 'The requested resource does not exist');
    const rest = m[2]!.replace(/\/$/, '');
    const q = url.searchParams.get('q');

    if (method === 'GET' && rest === 'search') return { status: 200, body: this.sosl(q, m[1]!) };
    if (method === 'GET' && rest === 'query') return { status: 200, body: this.soql(q, m[1]!) };

    const s = /^sobjects\/([A-Za-z_]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(rest);
    if (!s) throw new SfError(404, 'NOT_FOUND', 'The requested resource does not exist');
    const [, object, a, b] = s;
    if (!(object! in OBJECTS))
      throw new SfError(404, 'NOT_FOUND', 'The requested resource does not exist');
    const body = (): Record<string, unknown> => {
      if (!String(contentType).includes('application/json'))
        throw new SfError(
          415,
          'UNSUPPORTED_MEDIA_TYPE',
          `Content type '${contentType}' not supported`,
        );
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        throw new SfError(
          400,
          'JSON_PARSER_ERROR',
          'Unexpected character: was expecting a JSON value',
        );
      }
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
        throw new SfError(
          400,
          'JSON_PARSER_ERROR',
          'Cannot deserialize instance of sObject from START_ARRAY',
        );
      return parsed as Record<string, unknown>;
    };
    const v = m[1]!;
    if ((object === 'Contact' || object === 'Lead') && method === 'POST' && !a) {
      // A person made through the API: createable fields only, LastName (and a Lead's Company)
      // required, text within its length.
      const input = body();
      const defs = OBJECTS[object]!;
      const fields: Record<string, unknown> = {};
      for (const [k, val] of Object.entries(input)) {
        const [name, def] = this.field(defs, k, object);
        if (!def.create)
          throw new SfError(
            400,
            'INVALID_FIELD_FOR_INSERT_UPDATE',
            `Unable to create/update fields: ${name}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.`,
            [name],
          );
        if (typeof val !== 'string' || (def.length && val.length > def.length))
          throw new SfError(
            400,
            'STRING_TOO_LONG',
            `${def.label}: data value too large: ${String(val)}`,
            [name],
          );
        fields[name] = val;
      }
      const missing = ['LastName', ...(object === 'Lead' ? ['Company'] : [])].filter(
        (f) => !fields[f],
      );
      if (missing.length)
        throw new SfError(
          400,
          'REQUIRED_FIELD_MISSING',
          `Required fields are missing: [${missing.join(', ')}]`,
          missing,
        );
      const id = this.person(object, fields);
      return { status: 201, body: { id, success: true, errors: [] } };
    }
    if (object !== 'Task') {
      if (method === 'GET' && a && !b)
        return { status: 200, body: this.view(object!, this.get(object!, a), v) };
      throw new SfError(405, 'METHOD_NOT_ALLOWED', `HTTP Method '${method}' not allowed.`);
    }
    if (method === 'POST' && !a) {
      const id = this.create(body());
      return { status: 201, body: { id, success: true, errors: [] } };
    }
    if (method === 'GET' && a && !b)
      return { status: 200, body: this.view('Task', this.get('Task', a), v) };
    if (method === 'PATCH' && a && !b) {
      this.update(this.get('Task', a), body());
      return { status: 204 };
    }
    if (method === 'PATCH' && a && b) return this.upsert(a, decodeURIComponent(b), body(), version);
    throw new SfError(
      405,
      'METHOD_NOT_ALLOWED',
      `HTTP Method '${method}' not allowed. Allowed are GET,PATCH,DELETE,HEAD`,
    );
  }

  private get(object: string, id: string): SfRecord {
    const r = wellFormedId(id)
      ? [...(this.records[object as 'Task'] ?? new Map()).values()].find(
          (x) => x.Id.slice(0, 15) === id.slice(0, 15),
        )
      : undefined;
    if (!r) throw new SfError(404, 'NOT_FOUND', 'The requested resource does not exist');
    return r;
  }

  private view(object: string, r: SfRecord, v: string, fields?: string[]): Record<string, unknown> {
    const defs = object === 'Task' ? this.taskFields : OBJECTS[object]!;
    return {
      attributes: { type: object, url: `/services/data/v${v}/sobjects/${object}/${r.Id}` },
      ...Object.fromEntries((fields ?? Object.keys(defs)).map((f) => [f, r[f] ?? null])),
    };
  }

  /** Field names as the API takes them: case-insensitive, answered in their own spelling. */
  private field(defs: Record<string, FieldDef>, name: string, object: string): [string, FieldDef] {
    const found = Object.entries(defs).find(([k]) => k.toLowerCase() === name.toLowerCase());
    if (!found)
      throw new SfError(
        400,
        'INVALID_FIELD',
        `No such column '${name}' on sobject of type ${object}`,
      );
    return found;
  }

  /** Checks and converts a create or update body; throws the API's error for the first problem. */
  private fields(
    input: Record<string, unknown>,
    op: 'create' | 'update',
    except?: string,
  ): Record<string, unknown> {
    if ('Id' in input || 'id' in input)
      throw new SfError(
        400,
        'INVALID_FIELD',
        'The Id field should not be specified in the sobject data.',
      );
    const out: Record<string, unknown> = {};
    for (const [given, value] of Object.entries(input)) {
      if (given === 'attributes') continue;
      const [name, def] = this.field(this.taskFields, given, 'Task');
      if (name === except) continue;
      if (!(op === 'create' ? def.create : def.update))
        throw new SfError(
          400,
          'INVALID_FIELD_FOR_INSERT_UPDATE',
          `Unable to create/update fields: ${name}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.`,
          [name],
        );
      out[name] = this.value(name, def, value);
    }
    for (const required of ['Status', 'Priority', 'OwnerId'])
      if (required in out && out[required] === null)
        throw new SfError(
          400,
          'REQUIRED_FIELD_MISSING',
          `Required fields are missing: [${required}]`,
          [required],
        );
    return out;
  }

  private value(name: string, def: FieldDef, v: unknown): unknown {
    if (v === null) return null;
    const parser = (t: string): SfError =>
      new SfError(
        400,
        'JSON_PARSER_ERROR',
        `Cannot deserialize instance of ${t} from ${typeof v === 'string' ? 'VALUE_STRING' : typeof v === 'object' ? 'START_OBJECT' : 'VALUE_NUMBER'} value ${JSON.stringify(v)} or request may be missing a required field`,
      );
    switch (def.type) {
      case 'int': {
        // A whole number, or a string of one; a fraction is refused (the docs don't say).
        const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
        if (typeof n !== 'number' || !Number.isInteger(n)) throw parser('int');
        if (Math.abs(n) >= 1e8)
          throw new SfError(
            400,
            'NUMBER_OUTSIDE_VALID_RANGE',
            `${def.label}: value outside of valid range on numeric field: ${n}`,
            [name],
          );
        return n;
      }
      case 'boolean':
        if (typeof v !== 'boolean') throw parser('boolean');
        return v;
      case 'date':
        if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(v) || Number.isNaN(Date.parse(v)))
          throw parser('date');
        return v;
      case 'datetime':
        if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) throw parser('datetime');
        return sfTime(Date.parse(v));
      case 'reference': {
        if (typeof v !== 'string') throw parser('id');
        if (!wellFormedId(v))
          throw new SfError(400, 'MALFORMED_ID', `${def.label}: id value of incorrect type: ${v}`, [
            name,
          ]);
        if (!def.refersTo!.includes(v.slice(0, 3)))
          throw new SfError(
            400,
            'FIELD_INTEGRITY_EXCEPTION',
            `${def.label}: id value of incorrect type: ${v}`,
            [name],
          );
        const object = Object.entries(PREFIX).find(([, p]) => p === v.slice(0, 3))?.[0];
        const target = object
          ? this.records[object as 'Task']?.get(this.full(object, v))
          : undefined;
        if (object && object in this.records && !target)
          throw new SfError(400, 'INVALID_CROSS_REFERENCE_KEY', `invalid cross reference id`, [
            name,
          ]);
        if (object === 'User' && target && target.IsActive !== true)
          throw new SfError(400, 'INACTIVE_OWNER_OR_USER', 'owner or user is inactive.', [name]);
        return target?.Id ?? v;
      }
      default: {
        if (typeof v === 'object') throw parser('String');
        const s = String(v);
        if (def.values && !def.values.includes(s))
          throw new SfError(
            400,
            'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST',
            `${def.label}: bad value for restricted picklist field: ${s}`,
            [name],
          );
        if (def.length && Array.from(s).length > def.length)
          throw new SfError(
            400,
            'STRING_TOO_LONG',
            `${def.label}: data value too large: ${s.slice(0, 40)}... (max length=${def.length})`,
            [name],
          );
        return s;
      }
    }
  }

  /** A 15-character id's record key (records are keyed by the 18-character id). */
  private full(object: string, id: string): string {
    const found = [...(this.records[object as 'Task']?.keys() ?? [])].find(
      (k) => k.slice(0, 15) === id.slice(0, 15),
    );
    return found ?? id;
  }

  private checkRecord(r: Record<string, unknown>, self?: string): void {
    const who = r.WhoId as string | undefined;
    if (who?.startsWith(PREFIX.Lead) && r.WhatId)
      // A task on a lead cannot also be related to an account, opportunity, ...
      throw new SfError(
        400,
        'FIELD_INTEGRITY_EXCEPTION',
        'Related To ID: id value of incorrect type: a Lead in Name ID rules out Related To',
        ['WhatId'],
      );
    for (const [name, def] of Object.entries(this.taskFields)) {
      if (!def.unique || r[name] === undefined || r[name] === null) continue;
      const other = this.tasks.find(
        (t) =>
          t.Id !== self && String(t[name] ?? '').toLowerCase() === String(r[name]).toLowerCase(),
      );
      if (other)
        throw new SfError(
          400,
          'DUPLICATE_VALUE',
          `duplicate value found: ${name} duplicates value on record with id: ${other.Id}`,
          [name],
        );
    }
  }

  private create(input: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
    const f = { ...this.fields(input, 'create'), ...extra };
    const record = { Status: 'Not Started', Priority: 'Normal', OwnerId: this.runAsUserId, ...f };
    this.checkRecord(record);
    const id = this.newId('Task');
    const now = sfTime(Date.now());
    this.records.Task.set(id, {
      TaskSubtype: 'Task',
      IsDeleted: false,
      ...record,
      IsClosed: record.Status === 'Completed',
      Id: id,
      CreatedDate: now,
      LastModifiedDate: now,
    });
    return id;
  }

  private update(r: SfRecord, input: Record<string, unknown>, except?: string): void {
    const f = this.fields(input, 'update', except);
    this.checkRecord({ ...r, ...f }, r.Id);
    Object.assign(r, f, { LastModifiedDate: sfTime(Date.now()) });
    r.IsClosed = r.Status === 'Completed';
  }

  private upsert(
    fieldName: string,
    value: string,
    input: Record<string, unknown>,
    version: number,
  ): { status: number; body?: unknown } {
    const found = Object.entries(this.taskFields).find(
      ([k]) => k.toLowerCase() === fieldName.toLowerCase(),
    );
    if (!found || !found[1].externalId)
      throw new SfError(
        404,
        'NOT_FOUND',
        `Provided external ID field does not exist or is not accessible: ${fieldName}`,
      );
    const [name] = found;
    const matches = this.tasks.filter(
      (t) => String(t[name] ?? '').toLowerCase() === value.toLowerCase(),
    );
    if (matches.length > 1)
      return {
        status: 300,
        body: matches.map((t) => `/services/data/v${version.toFixed(1)}/sobjects/Task/${t.Id}`),
      };
    if (matches.length === 1) {
      // The path names the record; the field itself may be in the body only with that value.
      this.update(matches[0]!, input, name);
      // From API 46.0 an update by upsert answers 200 with a body; before, 204 without one.
      return version >= 46
        ? { status: 200, body: { id: matches[0]!.Id, success: true, errors: [], created: false } }
        : { status: 204 };
    }
    const id = this.create(
      Object.fromEntries(
        Object.entries(input).filter(([k]) => k.toLowerCase() !== name.toLowerCase()),
      ),
      { [name]: value },
    );
    return { status: 201, body: { id, success: true, errors: [], created: true } };
  }

  // ---- SOSL ----

  private sosl(q: string | null, v: string): unknown {
    if (!q)
      throw new SfError(
        400,
        'MALFORMED_SEARCH',
        'No search term found. The search term must be enclosed in braces.',
      );
    const m =
      /^\s*FIND\s*\{((?:\\.|[^\\}])*)\}\s*(?:IN\s+(ALL|NAME|EMAIL|PHONE|SIDEBAR)\s+FIELDS\s*)?RETURNING\s+(.+?)(?:\s+LIMIT\s+(\d+))?\s*$/is.exec(
        q,
      );
    if (!m)
      throw new SfError(
        400,
        'MALFORMED_SEARCH',
        `line 1:0 no viable alternative at character '${q.slice(0, 1)}'`,
      );
    const [, term, group, returning, limit] = m;
    // Reserved characters must be escaped with a backslash; unescaped they are operators, and the
    // fake refuses them rather than guess what the search engine would make of "+49 30 ...".
    let text = '';
    for (let i = 0; i < term!.length; i++) {
      const c = term![i]!;
      if (c === '\\') {
        text += term![++i] ?? '';
        continue;
      }
      if (SOSL_RESERVED.has(c))
        throw new SfError(
          400,
          'MALFORMED_SEARCH',
          `line 1:${6 + i} mismatched character '${c}': reserved characters in FIND {} must be escaped`,
        );
      text += c;
    }
    if (text.replace(/[\s*?]/g, '').length < 2)
      throw new SfError(400, 'MALFORMED_SEARCH', 'search term must be longer than one character');
    const kind = (group ?? 'ALL').toUpperCase();
    if (!['PHONE', 'NAME', 'EMAIL'].includes(kind))
      throw new SfError(
        400,
        'MALFORMED_SEARCH',
        'this fake answers IN PHONE, NAME and EMAIL FIELDS searches only',
      );
    // NAME and EMAIL: every word of the term starts a word of those fields (case-insensitive),
    // as SOSL's tokenised search matches; a trailing * is a wildcard, which a word start is anyway.
    const words = text
      .toLowerCase()
      .split(/\s+/)
      .map((w) => w.replace(/[*?]+$/, ''))
      .filter(Boolean);
    const textMatches = (r: SfRecord, fields: string[]): boolean => {
      const tokens = fields.flatMap((f) => {
        const v = String(r[f] ?? '').toLowerCase();
        return [v, ...v.split(/\s+/), ...v.split(/[\s,.;:()@-]+/)];
      });
      return words.every((w) => tokens.some((t) => t.startsWith(w)));
    };
    const wanted = [...returning!.matchAll(/([A-Za-z_]+)\s*(?:\(([^)]*)\))?\s*(?:,|$)/g)];
    const digits = text.replace(/\D/g, '');
    const out: unknown[] = [];
    for (const [, rawObject, list] of wanted) {
      const object = Object.keys(PHONE_FIELDS).find(
        (o) => o.toLowerCase() === rawObject!.toLowerCase(),
      );
      if (!object)
        throw new SfError(400, 'INVALID_TYPE', `sObject type '${rawObject}' is not supported.`);
      const fields = (list ?? 'Id')
        .split(',')
        .map((f) => f.trim())
        .filter(Boolean);
      const names = fields.map((f) => {
        const found = Object.keys(OBJECTS[object]!).find(
          (k) => k.toLowerCase() === f.toLowerCase(),
        );
        if (!found)
          throw new SfError(
            400,
            'INVALID_FIELD',
            `No such column '${f}' on entity '${object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name.`,
          );
        return found;
      });
      const visible = [...this.records[object as 'Contact'].values()].filter(
        (r) => Date.now() - Date.parse(r.CreatedDate) >= this.searchLagMs && r.IsConverted !== true,
      );
      for (const r of visible)
        if (
          kind === 'PHONE'
            ? PHONE_FIELDS[object]!.some((f) => phoneMatches(r[f], digits))
            : textMatches(
                r,
                kind === 'NAME'
                  ? NAME_FIELDS[object]!
                  : [...EMAIL_FIELDS[object]!, ...customEmails(r)],
              )
        )
          out.push(this.view(object, r, v, names));
    }
    return { searchRecords: out.slice(0, Number(limit ?? 2000)) };
  }

  // ---- SOQL (the shapes a recipe uses: SELECT fields FROM object WHERE a = x AND ...) ----

  private soql(q: string | null, v: string): unknown {
    if (!q) throw new SfError(400, 'MALFORMED_QUERY', 'unexpected token: <EOF>');
    const m =
      /^\s*SELECT\s+(.+?)\s+FROM\s+([A-Za-z_]+)(?:\s+WHERE\s+(.+?))?(?:\s+ORDER\s+BY\s+([A-Za-z_]+)(?:\s+(ASC|DESC))?)?(?:\s+LIMIT\s+(\d+))?\s*$/is.exec(
        q,
      );
    if (!m)
      throw new SfError(400, 'MALFORMED_QUERY', `unexpected token: '${q.trim().split(/\s+/)[0]}'`);
    const [, list, rawObject, where, orderBy, dir, limit] = m;
    const object = Object.keys(OBJECTS).find((o) => o.toLowerCase() === rawObject!.toLowerCase());
    if (!object)
      throw new SfError(400, 'INVALID_TYPE', `sObject type '${rawObject}' is not supported.`);
    const defs = object === 'Task' ? this.taskFields : OBJECTS[object]!;
    const name = (f: string): string => {
      const found = Object.keys(defs).find((k) => k.toLowerCase() === f.trim().toLowerCase());
      if (!found)
        throw new SfError(
          400,
          'INVALID_FIELD',
          `No such column '${f.trim()}' on entity '${object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name.`,
        );
      return found;
    };
    const fields = list!.split(',').map(name);
    const conds = where ? parseWhere(where).map(([f, val]) => [name(f), val] as const) : [];
    let rows = [...this.records[object as 'Task'].values()].filter((r) =>
      conds.every(([f, val]) =>
        typeof val === 'string'
          ? String(r[f] ?? '').toLowerCase() === val.toLowerCase()
          : r[f] === val,
      ),
    );
    if (orderBy) {
      const f = name(orderBy);
      const d = dir?.toUpperCase() === 'DESC' ? -1 : 1;
      rows = rows.sort((a, b) => d * String(a[f] ?? '').localeCompare(String(b[f] ?? '')));
    }
    const records = rows
      .slice(0, limit ? Number(limit) : 2000)
      .map((r) => this.view(object, r, v, fields));
    return { totalSize: records.length, done: true, records };
  }
}

/** WHERE a = 'x' AND b = true ...: SOQL's reserved ' and \ must be escaped inside literals. */
function parseWhere(where: string): [string, string | boolean | number][] {
  const out: [string, string | boolean | number][] = [];
  let rest = where.trim();
  for (;;) {
    const m = /^([A-Za-z_]+)\s*=\s*/.exec(rest);
    if (!m)
      throw new SfError(400, 'MALFORMED_QUERY', `unexpected token: '${rest.split(/\s+/)[0]}'`);
    rest = rest.slice(m[0].length);
    let value: string | boolean | number;
    if (rest.startsWith("'")) {
      let s = '';
      let i = 1;
      for (; i < rest.length && rest[i] !== "'"; i++) {
        if (rest[i] === '\\') {
          const e = rest[++i];
          if (e === undefined || !'\'"\\nrtbf_%'.includes(e))
            throw new SfError(
              400,
              'MALFORMED_QUERY',
              `Invalid string literal '${rest.slice(0, i + 1)}'. Illegal character sequence '\\${e ?? ''}' in string literal.`,
            );
          s += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e;
        } else s += rest[i];
      }
      if (rest[i] !== "'") throw new SfError(400, 'MALFORMED_QUERY', 'unexpected token: <EOF>');
      value = s;
      rest = rest.slice(i + 1).trim();
    } else {
      const t = /^(true|false|-?\d+(?:\.\d+)?)\b\s*/i.exec(rest);
      if (!t)
        throw new SfError(400, 'MALFORMED_QUERY', `unexpected token: '${rest.split(/\s+/)[0]}'`);
      value = /^(true|false)$/i.test(t[1]!) ? t[1]!.toLowerCase() === 'true' : Number(t[1]);
      rest = rest.slice(t[0].length);
    }
    out.push([m[1]!, value]);
    if (!rest) return out;
    const and = /^AND\s+/i.exec(rest);
    if (!and)
      throw new SfError(400, 'MALFORMED_QUERY', `unexpected token: '${rest.split(/\s+/)[0]}'`);
    rest = rest.slice(and[0].length);
  }
}

/**
 * Whether a stored phone value matches a search's digits. Punctuation and spaces are ignored; the
 * digits must be the stored number's, or their tail (a national number finds "+386 62 975 9787"),
 * or the stored number's digits must be the search's tail. So a national search also finds the
 * look-alikes of other countries, and the caller must compare the numbers it gets back.
 */
function phoneMatches(stored: unknown, digits: string): boolean {
  if (typeof stored !== 'string' || digits.length < 2) return false;
  const s = stored.replace(/\D/g, '');
  if (s.length < 2) return false;
  return (
    s === digits ||
    (digits.length >= 7 && s.endsWith(digits)) ||
    (s.length >= 7 && digits.endsWith(s))
  );
}
