// A fake Zoho CRM (accounts server and API v8 on one 127.0.0.1 port) that holds a recipe to what
// Zoho documents, so that a wrong recipe fails here rather than in a customer's account. It
// follows: Zoho CRM API v8 "Insert/Update Records", "Search Records", "Users", "Status codes"
// and "API limits" (zoho.com/crm/developer/docs/api/v8/), the Kaizen posts #38 (Calls API: what
// is mandatory and what cannot be updated), #82 (Search API), #93 and #203 (credits,
// concurrency, TOO_MANY_REQUESTS), Zoho Accounts "OAuth 2.0 refresh token" (errors answered with
// HTTP 200), and the field lists in Zoho's own SDK (zohocrm-nodejs-sdk-8.0, record/field.js).
// Where the documents are silent the fake takes the stricter reading and says so
// (docs/crm-notes.md F marks those *Unverified*). Faults for tests: a 5xx rate, lost answers (the
// record is made, then the connection is destroyed), forced 429s, expired tokens, search lag.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { CrmFake, readRequest, seededRandom } from './local-server.js';

export interface ZohoUser {
  id: string;
  email: string;
  full_name: string;
  status: 'active' | 'inactive';
}

export interface ZohoRecord {
  id: string;
  /** The field values as Zoho would answer them (lookups as {id, name}). */
  fields: Record<string, unknown>;
  createdAt: number;
}

type Module = 'Contacts' | 'Leads' | 'Calls';

type Fault =
  | { status: number; body?: unknown; headers?: Record<string, string> }
  | { lose: true }
  | { reset: true };

/** Zoho's error body: the same four keys everywhere in the API. */
export const zohoError = (
  code: string,
  message: string,
  details: Record<string, unknown> = {},
): { code: string; details: Record<string, unknown>; message: string; status: 'error' } => ({
  code,
  details,
  message,
  status: 'error',
});

type FieldType = 'text' | 'textarea' | 'datetime' | 'picklist' | 'lookup' | 'owner' | 'website';
interface FieldSpec {
  type: FieldType;
  max?: number;
  values?: string[];
  readOnly?: boolean;
}

/** Calls' writable fields and their types (SDK 8.0 field list; lengths: our reading). */
const CALL_FIELDS: Record<string, FieldSpec> = {
  Subject: { type: 'text', max: 255 },
  Call_Type: { type: 'picklist', values: ['Inbound', 'Outbound', 'Missed'] },
  Call_Start_Time: { type: 'datetime' },
  Call_Duration: { type: 'text', max: 10 },
  Call_Purpose: { type: 'text', max: 120 }, // picklist; Zoho adds a new value rather than refuse it
  Call_Result: { type: 'text', max: 120 }, // as Call_Purpose
  Call_Agenda: { type: 'text', max: 255 },
  Description: { type: 'textarea', max: 32_000 },
  Outgoing_Call_Status: { type: 'picklist', values: ['Scheduled', 'Completed'] },
  Who_Id: { type: 'lookup' },
  What_Id: { type: 'lookup' },
  $se_module: { type: 'picklist', values: ['Leads', 'Accounts', 'Deals', 'Cases', 'Campaigns'] },
  Owner: { type: 'owner' },
  Voice_Recording__s: { type: 'website', max: 255 },
  // Filled by Zoho's telephony (PhoneBridge) integrations; the API cannot write them.
  Caller_ID: { type: 'text', readOnly: true },
  Dialled_Number: { type: 'text', readOnly: true },
  Call_Duration_in_seconds: { type: 'text', readOnly: true },
  CTI_Entry: { type: 'text', readOnly: true },
};

/** The phone-type fields the `phone` search looks in, per module. */
const PHONE_FIELDS_C = ['Phone', 'Mobile', 'Home_Phone', 'Other_Phone', 'Asst_Phone'];
const PHONE_FIELDS: Record<Module, string[]> = {
  Contacts: PHONE_FIELDS_C,
  Leads: ['Phone', 'Mobile'],
  Calls: [],
};
/** The fields every answered record carries (null when empty), as Zoho answers them. */
const STANDARD_FIELDS: Record<Module, string[]> = {
  Contacts: [
    'First_Name',
    'Last_Name',
    'Full_Name',
    'Email',
    'Account_Name',
    'Owner',
    ...PHONE_FIELDS_C,
  ],
  Leads: [
    'First_Name',
    'Last_Name',
    'Full_Name',
    'Email',
    'Company',
    'Lead_Status',
    'Owner',
    'Phone',
    'Mobile',
  ],
  Calls: [...Object.keys(CALL_FIELDS).filter((f) => f !== '$se_module')],
};
/** The text fields the `word` search looks in. */
const WORD_FIELDS: Record<Module, string[]> = {
  Contacts: ['First_Name', 'Last_Name', 'Full_Name', 'Email'],
  Leads: ['First_Name', 'Last_Name', 'Full_Name', 'Email', 'Company'],
  Calls: ['Subject', 'Description'],
};

/** Zoho's date-time: seconds, and an offset (never milliseconds, never "Z"). */
const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$/;
const MMSS = /^\d{1,4}:[0-5]\d$/;
const digits = (s: unknown): string => String(s ?? '').replace(/\D/g, '');

/** A time as Zoho answers it: "2026-03-11T20:00:00+00:00". */
export const zohoTime = (ms: number): string =>
  new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');

export class FakeZoho extends CrmFake {
  readonly contacts = new Map<string, ZohoRecord>();
  readonly leads = new Map<string, ZohoRecord>();
  readonly calls = new Map<string, ZohoRecord>();
  readonly users: ZohoUser[] = [];
  /** Every token request: its parameters (secrets included: tests only) and what it got. */
  readonly tokenRequests: {
    params: Record<string, string>;
    answer: Record<string, unknown>;
    at: number;
  }[] = [];
  /** Every API request as it arrived (not token requests). */
  readonly requests: {
    method: string;
    path: string;
    query: Record<string, string>;
    body: unknown;
    authorization: string | undefined;
  }[] = [];
  /** Access tokens issued and when each expires (ms). */
  readonly tokens = new Map<string, number>();
  /** Faults applied, in order, to requests whose "METHOD /path" starts with `match`. */
  readonly faults: { match: string; fault: Fault }[] = [];
  /** Share of API requests answered 500 INTERNAL_ERROR before they do anything (0..1). */
  failRate = 0;
  /** Share of creates and updates that are done and then lose their answer (0..1). */
  lostRate = 0;
  /** The next this-many API requests get 429 TOO_MANY_REQUESTS. */
  rateLimitNext = 0;
  /** Headers a 429 carries (Zoho documents none; a test may add Retry-After). */
  rateLimitHeaders: Record<string, string> = {};
  /** Requests one app may have in flight at once (Zoho: 5 Free ... 25 Ultimate). */
  concurrency = 10;
  /** How long a new record stays invisible to search (Zoho's search index lags). */
  searchLagMs = 0;
  /** Access-token lifetime in seconds (Zoho: 3600). */
  tokenLifetimeSec = 3600;
  /** Token requests allowed per refresh token in 10 minutes before "Access Denied". */
  tokenRequestsPer10Min = 10;
  /** Process every API request this late (keeps requests in flight). */
  delayMs = 0;
  /** While set, admitted API requests wait for it (in flight, counting toward concurrency). */
  gate: Promise<void> | undefined;
  /** API credits used in all (1 per call, as for a single-record insert, update or search). */
  credits = 0;
  private inFlight = 0;
  private nextId = 5_725_767_000_000_100_000n;
  private tokenSeq = 0;
  private random: () => number;

  constructor(
    readonly client: { clientId: string; clientSecret: string; refreshToken: string },
    o: { seed?: number } = {},
  ) {
    super();
    this.random = seededRandom(o.seed ?? 22);
  }

  private id(): string {
    return String(this.nextId++);
  }

  /** A user of the org; answers its id. */
  addUser(email: string, fullName = email.split('@')[0]!, status: ZohoUser['status'] = 'active') {
    const id = this.id();
    this.users.push({ id, email, full_name: fullName, status });
    return id;
  }

  /** A contact or lead; `createdAt` backdates it (ms). Answers its id. */
  addRecord(
    module: 'Contacts' | 'Leads',
    fields: Record<string, unknown>,
    createdAt = Date.now(),
  ): string {
    const id = this.id();
    const full = [fields.First_Name, fields.Last_Name].filter(Boolean).join(' ');
    const f: Record<string, unknown> = {
      Full_Name: full,
      ...fields,
      Created_Time: zohoTime(createdAt),
    };
    (module === 'Contacts' ? this.contacts : this.leads).set(id, { id, fields: f, createdAt });
    return id;
  }

  /** Make every access token issued so far expired (as an hour passing would). */
  expireTokens(): void {
    for (const t of this.tokens.keys()) this.tokens.set(t, 0);
  }

  /** The calls whose Description contains `text` (a test's view, never lagging). */
  callsWith(text: string): ZohoRecord[] {
    return [...this.calls.values()].filter((c) => String(c.fields.Description).includes(text));
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { method, url, query, raw, body } = await readRequest(req);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      if (res.destroyed) return;
      this.log.push({ method, path: url.pathname, status });
      if (status === 204) {
        res.writeHead(204, headers);
        return void res.end();
      }
      res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8', ...headers });
      res.end(JSON.stringify(body));
    };

    if (url.pathname === '/oauth/v2/token') return this.token(method, url, raw, req, send);

    this.requests.push({
      method,
      path: url.pathname,
      query,
      body,
      authorization: req.headers.authorization,
    });

    // Auth first: Zoho's own scheme name; an unknown or expired token is INVALID_TOKEN.
    const auth = req.headers.authorization ?? '';
    const m = /^Zoho-oauthtoken (\S+)$/.exec(auth);
    if (!m) return send(401, zohoError('AUTHENTICATION_FAILURE', 'Authentication failed'));
    const exp = this.tokens.get(m[1]!);
    if (exp === undefined || exp <= Date.now())
      return send(401, zohoError('INVALID_TOKEN', 'invalid oauth token'));

    const key = `${method} ${url.pathname}`;
    const fi = this.faults.findIndex((f) => key.startsWith(f.match));
    const fault = fi >= 0 ? this.faults.splice(fi, 1)[0]!.fault : undefined;
    if (fault && 'reset' in fault) return void req.socket.destroy();
    if (fault && 'status' in fault)
      return send(
        fault.status,
        fault.body ?? zohoError('INTERNAL_ERROR', 'injected'),
        fault.headers,
      );

    const tooMany = (): void =>
      send(
        429,
        zohoError('TOO_MANY_REQUESTS', 'The number of requests exceeds the limit'),
        this.rateLimitHeaders,
      );
    if (this.rateLimitNext > 0) {
      this.rateLimitNext--;
      return tooMany();
    }
    if (this.inFlight >= this.concurrency) return tooMany();
    this.inFlight++;
    try {
      if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
      if (this.gate) await this.gate;
      if (this.failRate && this.random() < this.failRate)
        return send(
          500,
          zohoError(
            'INTERNAL_ERROR',
            'Internal Server Error occurred while processing this request',
          ),
        );
      this.credits++;
      const lose =
        (fault && 'lose' in fault) ||
        (method !== 'GET' && this.lostRate > 0 && this.random() < this.lostRate);
      const answer = (status: number, payload: unknown): void => {
        if (lose) return void req.socket.destroy(); // done, but the answer never arrives
        send(status, payload);
      };
      this.route(method, url, query, body, raw, req, send, answer);
    } finally {
      this.inFlight--;
    }
  }

  private token(
    method: string,
    url: URL,
    raw: string,
    req: IncomingMessage,
    send: (s: number, b: unknown) => void,
  ): void {
    // Zoho takes the parameters in the query string or as a form body; we accept both.
    const params: Record<string, string> = Object.fromEntries(url.searchParams);
    const type = String(req.headers['content-type'] ?? '');
    if (raw && type.includes('application/x-www-form-urlencoded'))
      Object.assign(params, Object.fromEntries(new URLSearchParams(raw)));
    const reply = (status: number, answer: Record<string, unknown>): void => {
      this.tokenRequests.push({ params, answer, at: Date.now() });
      send(status, answer);
    };
    if (method !== 'POST') return reply(405, { error: 'invalid_request' });
    const recent = this.tokenRequests.filter(
      (t) =>
        t.params.refresh_token === params.refresh_token &&
        'access_token' in t.answer &&
        t.at > Date.now() - 600_000,
    ).length;
    // Zoho answers these with HTTP 200 and no access_token: the body, not the status, says it.
    if (params.grant_type !== 'refresh_token')
      return reply(200, { error: 'unsupported_grant_type' });
    if (params.client_id !== this.client.clientId) return reply(200, { error: 'invalid_client' });
    if (params.client_secret !== this.client.clientSecret)
      return reply(200, { error: 'invalid_client_secret' });
    if (params.refresh_token !== this.client.refreshToken)
      return reply(200, { error: 'invalid_code' });
    if (recent >= this.tokenRequestsPer10Min)
      return reply(400, {
        error_description:
          'You have made too many requests continuously. Please try again after some time.',
        error: 'Access Denied',
        status: 'failure',
      });
    const token = `1000.fake${++this.tokenSeq}.${Math.floor(this.random() * 1e9).toString(16)}`;
    this.tokens.set(token, Date.now() + this.tokenLifetimeSec * 1000);
    reply(200, {
      access_token: token,
      scope: 'ZohoCRM.modules.ALL ZohoCRM.users.READ',
      api_domain: this.url,
      token_type: 'Bearer',
      expires_in: this.tokenLifetimeSec,
    });
  }

  private route(
    method: string,
    url: URL,
    query: Record<string, string>,
    body: unknown,
    raw: string,
    req: IncomingMessage,
    send: (s: number, b: unknown) => void,
    answer: (s: number, b: unknown) => void,
  ): void {
    const p = url.pathname;
    if (method === 'GET' && p === '/crm/v8/users') return this.usersList(query, send);
    const search = /^\/crm\/v8\/(Contacts|Leads|Calls)\/search$/.exec(p);
    if (method === 'GET' && search) return this.search(search[1] as Module, query, send);
    if (p === '/crm/v8/Calls' || /^\/crm\/v8\/Calls\/\d+$/.test(p)) {
      if (raw && !String(req.headers['content-type'] ?? '').includes('application/json'))
        return send(415, zohoError('INVALID_REQUEST', 'unsupported media type'));
      if (raw && typeof body === 'string')
        return send(400, zohoError('INVALID_DATA', 'body is not a valid JSON'));
      const id = /\/(\d+)$/.exec(p)?.[1];
      if (method === 'POST' && !id) return this.write('create', body, undefined, answer);
      if (method === 'PUT') return this.write('update', body, id, answer);
      if (method === 'GET' && id) {
        const c = this.calls.get(id);
        return c ? send(200, { data: [this.shape('Calls', c)] }) : send(204, undefined);
      }
    }
    // Zoho's answer for a path it does not know.
    send(
      404,
      zohoError('INVALID_URL_PATTERN', 'Please check if the URL trying to access is a correct one'),
    );
  }

  private usersList(query: Record<string, string>, send: (s: number, b: unknown) => void): void {
    const type = query.type ?? 'AllUsers';
    const known = ['AllUsers', 'ActiveUsers', 'DeactiveUsers', 'AdminUsers', 'CurrentUser'];
    if (!known.includes(type))
      return send(400, zohoError('INVALID_DATA', 'invalid data', { param_name: 'type' }));
    const users = this.users.filter(
      (u) =>
        type === 'AllUsers' ||
        (type === 'ActiveUsers' && u.status === 'active') ||
        (type === 'DeactiveUsers' && u.status === 'inactive'),
    );
    const page = this.paging(query, send);
    if (!page) return;
    const slice = users.slice((page.page - 1) * page.perPage, page.page * page.perPage);
    if (!slice.length) return send(204, undefined);
    send(200, {
      users: slice,
      info: {
        per_page: page.perPage,
        count: slice.length,
        page: page.page,
        more_records: page.page * page.perPage < users.length,
      },
    });
  }

  /** page and per_page (per_page at most 200, default 200); undefined when answered already. */
  private paging(
    query: Record<string, string>,
    send: (s: number, b: unknown) => void,
  ): { page: number; perPage: number } | undefined {
    const page = query.page === undefined ? 1 : Number(query.page);
    const perPage = query.per_page === undefined ? 200 : Number(query.per_page);
    if (!Number.isInteger(page) || page < 1) {
      send(400, zohoError('INVALID_DATA', 'invalid data', { param_name: 'page' }));
      return undefined;
    }
    if (!Number.isInteger(perPage) || perPage < 1 || perPage > 200) {
      send(400, zohoError('INVALID_DATA', 'invalid data', { param_name: 'per_page' }));
      return undefined;
    }
    return { page, perPage };
  }

  private search(
    module: Module,
    query: Record<string, string>,
    send: (s: number, b: unknown) => void,
  ): void {
    const kinds = ['criteria', 'email', 'phone', 'word'].filter((k) => query[k] !== undefined);
    if (kinds.length !== 1)
      return send(
        400,
        zohoError('REQUIRED_PARAM_MISSING', 'One of the expected parameter is missing', {
          param: ['criteria', 'email', 'phone', 'word'],
        }),
      );
    const page = this.paging(query, send);
    if (!page) return;
    const store =
      module === 'Contacts' ? this.contacts : module === 'Leads' ? this.leads : this.calls;
    const visible = [...store.values()].filter((r) => r.createdAt <= Date.now() - this.searchLagMs);
    let match: (r: ZohoRecord) => boolean;
    const kind = kinds[0]!;
    const value = query[kind]!;
    if (kind === 'phone') {
      // Every phone-type field; a stored number matches when its digits end with the searched
      // digits (formatting ignored). So the national digits also find the same local number in
      // another country, and "+49 30 ..." finds only numbers stored with their country code.
      const want = digits(value);
      if (want.length < 3)
        return send(
          400,
          zohoError('INVALID_QUERY', 'invalid query formed', { param_name: 'phone' }),
        );
      match = (r) =>
        PHONE_FIELDS[module].some((f) => {
          const d = digits(r.fields[f]);
          return d.length > 0 && d.endsWith(want);
        });
    } else if (kind === 'email') {
      match = (r) => String(r.fields.Email ?? '').toLowerCase() === value.toLowerCase();
    } else if (kind === 'word') {
      if (value.trim().length < 2)
        return send(
          400,
          zohoError('INVALID_QUERY', 'invalid query formed', { param_name: 'word' }),
        );
      const w = value.toLowerCase();
      match = (r) =>
        WORD_FIELDS[module].some((f) =>
          String(r.fields[f] ?? '')
            .toLowerCase()
            .includes(w),
        );
    } else {
      const parsed = parseCriteria(value);
      if (!parsed)
        return send(
          400,
          zohoError('INVALID_QUERY', 'invalid query formed', { param_name: 'criteria' }),
        );
      match = parsed;
    }
    // Converted leads are left out unless asked for (converted=false is the default).
    const converted = query.converted ?? 'false';
    const hits = visible
      .filter(match)
      .filter(
        (r) =>
          module !== 'Leads' ||
          converted === 'both' ||
          String(Boolean(r.fields.$converted)) === converted,
      )
      .sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
    const slice = hits.slice((page.page - 1) * page.perPage, page.page * page.perPage);
    if (!slice.length) return send(204, undefined);
    send(200, {
      data: slice.map((r) => this.shape(module, r)),
      info: {
        per_page: page.perPage,
        count: slice.length,
        page: page.page,
        more_records: page.page * page.perPage < hits.length,
      },
    });
  }

  /** A record as Zoho answers it: every field of the module, null where empty. */
  private shape(module: Module, r: ZohoRecord): Record<string, unknown> {
    const empty = Object.fromEntries(STANDARD_FIELDS[module].map((f) => [f, null]));
    return { ...empty, ...r.fields, id: r.id };
  }

  /** Insert (201) or update (200) Calls; per-record errors inside the answer's data array. */
  private write(
    op: 'create' | 'update',
    body: unknown,
    pathId: string | undefined,
    answer: (s: number, b: unknown) => void,
  ): void {
    const data = (body as { data?: unknown } | undefined)?.data;
    if (!Array.isArray(data) || data.length === 0)
      return answer(
        400,
        zohoError('MANDATORY_NOT_FOUND', 'required field not found', {
          api_name: 'data',
          json_path: '$.data',
        }),
      );
    if (data.length > 100)
      return answer(
        400,
        zohoError('LIMIT_EXCEEDED', 'the maximum number of records is 100', { limit: 100 }),
      );
    if (pathId && data.length > 1)
      return answer(400, zohoError('INVALID_DATA', 'only one record can be updated by id'));
    const results = data.map((rec: unknown, i: number) =>
      op === 'create' ? this.createOne(rec, i) : this.updateOne(rec, i, pathId),
    );
    const ok = results.filter((r) => r.status === 'success').length;
    const status = ok === results.length ? (op === 'create' ? 201 : 200) : ok === 0 ? 400 : 207;
    answer(status, { data: results });
  }

  private check(
    rec: Record<string, unknown>,
    i: number,
    op: 'create' | 'update',
    existing?: ZohoRecord,
  ): Record<string, unknown> | undefined {
    const at = (f: string): string => `$.data[${i}].${f}`;
    const bad = (f: string, extra: Record<string, unknown> = {}) =>
      zohoError('INVALID_DATA', 'invalid data', { api_name: f, json_path: at(f), ...extra });
    for (const [f, v] of Object.entries(rec)) {
      if (f === 'id') continue;
      const spec = CALL_FIELDS[f];
      if (!spec) return bad(f); // not a field of Calls
      if (spec.readOnly) return bad(f, { reason: 'read only field' });
      if (v === null) continue;
      if (spec.type === 'lookup' || spec.type === 'owner') {
        const id = typeof v === 'object' ? (v as { id?: unknown }).id : v;
        if (typeof id !== 'string' && typeof id !== 'number')
          return bad(f, { expected_data_type: 'jsonobject' });
        continue;
      }
      if (typeof v !== 'string')
        return bad(f, { expected_data_type: spec.type === 'datetime' ? 'datetime' : 'text' });
      if (spec.max !== undefined && Array.from(v).length > spec.max)
        return bad(f, { maximum_length: spec.max });
      if (spec.values && !spec.values.includes(v)) return bad(f);
      if (spec.type === 'datetime' && !DATETIME.test(v))
        return bad(f, { expected_data_type: 'datetime' });
      if (spec.type === 'website' && !/^https?:\/\/\S+$/.test(v)) return bad(f);
    }
    const merged = { ...(existing?.fields ?? {}), ...rec };
    if (op === 'create') {
      for (const f of ['Subject', 'Call_Type', 'Call_Start_Time'])
        if (merged[f] === undefined || merged[f] === null || merged[f] === '')
          return zohoError('MANDATORY_NOT_FOUND', 'required field not found', {
            api_name: f,
            json_path: at(f),
          });
    } else {
      // Kaizen #38: the type of a call cannot change, nor the owner of a completed call.
      if ('Call_Type' in rec) return bad('Call_Type', { reason: 'non editable field' });
      if ('Owner' in rec && existing && completed(existing.fields))
        return bad('Owner', { reason: 'owner of a completed call' });
    }
    const type = merged.Call_Type as string;
    if (type === 'Outbound' || type === 'Inbound' || type === 'Missed') {
      const done = completed(merged);
      if (done && type !== 'Missed' && !merged.Call_Duration)
        return zohoError('MANDATORY_NOT_FOUND', 'required field not found', {
          api_name: 'Call_Duration',
          json_path: at('Call_Duration'),
        });
      if (merged.Call_Duration && !MMSS.test(String(merged.Call_Duration)))
        return bad('Call_Duration', { expected_data_type: 'text', format: 'mm:ss' });
      if (merged.Outgoing_Call_Status && type !== 'Outbound') return bad('Outgoing_Call_Status');
      const start = Date.parse(String(merged.Call_Start_Time));
      if (done && start > Date.now() + 60_000)
        return bad('Call_Start_Time', { reason: 'future time for a completed call' });
    }
    // Who_Id is a contact; a lead goes in What_Id with $se_module "Leads" (Kaizen #38).
    const who = idOf(merged.Who_Id);
    if (who !== undefined && !this.contacts.has(who)) return bad('Who_Id', { id: who });
    const what = idOf(merged.What_Id);
    if (what !== undefined) {
      const mod = merged.$se_module;
      if (!mod)
        return zohoError('MANDATORY_NOT_FOUND', 'required field not found', {
          api_name: '$se_module',
          json_path: at('$se_module'),
        });
      if (mod === 'Leads' && !this.leads.has(what)) return bad('What_Id', { id: what });
    }
    const owner = idOf(merged.Owner);
    if (owner !== undefined && !this.users.some((u) => u.id === owner && u.status === 'active'))
      return bad('Owner', { id: owner });
    return undefined;
  }

  private createOne(rec: unknown, i: number): Record<string, unknown> {
    if (!rec || typeof rec !== 'object' || Array.isArray(rec))
      return zohoError('INVALID_DATA', 'invalid data', { json_path: `$.data[${i}]` });
    const r = rec as Record<string, unknown>;
    const err = this.check(r, i, 'create');
    if (err) return err;
    const id = this.id();
    const now = Date.now();
    const fields = this.stored(r);
    fields.Created_Time = zohoTime(now);
    this.calls.set(id, { id, fields, createdAt: now });
    return {
      code: 'SUCCESS',
      details: {
        Modified_Time: zohoTime(now),
        Modified_By: { name: 'Relay User', id: this.users[0]?.id ?? '1' },
        Created_Time: zohoTime(now),
        id,
        Created_By: { name: 'Relay User', id: this.users[0]?.id ?? '1' },
      },
      message: 'record added',
      status: 'success',
    };
  }

  private updateOne(rec: unknown, i: number, pathId?: string): Record<string, unknown> {
    if (!rec || typeof rec !== 'object' || Array.isArray(rec))
      return zohoError('INVALID_DATA', 'invalid data', { json_path: `$.data[${i}]` });
    const r = rec as Record<string, unknown>;
    const id = pathId ?? (typeof r.id === 'string' ? r.id : undefined);
    if (!id)
      return zohoError('MANDATORY_NOT_FOUND', 'required field not found', {
        api_name: 'id',
        json_path: `$.data[${i}].id`,
      });
    const existing = this.calls.get(id);
    if (!existing)
      return zohoError('INVALID_DATA', 'the id given seems to be invalid', { api_name: 'id', id });
    const err = this.check(r, i, 'update', existing);
    if (err) return err;
    const { id: _drop, ...rest } = r;
    void _drop;
    Object.assign(existing.fields, this.stored(rest));
    const now = zohoTime(Date.now());
    existing.fields.Modified_Time = now;
    return {
      code: 'SUCCESS',
      details: {
        Modified_Time: now,
        Modified_By: { name: 'Relay User', id: this.users[0]?.id ?? '1' },
        Created_Time: existing.fields.Created_Time,
        id,
        Created_By: { name: 'Relay User', id: this.users[0]?.id ?? '1' },
      },
      message: 'record updated',
      status: 'success',
    };
  }

  /** What Zoho keeps of a written record: lookups as {id} (plus a name, as it answers them). */
  private stored(r: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [f, v] of Object.entries(r)) {
      const spec = CALL_FIELDS[f];
      if (v !== null && (spec?.type === 'lookup' || spec?.type === 'owner')) {
        const id = idOf(v)!;
        const named = this.contacts.get(id) ?? this.leads.get(id) ?? undefined;
        const user = this.users.find((u) => u.id === id);
        out[f] = { id, name: named?.fields.Full_Name ?? user?.full_name ?? null };
      } else out[f] = v;
    }
    return out;
  }
}

const idOf = (v: unknown): string | undefined => {
  if (v === undefined || v === null) return undefined;
  const id = typeof v === 'object' ? (v as { id?: unknown }).id : v;
  return id === undefined || id === null ? undefined : String(id);
};

/** A logged call: inbound, missed, or outbound not scheduled. */
const completed = (f: Record<string, unknown>): boolean =>
  f.Call_Type !== 'Outbound' || f.Outgoing_Call_Status !== 'Scheduled';

/**
 * Zoho's search criteria: "(Field:op:value)" joined by "and"/"or" (one kind per level, up to
 * 10), ops equals and starts_with; "\(", "\)" and "\," escape. Undefined when malformed.
 */
export function parseCriteria(s: string): ((r: ZohoRecord) => boolean) | undefined {
  const terms: { field: string; op: string; value: string }[] = [];
  const joins: string[] = [];
  let i = 0;
  const src = s.trim().replace(/^\((\(.*\))\)$/, '$1');
  while (i < src.length) {
    if (src[i] !== '(') return undefined;
    let j = i + 1;
    let inner = '';
    while (j < src.length && src[j] !== ')') {
      if (src[j] === '\\' && j + 1 < src.length) {
        inner += src[j + 1];
        j += 2;
      } else inner += src[j++];
    }
    if (src[j] !== ')') return undefined;
    const m = /^([A-Za-z0-9_$]+):(equals|starts_with):(.*)$/.exec(inner);
    if (!m) return undefined;
    terms.push({ field: m[1]!, op: m[2]!, value: m[3]! });
    i = j + 1;
    const rest = src.slice(i);
    const join = /^\s*(and|or)\s*/i.exec(rest);
    if (join) {
      joins.push(join[1]!.toLowerCase());
      i += join[0].length;
    } else if (rest.trim()) return undefined;
  }
  if (!terms.length || terms.length > 10 || new Set(joins).size > 1) return undefined;
  const test = (r: ZohoRecord, t: (typeof terms)[number]): boolean => {
    const raw = String(t.field === 'id' ? r.id : (r.fields[t.field] ?? ''));
    // Date-times compare as instants: Zoho answers them in the user's zone, whatever was sent.
    if (t.op === 'equals' && DATETIME.test(raw) && DATETIME.test(t.value))
      return Date.parse(raw) === Date.parse(t.value);
    const v = raw.toLowerCase();
    const want = t.value.toLowerCase();
    return t.op === 'equals' ? v === want : v.startsWith(want);
  };
  return joins[0] === 'or'
    ? (r) => terms.some((t) => test(r, t))
    : (r) => terms.every((t) => test(r, t));
}
