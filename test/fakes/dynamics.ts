// A fake Microsoft Dataverse environment (Dynamics 365) and the Microsoft Entra token endpoint it
// trusts, both on one 127.0.0.1 port, that hold a recipe to what Microsoft documents, so that a
// wrong recipe fails here rather than in a customer's environment. It follows (docs/crm-notes.md
// G): Entra "OAuth 2.0 client credentials flow" (form body, scope `<environment>/.default`,
// variable token lifetime); the Dataverse Web API pages "Query data" ($filter eq, $select, $top,
// $orderby), "Perform conditional operations" (If-None-Match / If-Match: *), "Use Upsert",
// "Update and delete table rows" (statecode with statuscode), "Compose HTTP requests and handle
// errors" (the error body) and "Service protection API limits" (429, Retry-After, 0x80072322 /
// 0x80072326); the phonecall, contact, lead, systemuser and activityparty table references
// (lengths, types, state and status pairs, participation types 1 From and 2 To).
// Where the documents are silent the fake takes the stricter reading and says so in a comment
// ("unverified"); the switches `partiesInPatch` and `sameStateChange` let a test try the other.
// Faults for tests: a 500/503 share, lost answers (the write is done, the connection dropped),
// forced 429s, a request window and a concurrency cap, expired tokens, slow answers.

import { parsePhoneNumberFromString } from 'libphonenumber-js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { CrmFake, readRequest, seededRandom } from './local-server.js';

export const API = '/api/data/v9.2';

type Set_ = 'contacts' | 'leads' | 'systemusers';
export type Row = Record<string, unknown>;

type Fault =
  | { status: number; body?: unknown; headers?: Record<string, string> }
  | { lose: true }
  | { reset: true };

/** Dataverse's error body (compose-http-requests-handle-errors). */
export const dvError = (code: string, message: string) => ({ error: { code, message } });

/** The columns each queried table has here (a real table has many more; these are enough). */
const COLUMNS: Record<Set_, Record<string, 'string' | 'boolean' | 'datetime' | 'guid'>> = {
  contacts: {
    contactid: 'guid',
    fullname: 'string',
    firstname: 'string',
    lastname: 'string',
    emailaddress1: 'string',
    telephone1: 'string',
    telephone2: 'string',
    mobilephone: 'string',
    createdon: 'datetime',
    _parentcustomerid_value: 'guid',
  },
  leads: {
    leadid: 'guid',
    fullname: 'string',
    firstname: 'string',
    lastname: 'string',
    companyname: 'string',
    emailaddress1: 'string',
    telephone1: 'string',
    mobilephone: 'string',
    createdon: 'datetime',
  },
  systemusers: {
    systemuserid: 'guid',
    fullname: 'string',
    internalemailaddress: 'string',
    isdisabled: 'boolean',
    createdon: 'datetime',
  },
};
const KEY: Record<Set_ | 'phonecalls', string> = {
  contacts: 'contactid',
  leads: 'leadid',
  systemusers: 'systemuserid',
  phonecalls: 'activityid',
};
const ENTITY: Record<Set_ | 'phonecalls', string> = {
  contacts: 'contact',
  leads: 'lead',
  systemusers: 'systemuser',
  phonecalls: 'phonecall',
};

/** Phonecall's writable scalar columns and their limits (phonecall table reference). */
const CALL_FIELDS: Record<
  string,
  { type: 'string' | 'memo' | 'boolean' | 'int' | 'datetime' | 'option'; max?: number }
> = {
  subject: { type: 'string', max: 200 },
  description: { type: 'memo', max: 2000 },
  phonenumber: { type: 'string', max: 200 },
  category: { type: 'string', max: 250 },
  subcategory: { type: 'string', max: 250 },
  directioncode: { type: 'boolean' },
  actualdurationminutes: { type: 'int' },
  scheduleddurationminutes: { type: 'int' },
  actualstart: { type: 'datetime' },
  actualend: { type: 'datetime' },
  scheduledstart: { type: 'datetime' },
  scheduledend: { type: 'datetime' },
  statecode: { type: 'option' },
  statuscode: { type: 'option' },
  activityid: { type: 'string' },
};
/** statecode -> its statuscodes: 0 Open: 1 Open; 1 Completed: 2 Made, 4 Received; 2 Canceled: 3. */
const STATUS: Record<number, number[]> = { 0: [1], 1: [2, 4], 2: [3] };
/** The status a state change without statuscode gets (each state's default). */
const DEFAULT_STATUS: Record<number, number> = { 0: 1, 1: 2, 2: 3 };

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Edm.DateTimeOffset as JSON: ISO 8601 with Z or an offset. */
const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$/;

const newGuid = (): string => {
  const h = randomBytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20)}`;
};

export class FakeDynamics extends CrmFake {
  readonly contacts = new Map<string, Row>();
  readonly leads = new Map<string, Row>();
  readonly users = new Map<string, Row>();
  readonly phonecalls = new Map<string, Row>();
  /** Every token request: its form (secrets included: tests only) and the status it got. */
  readonly tokenRequests: { form: Record<string, string>; status: number }[] = [];
  /** Every API request as it arrived (not token requests). */
  readonly requests: {
    method: string;
    path: string;
    query: Record<string, string>;
    headers: Record<string, string | undefined>;
    body: unknown;
    /** When it arrived (ms), for tests of waits. */
    at: number;
  }[] = [];
  /** Access tokens issued and when each expires (ms). */
  readonly tokens = new Map<string, number>();
  /** Faults applied, in order, to API requests whose "METHOD /path" starts with `match`. */
  readonly faults: { match: string; fault: Fault }[] = [];
  /** Share of API requests answered 500 or 503 before they do anything (0..1). */
  failRate = 0;
  /** Share of writes (PATCH, POST) that are done and then lose their answer (0..1). */
  lostRate = 0;
  /** The next this-many API requests get 429 0x80072322. */
  rateLimitNext = 0;
  /** The request window per user (Dataverse's default: 6000 in 300 s). */
  window = { requests: 6000, seconds: 300 };
  /** Seconds a 429 asks the client to wait (Retry-After). */
  retryAfterSec = 1;
  /** Requests in flight at once before 429 0x80072326 (Dataverse's default: 52). */
  concurrency = 52;
  /** Fixed token lifetime in seconds; undefined: 60 to 90 minutes, as Entra varies it. */
  tokenLifetimeSec: number | undefined;
  /** Process every API request this late (keeps requests in flight). */
  delayMs = 0;
  /** While set, admitted API requests wait for it (in flight, counting toward concurrency). */
  gate: Promise<void> | undefined;
  /**
   * Whether a PATCH may carry phonecall_activity_parties. Unverified: deep insert is documented
   * for POST; the fake accepts the collection in a PATCH (create or update, replacing the list)
   * unless this is false, when it answers 400 as for a property it does not know.
   */
  partiesInPatch = true;
  /**
   * A state change to the state a record already has (statecode 1 on a completed call, 0 on an
   * open one). Unverified; 'ok' applies it as a no-op, 'refuse' answers 400.
   */
  sameStateChange: 'ok' | 'refuse' = 'ok';
  /** The application user the client's tokens act as, and its org (WhoAmI's answer). */
  readonly applicationUserId = newGuid();
  readonly businessUnitId = newGuid();
  readonly organizationId = newGuid();
  private inFlight = 0;
  private readonly recent: number[] = [];
  private random: () => number;
  readonly tenant: string;
  readonly client: { clientId: string; clientSecret: string };
  /** Whether the environment has Dynamics 365 Sales (the lead table). */
  readonly hasLeads: boolean;

  constructor(
    o: {
      tenant?: string;
      clientId?: string;
      clientSecret?: string;
      leads?: boolean;
      seed?: number;
    } = {},
  ) {
    super();
    this.tenant = o.tenant ?? '0f4c2a9e-5b1d-4e63-9a57-3c1b8e2d7f60';
    this.client = {
      clientId: o.clientId ?? '6a1d3c5e-7f92-4b08-8e41-2d9c0b7a5f13',
      clientSecret: o.clientSecret ?? `dv~${randomBytes(12).toString('hex')}`,
    };
    this.hasLeads = o.leads ?? true;
    this.random = seededRandom(o.seed ?? 26);
  }

  /** The environment URL a recipe is given (vars.environmentUrl) and the token's scope. */
  get environmentUrl(): string {
    return this.url;
  }

  get tokenUrl(): string {
    return `${this.url}/${this.tenant}/oauth2/v2.0/token`;
  }

  /** A contact; `createdAt` backdates it (ms). Answers its id. */
  addContact(fields: Row, createdAt = Date.now()): string {
    return this.add('contacts', fields, createdAt);
  }

  /** A lead (only in an environment with leads). Answers its id. */
  addLead(fields: Row, createdAt = Date.now()): string {
    if (!this.hasLeads) throw new Error('this environment has no lead table');
    return this.add('leads', fields, createdAt);
  }

  /** A user (systemuser); answers its id. */
  addUser(email: string, fullname = email.split('@')[0]!, isdisabled = false): string {
    return this.add('systemusers', { internalemailaddress: email, fullname, isdisabled });
  }

  private add(set: Set_, fields: Row, createdAt = Date.now()): string {
    const id = newGuid();
    const full = [fields.firstname, fields.lastname].filter(Boolean).join(' ');
    const row: Row = {
      ...(set === 'systemusers' ? {} : { fullname: full }),
      ...fields,
      [KEY[set]]: id,
      createdon: new Date(createdAt).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    };
    this.table(set).set(id, row);
    return id;
  }

  private table(set: Set_): Map<string, Row> {
    return set === 'contacts' ? this.contacts : set === 'leads' ? this.leads : this.users;
  }

  /**
   * The callers of the sample flows as people type numbers into Dataverse, which keeps the text
   * as typed: E.164, the national form with its trunk 0, and (when `spaced`) the international
   * form with spaces, which no exact `eq` on a normalised number can find. Before each, a
   * look-alike in another country (same national digits) and, with leads, a lead with the same
   * number made later. Answers e164 -> the contact a recipe should find.
   */
  seedCallers(e164s: Iterable<string>, o: { spaced?: boolean } = {}): Map<string, string> {
    const out = new Map<string, string>();
    let i = 0;
    for (const e164 of e164s) {
      if (out.has(e164)) continue;
      const p = parsePhoneNumberFromString(e164);
      if (!p) continue;
      const cc = `+${p.countryCallingCode}`;
      const national = String(p.nationalNumber);
      const other = cc === '+44' ? '+49' : '+44';
      this.addContact(
        { lastname: 'Look-alike', telephone1: `${other}${national}` },
        Date.now() - 9e8,
      );
      const forms = [
        { telephone1: e164 },
        { mobilephone: e164 },
        { telephone1: `0${national}` },
        ...(o.spaced ? [{ mobilephone: p.formatInternational() }] : []),
      ];
      const where = forms[i++ % forms.length]!;
      out.set(
        e164,
        this.addContact({ firstname: 'Dana', lastname: e164, ...where }, Date.now() - 1e6),
      );
      if (this.hasLeads) this.addLead({ lastname: 'Lead', companyname: 'Far', mobilephone: e164 });
    }
    return out;
  }

  /** Every access token issued so far expires now. */
  expireTokens(): void {
    for (const t of this.tokens.keys()) this.tokens.set(t, 0);
  }

  /** The phonecalls whose description contains `text`. */
  callsWith(text: string): Row[] {
    return [...this.phonecalls.values()].filter((c) => String(c.description ?? '').includes(text));
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { method, url, query, raw, body } = await readRequest(req);
    const send = (status: number, body?: unknown, headers: Record<string, string> = {}): void => {
      if (res.destroyed) return;
      this.log.push({ method, path: url.pathname, status });
      if (body === undefined) {
        res.writeHead(status, { 'OData-Version': '4.0', ...headers });
        return void res.end();
      }
      res.writeHead(status, {
        'content-type': 'application/json; odata.metadata=minimal',
        'OData-Version': '4.0',
        ...headers,
      });
      res.end(JSON.stringify(body));
    };

    if (
      url.pathname === `/${this.tenant}/oauth2/v2.0/token` ||
      /\/oauth2\/v2\.0\/token$/.test(url.pathname)
    )
      return this.token(method, url.pathname, raw, req, send);

    this.requests.push({
      method,
      path: url.pathname,
      query,
      headers: {
        authorization: req.headers.authorization,
        'if-none-match': req.headers['if-none-match'],
        'if-match': String(req.headers['if-match'] ?? '') || undefined,
        prefer: String(req.headers.prefer ?? '') || undefined,
      },
      body,
      at: Date.now(),
    });

    // Unverified: Dataverse answers a missing or dead token 401 with an empty body and a
    // WWW-Authenticate challenge naming the authority.
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    const exp = bearer ? this.tokens.get(bearer) : undefined;
    if (exp === undefined || exp <= Date.now())
      return send(401, undefined, {
        'WWW-Authenticate': `Bearer authorization_uri=${this.url}/${this.tenant}/oauth2/authorize, resource_id=${this.url}/`,
      });

    const key = `${method} ${url.pathname}`;
    const fi = this.faults.findIndex((f) => key.startsWith(f.match));
    const fault = fi >= 0 ? this.faults.splice(fi, 1)[0]!.fault : undefined;
    if (fault && 'reset' in fault) return void req.socket.destroy();
    if (fault && 'status' in fault)
      return send(fault.status, fault.body ?? dvError('', 'injected'), fault.headers);

    const retry = { 'Retry-After': String(this.retryAfterSec) };
    const now = Date.now();
    while (this.recent.length && this.recent[0]! <= now - this.window.seconds * 1000)
      this.recent.shift();
    if (this.rateLimitNext > 0 || this.recent.length >= this.window.requests) {
      if (this.rateLimitNext > 0) this.rateLimitNext--;
      return send(
        429,
        dvError(
          '0x80072322',
          `Number of requests exceeded the limit of ${this.window.requests} over time window of ${this.window.seconds} seconds.`,
        ),
        retry,
      );
    }
    if (this.inFlight >= this.concurrency)
      return send(
        429,
        dvError(
          '0x80072326',
          `Number of concurrent requests exceeded the limit of ${this.concurrency}.`,
        ),
        retry,
      );
    this.recent.push(now);
    this.inFlight++;
    try {
      if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
      if (this.gate) await this.gate;
      if (this.failRate && this.random() < this.failRate) {
        const status = this.random() < 0.5 ? 500 : 503;
        return send(status, dvError('0x80040216', 'An unexpected error occurred.'));
      }
      const lose =
        (fault && 'lose' in fault) ||
        (method !== 'GET' && this.lostRate > 0 && this.random() < this.lostRate);
      const answer = (status: number, payload?: unknown, headers?: Record<string, string>) => {
        if (lose && status < 400) return void req.socket.destroy(); // done, answer never arrives
        send(status, payload, headers);
      };
      this.route(method, url, query, body, raw, req, send, answer);
    } finally {
      this.inFlight--;
    }
  }

  private token(
    method: string,
    path: string,
    raw: string,
    req: IncomingMessage,
    send: (s: number, b?: unknown, h?: Record<string, string>) => void,
  ): void {
    const form = Object.fromEntries(new URLSearchParams(raw));
    const reply = (status: number, answer: Record<string, unknown>): void => {
      this.tokenRequests.push({ form, status });
      send(status, answer);
    };
    const aad = (status: number, error: string, description: string) =>
      reply(status, {
        error,
        error_description: description,
        error_codes: [Number(/\d+/.exec(description)?.[0])],
      });
    if (method !== 'POST')
      return aad(405, 'invalid_request', 'AADSTS900561: The endpoint only accepts POST requests.');
    if (path !== `/${this.tenant}/oauth2/v2.0/token`)
      return aad(400, 'invalid_request', `AADSTS90002: Tenant '${path.split('/')[1]}' not found.`);
    if (!String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded'))
      return aad(
        400,
        'invalid_request',
        "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
      );
    if (form.grant_type !== 'client_credentials')
      return aad(
        400,
        'unsupported_grant_type',
        'AADSTS70003: The app requested an unsupported grant type.',
      );
    if (form.client_id !== this.client.clientId)
      return aad(
        400,
        'unauthorized_client',
        `AADSTS700016: Application with identifier '${form.client_id ?? ''}' was not found in the directory.`,
      );
    if (form.client_secret !== this.client.clientSecret)
      return aad(
        401,
        'invalid_client',
        `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${this.client.clientId}'.`,
      );
    if (form.scope !== `${this.url}/.default`)
      return aad(
        400,
        'invalid_scope',
        `AADSTS1002012: The provided value for scope ${form.scope ?? ''} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      );
    const life = this.tokenLifetimeSec ?? 3600 + Math.floor(this.random() * 1800);
    const token = `eyJ0eXAiOiJKV1Qi.${randomBytes(18).toString('base64url')}`;
    this.tokens.set(token, Date.now() + life * 1000);
    reply(200, {
      token_type: 'Bearer',
      expires_in: life,
      ext_expires_in: life,
      access_token: token,
    });
  }

  private route(
    method: string,
    url: URL,
    query: Record<string, string>,
    body: unknown,
    raw: string,
    req: IncomingMessage,
    send: (s: number, b?: unknown, h?: Record<string, string>) => void,
    answer: (s: number, b?: unknown, h?: Record<string, string>) => void,
  ): void {
    const p = url.pathname;
    if (!p.startsWith(`${API}/`))
      return send(
        404,
        dvError('0x8006088a', `Resource not found for the segment '${p.split('/')[1] ?? ''}'.`),
      );
    const seg = p.slice(API.length + 1);
    const one = /^(phonecalls)\(([^)]*)\)$/.exec(seg);
    if (one) {
      const id = one[2]!;
      if (!GUID.test(id))
        return send(400, dvError('0x80060888', `Bad Request - Error in query syntax.`));
      const lower = id.toLowerCase();
      if (method === 'GET') return this.getCall(lower, query, send);
      if (method === 'PATCH') {
        if (!this.json(raw, body, req, send)) return;
        return this.patchCall(lower, body as Row, req, query, send, answer);
      }
      return send(405, dvError('0x80060888', `The HTTP method '${method}' is not allowed.`));
    }
    if (seg === 'phonecalls' && method === 'POST') {
      if (!this.json(raw, body, req, send)) return;
      const b = body as Row;
      const id =
        typeof b.activityid === 'string' && GUID.test(b.activityid)
          ? b.activityid.toLowerCase()
          : newGuid();
      if (this.phonecalls.has(id))
        return send(
          412,
          dvError('0x80040237', 'A record with matching key values already exists.'),
        );
      return this.patchCall(id, b, req, query, send, answer, true);
    }
    if (method === 'GET' && seg === 'WhoAmI')
      // The WhoAmI function: who the token is (an application user of its own).
      return send(200, {
        '@odata.context': `${this.url}${API}/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse`,
        BusinessUnitId: this.businessUnitId,
        UserId: this.applicationUserId,
        OrganizationId: this.organizationId,
      });
    if (method === 'GET' && (seg === 'contacts' || seg === 'leads' || seg === 'systemusers')) {
      if (seg === 'leads' && !this.hasLeads)
        // Inferred: the OData router's answer for an entity set the model does not have.
        return send(404, dvError('0x8006088a', "Resource not found for the segment 'leads'."));
      return this.query(seg, query, send);
    }
    send(
      404,
      dvError('0x8006088a', `Resource not found for the segment '${seg.split(/[(/?]/)[0]}'.`),
    );
  }

  /** A body must be a JSON object sent as application/json. */
  private json(
    raw: string,
    body: unknown,
    req: IncomingMessage,
    send: (s: number, b?: unknown) => void,
  ): boolean {
    if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) {
      send(415, dvError('0x80060888', 'The content type of the request is not supported.'));
      return false;
    }
    if (!raw || typeof body !== 'object' || body === null || Array.isArray(body)) {
      send(400, dvError('0x80060888', 'The request body is not a valid JSON object.'));
      return false;
    }
    return true;
  }

  // --- queries -----------------------------------------------------------------------------

  private query(
    set: Set_,
    q: Record<string, string>,
    send: (s: number, b?: unknown) => void,
  ): void {
    const cols = COLUMNS[set];
    const type = `Microsoft.Dynamics.CRM.${ENTITY[set]}`;
    const unknown = (name: string) =>
      send(
        400,
        dvError('0x80060888', `Could not find a property named '${name}' on type '${type}'.`),
      );
    for (const k of Object.keys(q))
      if (k.startsWith('$') && !['$select', '$filter', '$top', '$orderby', '$count'].includes(k))
        return send(400, dvError('0x80060888', `The query parameter '${k}' is not supported.`));
    const select = q.$select?.split(',').map((s) => s.trim());
    for (const c of select ?? []) if (!(c in cols)) return unknown(c);
    let rows = [...this.table(set).values()];
    if (q.$filter !== undefined) {
      const f = parseFilter(q.$filter);
      if (typeof f === 'string') return send(400, dvError('0x80060888', f));
      for (const c of f.columns) if (!(c in cols)) return unknown(c);
      rows = rows.filter(f.test);
    }
    if (q.$orderby !== undefined) {
      const m = /^\s*(\w+)(?:\s+(asc|desc))?\s*$/.exec(q.$orderby);
      if (!m) return send(400, dvError('0x80060888', 'Syntax error in $orderby.'));
      if (!(m[1]! in cols)) return unknown(m[1]!);
      const dir = m[2] === 'desc' ? -1 : 1;
      rows.sort((a, b) => (String(a[m[1]!] ?? '') < String(b[m[1]!] ?? '') ? -dir : dir));
    }
    if (q.$top !== undefined) {
      const n = Number(q.$top);
      if (!Number.isInteger(n) || n < 0)
        return send(
          400,
          dvError('0x80060888', `Invalid value '${q.$top}' for $top query option found.`),
        );
      rows = rows.slice(0, n);
    }
    const shown = select ?? Object.keys(cols);
    const value = rows.map((r) => ({
      '@odata.etag': `W/"${String(r.createdon).replace(/\D/g, '')}"`,
      ...Object.fromEntries(shown.map((c) => [c, r[c] ?? null])),
      [KEY[set]]: r[KEY[set]],
    }));
    send(200, {
      '@odata.context': `${this.url}${API}/$metadata#${set}(${shown.join(',')})`,
      value,
    });
  }

  private getCall(
    id: string,
    q: Record<string, string>,
    send: (s: number, b?: unknown) => void,
  ): void {
    const c = this.phonecalls.get(id);
    if (!c) return send(404, dvError('0x80040217', `phonecall With Id = ${id} Does Not Exist`));
    const select = q.$select?.split(',').map((s) => s.trim());
    for (const s of select ?? [])
      if (!(s in CALL_FIELDS) && !/^_\w+_value$/.test(s))
        return send(
          400,
          dvError(
            '0x80060888',
            `Could not find a property named '${s}' on type 'Microsoft.Dynamics.CRM.phonecall'.`,
          ),
        );
    const shown = select ? Object.fromEntries(select.map((s) => [s, c[s] ?? null])) : this.shape(c);
    send(200, {
      '@odata.context': `${this.url}${API}/$metadata#phonecalls/$entity`,
      ...shown,
      activityid: id,
    });
  }

  /** A phonecall as Dataverse answers it: scalar columns, lookups as _x_value. */
  private shape(c: Row): Row {
    const { parties: _p, ...rest } = c;
    void _p;
    return rest;
  }

  // --- writes ------------------------------------------------------------------------------

  private patchCall(
    id: string,
    b: Row,
    req: IncomingMessage,
    q: Record<string, string>,
    send: (s: number, b?: unknown, h?: Record<string, string>) => void,
    answer: (s: number, b?: unknown, h?: Record<string, string>) => void,
    post = false,
  ): void {
    const existing = this.phonecalls.get(id);
    const ifNoneMatch = req.headers['if-none-match'];
    const ifMatch = req.headers['if-match'];
    if (ifNoneMatch === '*' && existing)
      return send(412, dvError('0x80040237', 'A record with matching key values already exists.'));
    if (ifMatch === '*' && !existing)
      return send(404, dvError('0x80040217', `phonecall With Id = ${id} Does Not Exist`));
    const bad = (code: string, message: string, status = 400) =>
      send(status, dvError(code, message));
    const undeclared = (name: string) =>
      bad(
        '0x80060888',
        `The property '${name}' does not exist on type 'Microsoft.Dynamics.CRM.phonecall'. Make sure to only use property names that are defined by the type or mark the type as open type.`,
      );
    const binds: Record<string, { set: Set_ | 'teams'; column: string }> = {
      'ownerid@odata.bind': { set: 'systemusers', column: '_ownerid_value' },
      'regardingobjectid_contact_phonecall@odata.bind': {
        set: 'contacts',
        column: '_regardingobjectid_value',
      },
      ...(this.hasLeads
        ? {
            'regardingobjectid_lead_phonecall@odata.bind': {
              set: 'leads' as const,
              column: '_regardingobjectid_value',
            },
          }
        : {}),
    };
    const next: Row = {};
    let parties: Row[] | undefined;
    for (const [k, v] of Object.entries(b)) {
      if (k === 'phonecall_activity_parties') {
        if (!this.partiesInPatch && !post) return undeclared(k);
        const checked = this.parties(v);
        if (typeof checked === 'string') {
          const missing = checked.endsWith('Does Not Exist');
          return bad(missing ? '0x80040217' : '0x80060888', checked, missing ? 404 : 400);
        }
        parties = checked;
        continue;
      }
      if (k.endsWith('@odata.bind')) {
        // Unverified: `regardingobjectid_contact` (activitypointer's) is refused here, as the
        // stricter reading; the phonecall's own navigation property is documented.
        const spec = binds[k];
        if (!spec) return undeclared(k.replace(/@odata\.bind$/, ''));
        if (v === null) {
          next[spec.column] = null;
          continue;
        }
        const ref = bindRef(v);
        if (!ref || ref.set !== spec.set)
          return bad(
            '0x80060888',
            `An error occurred while processing the @odata.bind '${String(v)}'.`,
          );
        const target = this.table(ref.set as Set_).get(ref.id);
        if (!target)
          // Unverified whether a bind to a missing row answers 404 or 400 (the message is
          // Dataverse's).
          return bad(
            '0x80040217',
            `${ENTITY[ref.set as Set_]} With Id = ${ref.id} Does Not Exist`,
            404,
          );
        if (ref.set === 'systemusers' && target.isdisabled === true)
          // Inferred: a disabled user cannot own records.
          return bad('', `The user with id ${ref.id} is disabled.`);
        next[spec.column] = ref.id;
        if (spec.column === '_regardingobjectid_value')
          next._regardingobjectid_type = ENTITY[ref.set as Set_];
        continue;
      }
      const spec = CALL_FIELDS[k];
      if (!spec) return undeclared(k);
      if (v === null) {
        next[k] = null;
        continue;
      }
      const wrongType = (t: string) =>
        bad(
          '0x80060888',
          `Cannot convert the literal '${JSON.stringify(v)}' to the expected type '${t}'.`,
        );
      switch (spec.type) {
        case 'string':
        case 'memo':
          if (typeof v !== 'string') return wrongType('Edm.String');
          if (spec.max !== undefined && v.length > spec.max)
            return bad(
              '',
              `A validation error occurred. The length of the '${k}' attribute of the 'phonecall' entity exceeded the maximum allowed length of '${spec.max}'.`,
            );
          break;
        case 'boolean':
          if (typeof v !== 'boolean') return wrongType('Edm.Boolean');
          break;
        case 'int':
          if (typeof v !== 'number' || !Number.isInteger(v)) return wrongType('Edm.Int32');
          if (v < 0 || v > 2147483647)
            return bad(
              '',
              `A validation error occurred. The value ${v} of '${k}' is outside the valid range (0 to 2147483647).`,
            );
          break;
        case 'datetime':
          if (typeof v !== 'string' || !DATETIME.test(v) || Number.isNaN(Date.parse(v)))
            return wrongType('Edm.DateTimeOffset');
          break;
        case 'option':
          if (typeof v !== 'number' || !Number.isInteger(v)) return wrongType('Edm.Int32');
          break;
      }
      if (k === 'activityid' && String(v).toLowerCase() !== id)
        return bad('0x80060888', 'The key in the request body does not match the key in the URL.');
      next[k] = v;
    }
    if (!existing) {
      // statecode is not valid for Create (3P: 0x80048408 for an activity made as completed).
      if ('statecode' in next || 'statuscode' in next)
        return bad(
          '0x80048408',
          `${'statecode' in next ? 'statecode' : 'statuscode'} is not valid for create: a phonecall is made open and then closed.`,
        );
      const subject = next.subject;
      if (typeof subject !== 'string' || subject === '')
        return bad('0x80040203', "Required field 'subject' is missing.");
      const row: Row = {
        activityid: id,
        statecode: 0,
        statuscode: 1,
        directioncode: true,
        createdon: new Date().toISOString(),
        ...next,
      };
      row.activityid = id;
      if (parties) row.parties = parties;
      this.phonecalls.set(id, row);
      return this.written(id, true, req, q, answer);
    }
    const stateKeys = ['statecode', 'statuscode'];
    const changesState = 'statecode' in next || 'statuscode' in next;
    const others = Object.keys(next).filter((k) => !stateKeys.includes(k)).length > 0 || !!parties;
    const state = existing.statecode as number;
    if (state !== 0 && (others || !changesState))
      // The phonecall reference: completed and canceled calls are read-only. The message is
      // what the SDK answers (3P); the error code is not documented, so it is left empty.
      return bad('', 'Cannot update Closed or Cancelled Activity');
    if (changesState) {
      // Unverified: the stricter reading lets a state change and other columns go together
      // only on an open call (the other columns first, then the state).
      const sc = (next.statecode ?? state) as number;
      if (!(sc in STATUS))
        return bad('', `${String(sc)} is not a valid state code on phonecall with Id ${id}.`);
      const st = (next.statuscode ??
        ('statecode' in next ? DEFAULT_STATUS[sc] : existing.statuscode)) as number;
      if (!STATUS[sc]!.includes(st))
        return bad(
          '0x80040203',
          `${st} is not a valid status code for state code PhoneCallState.${['Open', 'Completed', 'Canceled'][sc]} on phonecall with Id ${id}.`,
        );
      if (sc === state && this.sameStateChange === 'refuse' && 'statecode' in next)
        return bad('0x80040203', `The phonecall with Id ${id} is already in state ${sc}.`);
      next.statecode = sc;
      next.statuscode = st;
    }
    Object.assign(existing, next);
    if (parties) existing.parties = parties;
    existing.modifiedon = new Date().toISOString();
    this.written(id, false, req, q, answer);
  }

  private written(
    id: string,
    created: boolean,
    req: IncomingMessage,
    q: Record<string, string>,
    answer: (s: number, b?: unknown, h?: Record<string, string>) => void,
  ): void {
    const headers = { 'OData-EntityId': `${this.url}${API}/phonecalls(${id})` };
    if (/return=representation/.test(String(req.headers.prefer ?? ''))) {
      const c = this.phonecalls.get(id)!;
      const select = q.$select?.split(',').map((s) => s.trim());
      const shown = select
        ? Object.fromEntries(select.map((s) => [s, c[s] ?? null]))
        : this.shape(c);
      return answer(
        created ? 201 : 200,
        {
          '@odata.context': `${this.url}${API}/$metadata#phonecalls/$entity`,
          ...shown,
          activityid: id,
        },
        headers,
      );
    }
    answer(204, undefined, headers);
  }

  /** phonecall_activity_parties: each a party bind and a mask 1 (From) or 2 (To). */
  private parties(v: unknown): Row[] | string {
    if (!Array.isArray(v)) return 'phonecall_activity_parties must be a collection.';
    const out: Row[] = [];
    const kinds: Record<string, Set_> = {
      'partyid_contact@odata.bind': 'contacts',
      'partyid_systemuser@odata.bind': 'systemusers',
      ...(this.hasLeads ? { 'partyid_lead@odata.bind': 'leads' as const } : {}),
    };
    for (const p of v) {
      if (!p || typeof p !== 'object' || Array.isArray(p))
        return 'An activity party must be an object.';
      const entries = Object.entries(p as Row);
      const bindKeys = entries.filter(([k]) => k.endsWith('@odata.bind'));
      for (const [k] of entries)
        if (k !== 'participationtypemask' && !k.endsWith('@odata.bind'))
          return `The property '${k}' does not exist on type 'Microsoft.Dynamics.CRM.activityparty'.`;
      if (bindKeys.length !== 1) return 'An activity party needs exactly one partyid bind.';
      const [k, ref] = bindKeys[0]!;
      const set = kinds[k];
      if (!set)
        return `The property '${k.replace(/@odata\.bind$/, '')}' does not exist on type 'Microsoft.Dynamics.CRM.activityparty'.`;
      const r = bindRef(ref);
      if (!r || r.set !== set)
        return `An error occurred while processing the @odata.bind '${String(ref)}'.`;
      if (!this.table(set).has(r.id)) return `${ENTITY[set]} With Id = ${r.id} Does Not Exist`;
      const mask = (p as Row).participationtypemask;
      // A phone call has a sender (1, From) and recipients (2, To) only.
      if (mask !== 1 && mask !== 2)
        return `${String(mask)} is not a valid participation type for a phonecall.`;
      out.push({ set, id: r.id, participationtypemask: mask });
    }
    return out;
  }
}

/** "/contacts(<guid>)" or "<environment>/api/data/v9.2/contacts(<guid>)". */
function bindRef(v: unknown): { set: string; id: string } | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /(?:^|\/)(contacts|leads|systemusers|teams)\(([0-9a-fA-F-]{36})\)$/.exec(v);
  if (!m || !GUID.test(m[2]!)) return undefined;
  if (!v.startsWith('/') && !/^https?:\/\/[^/]+\/api\/data\/v9\.\d\//.test(v)) return undefined;
  return { set: m[1]!, id: m[2]!.toLowerCase() };
}

/**
 * OData $filter as far as a recipe needs it: `col eq 'text'`, `col eq true|false|null`,
 * joined by `or` or by `and` (one kind, as without parentheses the precedence would matter),
 * optionally wrapped in parentheses. Strings compare exactly and case-insensitively, as
 * Dataverse's default collation does (inferred). Answers the columns it names and the test, or
 * the error message.
 */
export function parseFilter(s: string): { columns: string[]; test: (r: Row) => boolean } | string {
  const terms: { col: string; value: unknown }[] = [];
  const joins = new Set<string>();
  let src = s.trim();
  while (src.startsWith('(') && src.endsWith(')')) src = src.slice(1, -1).trim();
  let i = 0;
  const ws = () => {
    while (src[i] === ' ') i++;
  };
  while (i < src.length) {
    ws();
    while (src[i] === '(') {
      i++;
      ws();
    }
    const col = /^[A-Za-z_]\w*/.exec(src.slice(i))?.[0];
    if (!col) return `Syntax error at position ${i} in '${s}'.`;
    i += col.length;
    ws();
    if (src.slice(i, i + 3) !== 'eq ') return `Syntax error at position ${i} in '${s}'.`;
    i += 3;
    ws();
    let value: unknown;
    if (src[i] === "'") {
      let out = '';
      i++;
      for (;;) {
        if (i >= src.length) return `Unterminated string literal at position ${i} in '${s}'.`;
        if (src[i] === "'") {
          if (src[i + 1] === "'") {
            out += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        out += src[i++];
      }
      value = out;
    } else {
      const lit = /^(true|false|null)/.exec(src.slice(i))?.[0];
      if (!lit) return `Syntax error at position ${i} in '${s}'.`;
      value = lit === 'null' ? null : lit === 'true';
      i += lit.length;
    }
    terms.push({ col, value });
    ws();
    while (src[i] === ')') {
      i++;
      ws();
    }
    if (i >= src.length) break;
    const j = /^(or|and) /.exec(src.slice(i))?.[1];
    if (!j) return `Syntax error at position ${i} in '${s}'.`;
    joins.add(j);
    i += j.length + 1;
  }
  if (!terms.length) return `The $filter '${s}' is empty.`;
  if (joins.size > 1) return 'The fake takes one kind of join (or / and) per $filter.';
  const one = (r: Row, t: { col: string; value: unknown }): boolean => {
    const v = r[t.col] ?? null;
    if (typeof t.value === 'string')
      return typeof v === 'string' && v.toLowerCase() === t.value.toLowerCase();
    return v === t.value;
  };
  return {
    columns: terms.map((t) => t.col),
    test: joins.has('and')
      ? (r) => terms.every((t) => one(r, t))
      : (r) => terms.some((t) => one(r, t)),
  };
}
