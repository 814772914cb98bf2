// A fake Freshsales (Freshworks CRM) account under /crm/sales/api/ on one 127.0.0.1 port, holding a
// recipe to what Freshworks documents and what integrations in production rely on, so that a wrong
// recipe fails here rather than in a customer's account. Sources and what stays unverified:
// docs/crm-notes.md section H. In short: `Authorization: Token token=<key>` (a key per user),
// `/lookup` matching the stored text of one field exactly (nested answer), `/search` fuzzy (a bare
// array), `POST /phone_calls` only (no read, list or update: a call is found again through its
// note on `GET /contacts/<id>?include=notes`, which lags), `POST /contacts`, `/selector/owners`,
// an account-wide hourly allowance plus 400 a minute. Where Freshworks is silent the fake takes
// the stricter reading, and bodies nobody has seen are marked invented. Faults for tests: a 5xx
// rate, lost answers (done, then the connection is destroyed), forced statuses, a request log.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { parsePhoneNumber } from 'libphonenumber-js';
import { CrmFake, readRequest, seededRandom } from './local-server.js';

export interface FreshsalesUser {
  id: number;
  email: string;
  display_name: string;
  is_active: boolean;
}

export interface FreshsalesContact {
  id: number;
  /** The fields as stored (numbers exactly as typed). */
  fields: Record<string, unknown>;
  createdAt: number;
}

export interface FreshsalesNote {
  id: number;
  description: string;
  targetable_type: 'Contact';
  targetable_id: number;
  creater_id: number;
  createdAt: number;
}

export interface FreshsalesCall {
  id: number;
  call_direction: boolean;
  targetable_type: string;
  targetable_id: number;
  note_id: number;
  user_id: number;
  createdAt: number;
  /** The phone_call object as it arrived. */
  sent: Record<string, unknown>;
}

type Fault = { status: number; body?: unknown } | { lose: true } | { reset: true };

/** Freshsales' error body, as seen on a real 403 and read by integrations (errors.message[]). */
export const freshsalesError = (
  code: number,
  ...message: string[]
): { errors: { code: number; message: string[] } } => ({ errors: { code, message } });

/** Fields `/lookup` can match on for contacts (f=...); custom fields are cf_*. */
const LOOKUP_FIELDS = ['email', 'mobile_number', 'work_number', 'display_name', 'external_id'];
/** What POST /contacts takes (a subset of the documented contact fields). */
const CONTACT_FIELDS = new Set([
  'first_name',
  'last_name',
  'email',
  'mobile_number',
  'work_number',
  'job_title',
  'owner_id',
  'external_id',
  'address',
  'city',
  'country',
  'medium',
]);
/** The four documented keys of a phone_call, and user_id (in the answer; writable: unverified). */
const CALL_KEYS = new Set(['call_direction', 'targetable_type', 'targetable', 'note', 'user_id']);
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export class FakeFreshsales extends CrmFake {
  protected override readonly path = '/crm/sales/api';
  readonly contacts = new Map<number, FreshsalesContact>();
  readonly notes = new Map<number, FreshsalesNote>();
  readonly calls = new Map<number, FreshsalesCall>();
  readonly users: FreshsalesUser[] = [];
  /** API keys and whose they are (a key belongs to one user). */
  readonly keys = new Map<string, number>();
  /** Every request as it arrived. */
  readonly requests: {
    method: string;
    path: string;
    query: Record<string, string>;
    body: unknown;
    authorization: string | undefined;
  }[] = [];
  /** Faults applied, in order, to requests whose "METHOD /path" (the path after /crm/sales/api)
   * starts with `match`. */
  readonly faults: { match: string; fault: Fault }[] = [];
  /** Share of admitted requests answered 500 or 503 before they do anything (0..1). */
  failRate = 0;
  /** Share of POSTs that are done and then lose their answer (0..1). */
  lostRate = 0;
  /** Requests per hour for the whole account (Growth 1000, Pro 2000, Enterprise 5000). */
  hourlyLimit = 1000;
  /** Requests per minute for the whole account. */
  minuteLimit = 400;
  /**
   * How long a new note stays out of `GET /contacts/<id>?include=notes` (ms). Freshworks gives no
   * figure; the default is a few seconds, as a search index behind a write would lag.
   */
  notesLagMs = 3000;
  /** Process every request this late. */
  delayMs = 0;
  /** The fake's clock (a test may move it on to cross an hour). */
  now: () => number = () => Date.now();
  /** Times of the requests counted against the allowances (admitted, authenticated). */
  private counted: number[] = [];
  private nextId = 17_007_472_000;
  private random: () => number;

  constructor(o: { seed?: number } = {}) {
    super();
    this.random = seededRandom(o.seed ?? 26);
  }

  /** Requests counted against the allowances in all. */
  get used(): number {
    return this.counted.length;
  }

  private id(): number {
    return this.nextId++;
  }

  /** A user of the account and, when `apiKey` is given, that user's API key. Answers its id. */
  addUser(
    email: string,
    displayName = email.split('@')[0]!,
    o: { apiKey?: string; active?: boolean } = {},
  ) {
    const id = this.id();
    this.users.push({ id, email, display_name: displayName, is_active: o.active ?? true });
    if (o.apiKey) this.keys.set(o.apiKey, id);
    return id;
  }

  /** A contact with fields as a user typed them; `createdAt` backdates it (ms). Answers its id. */
  addContact(fields: Record<string, unknown>, createdAt = this.now()): number {
    const id = this.id();
    const display = [fields.first_name, fields.last_name].filter(Boolean).join(' ');
    this.contacts.set(id, {
      id,
      fields: { display_name: display || String(fields.email ?? ''), ...fields },
      createdAt,
    });
    return id;
  }

  /**
   * A sample flow's number as people type it into Freshsales, alternately: E.164 in
   * mobile_number ("+4930901820") or the national form's digits in work_number ("030901820",
   * the trunk 0 where the country dials one), so a recipe that asks one field in one form
   * misses half. An older look-alike in another country holds the same national digits, spaced
   * ("+44 30901820"). Answers the right contact's id. (Forms with spaces inside the number
   * cannot be asked for by an exact lookup without knowing the area code's length: crm-notes H.2.)
   */
  seedNumber(e164: string): number {
    const p = parsePhoneNumber(e164);
    const cc = `+${p.countryCallingCode}`;
    const nat = String(p.nationalNumber);
    const other = cc === '+44' ? '+49' : '+44';
    this.addContact(
      { first_name: 'Look', last_name: 'Alike', mobile_number: `${other} ${nat}` },
      this.now() - 9e8,
    );
    const asMobile = this.contacts.size % 4 === 1;
    return this.addContact({
      first_name: 'Dana',
      last_name: e164,
      ...(asMobile
        ? { mobile_number: p.number }
        : { work_number: p.formatNational().replace(/\D/g, '') }),
    });
  }

  /** Calls whose note contains `text` (a test's view, never lagging). */
  callsWith(text: string): FreshsalesCall[] {
    return [...this.calls.values()].filter((c) =>
      this.notes.get(c.note_id)?.description.includes(text),
    );
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { method, url, query, body } = await readRequest(req);
    const send = (status: number, body: unknown): void => {
      if (res.destroyed) return;
      this.log.push({ method, path: url.pathname, status });
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(body));
    };
    this.requests.push({
      method,
      path: url.pathname,
      query,
      body,
      authorization: req.headers.authorization,
    });
    if (!url.pathname.startsWith('/crm/sales/api/'))
      return send(404, freshsalesError(404, 'Resource not found')); // invented
    const path = url.pathname.slice('/crm/sales/api'.length);

    // A key per user, in Freshworks' own scheme; no Bearer, no Basic. The 401 body is invented
    // (nobody was seen quoting one), so recipes must not read it.
    const m = /^Token token=(\S+)$/.exec(req.headers.authorization ?? '');
    const user = m ? this.keys.get(m[1]!) : undefined;
    if (user === undefined)
      return send(401, { login: 'failed', message: 'Incorrect or expired API key' });

    // The account's allowances, every user and key together. The 429 body is invented and no
    // Retry-After is sent (none was found documented), so the relay's own pacing is what works.
    const t = this.now();
    this.counted = this.counted.filter((x) => x > t - 3_600_000);
    const lastMinute = this.counted.filter((x) => x > t - 60_000).length;
    if (this.counted.length >= this.hourlyLimit || lastMinute >= this.minuteLimit)
      return send(429, freshsalesError(429, 'API rate limit exceeded'));
    this.counted.push(t);

    const key = `${method} ${path}`;
    const fi = this.faults.findIndex((f) => key.startsWith(f.match));
    const fault = fi >= 0 ? this.faults.splice(fi, 1)[0]!.fault : undefined;
    if (fault && 'reset' in fault) return void req.socket.destroy();
    if (fault && 'status' in fault)
      return send(fault.status, fault.body ?? freshsalesError(fault.status, 'injected'));
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.failRate && this.random() < this.failRate) {
      const status = this.random() < 0.5 ? 500 : 503;
      return send(status, freshsalesError(status, 'Something went wrong')); // invented
    }
    const lose =
      (fault && 'lose' in fault) ||
      (method === 'POST' && this.lostRate > 0 && this.random() < this.lostRate);
    const answer = (status: number, payload: unknown): void => {
      if (lose) return void req.socket.destroy(); // done, but the answer never arrives
      send(status, payload);
    };
    this.route(method, path, query, body, user, send, answer);
  }

  private route(
    method: string,
    path: string,
    query: Record<string, string>,
    body: unknown,
    user: number,
    send: (s: number, b: unknown) => void,
    answer: (s: number, b: unknown) => void,
  ): void {
    if (method === 'GET' && path === '/lookup') return this.lookup(query, send);
    if (method === 'GET' && path === '/search') return this.search(query, send);
    if (method === 'GET' && path === '/selector/owners')
      return send(200, {
        users: this.users.map((u) => ({ ...u, work_number: null, mobile_number: null })),
      });
    if (method === 'POST' && path === '/phone_calls') return this.logCall(body, user, answer);
    if (method === 'POST' && path === '/contacts') return this.createContact(body, answer);
    const c = /^\/contacts\/(\d+)$/.exec(path);
    if (method === 'GET' && c) return this.contact(Number(c[1]), query, send);
    // Nothing else, and in particular no GET, list, PUT or DELETE on /phone_calls: Freshworks
    // documents none, so a recipe must not lean on them.
    send(404, freshsalesError(404, 'Resource not found')); // invented wording
  }

  /** A contact as Freshsales answers it: the usual fields, null where empty. */
  private shape(c: FreshsalesContact): Record<string, unknown> {
    const f = c.fields;
    return {
      id: c.id,
      first_name: f.first_name ?? null,
      last_name: f.last_name ?? null,
      display_name: f.display_name ?? null,
      email: f.email ?? null,
      mobile_number: f.mobile_number ?? null,
      work_number: f.work_number ?? null,
      job_title: f.job_title ?? null,
      owner_id: f.owner_id ?? null,
      external_id: f.external_id ?? null,
      created_at: iso(c.createdAt),
      updated_at: iso(c.createdAt),
    };
  }

  private lookup(query: Record<string, string>, send: (s: number, b: unknown) => void): void {
    const { q, f, entities } = query;
    if (!q || !f || !entities)
      return send(400, freshsalesError(400, 'q, f and entities are required')); // invented
    const wanted = entities.split(',');
    if (!wanted.every((e) => ['contact', 'sales_account', 'deal'].includes(e)))
      return send(400, freshsalesError(400, `Invalid entities ${entities}`)); // invented
    if (!LOOKUP_FIELDS.includes(f) && !f.startsWith('cf_'))
      return send(400, freshsalesError(400, `Invalid field ${f}`)); // invented
    // Exact: the stored text of that one field, as typed (case aside for email).
    const same = (v: unknown): boolean =>
      typeof v === 'string' && (f === 'email' ? v.toLowerCase() === q.toLowerCase() : v === q);
    const out: Record<string, unknown> = {};
    if (wanted.includes('contact'))
      out.contacts = {
        contacts: [...this.contacts.values()]
          .filter((c) => same(c.fields[f]))
          .map((c) => this.shape(c)),
      };
    if (wanted.includes('sales_account')) out.sales_accounts = { sales_accounts: [] };
    if (wanted.includes('deal')) out.deals = { deals: [] };
    send(200, out);
  }

  private search(query: Record<string, string>, send: (s: number, b: unknown) => void): void {
    const q = (query.q ?? '').trim().toLowerCase();
    if (q.length < 2) return send(400, freshsalesError(400, 'Search query too short')); // invented
    const include = (query.include ?? 'contact').split(',');
    if (!include.includes('contact')) return send(200, []);
    const digits = q.replace(/\D/g, '');
    const hit = (c: FreshsalesContact): boolean =>
      ['display_name', 'first_name', 'last_name', 'email'].some((k) =>
        String(c.fields[k] ?? '')
          .toLowerCase()
          .includes(q),
      ) ||
      (digits.length >= 4 &&
        ['mobile_number', 'work_number'].some((k) =>
          String(c.fields[k] ?? '')
            .replace(/\D/g, '')
            .includes(digits),
        ));
    send(
      200,
      [...this.contacts.values()].filter(hit).map((c) => ({
        id: String(c.id),
        type: 'contact',
        name: c.fields.display_name,
        email: c.fields.email ?? null,
        mobile_number: c.fields.mobile_number ?? null,
        work_number: c.fields.work_number ?? null,
      })),
    );
  }

  private contact(
    id: number,
    query: Record<string, string>,
    send: (s: number, b: unknown) => void,
  ) {
    const c = this.contacts.get(id);
    if (!c) return send(404, freshsalesError(404, 'Contact not found')); // invented wording
    const include = (query.include ?? '').split(',');
    const out: Record<string, unknown> = { contact: this.shape(c) };
    if (include.includes('notes')) {
      const cutoff = this.now() - this.notesLagMs;
      const notes = [...this.notes.values()]
        .filter((n) => n.targetable_id === id && n.createdAt <= cutoff)
        .sort((a, b) => b.createdAt - a.createdAt);
      (out.contact as Record<string, unknown>).note_ids = notes.map((n) => n.id);
      out.notes = notes.map((n) => this.noteShape(n));
    }
    send(200, out);
  }

  private noteShape(n: FreshsalesNote): Record<string, unknown> {
    return {
      id: n.id,
      description: n.description,
      created_at: iso(n.createdAt),
      updated_at: iso(n.createdAt),
      creater_id: n.creater_id,
      targetable_id: n.targetable_id,
      targetable_type: n.targetable_type,
    };
  }

  /** POST /phone_calls: validated as the docs' sample has it; makes the call and its Note. */
  private logCall(body: unknown, user: number, answer: (s: number, b: unknown) => void): void {
    const bad = (status: number, msg: string) => answer(status, freshsalesError(status, msg));
    const pc = (body as { phone_call?: unknown } | undefined)?.phone_call;
    // The docs' sample wraps the call; one integration posts it bare. The fake takes the docs.
    if (!pc || typeof pc !== 'object' || Array.isArray(pc))
      return bad(400, 'phone_call is required');
    const p = pc as Record<string, unknown>;
    for (const k of Object.keys(p)) if (!CALL_KEYS.has(k)) return bad(400, `Invalid field ${k}`);
    if (typeof p.call_direction !== 'boolean')
      return bad(400, 'call_direction must be true or false');
    if (p.targetable_type !== 'contact') return bad(400, 'targetable_type must be contact');
    const tid = (p.targetable as { id?: unknown } | undefined)?.id;
    if (typeof tid !== 'string' && typeof tid !== 'number')
      return bad(400, 'targetable id is required');
    if (!/^\d+$/.test(String(tid)) || !this.contacts.has(Number(tid)))
      return bad(404, 'Contact not found');
    const note = p.note as { description?: unknown } | undefined;
    if (!note || typeof note.description !== 'string' || !note.description.trim())
      return bad(400, 'note description is required');
    if (
      p.user_id !== undefined &&
      !this.users.some((u) => u.id === Number(p.user_id) && u.is_active)
    )
      return bad(400, 'Invalid user_id');
    const now = this.now();
    const targetable = Number(tid);
    const noteId = this.id();
    const owner = p.user_id === undefined ? user : Number(p.user_id);
    const n: FreshsalesNote = {
      id: noteId,
      description: note.description,
      targetable_type: 'Contact',
      targetable_id: targetable,
      creater_id: user,
      createdAt: now,
    };
    this.notes.set(noteId, n);
    const id = this.id();
    this.calls.set(id, {
      id,
      call_direction: p.call_direction,
      targetable_type: 'contact',
      targetable_id: targetable,
      note_id: noteId,
      user_id: owner,
      createdAt: now,
      sent: p,
    });
    const u = this.users.find((x) => x.id === owner);
    answer(201, {
      phone_call: {
        id,
        call_direction: p.call_direction,
        targetable_type: 'Contact',
        targetable_id: targetable,
        note_id: noteId,
        user_id: owner,
        call_duration: null,
        recording: null,
        recording_duration: null,
        status: null,
        outcome_id: null,
        conversation_time: iso(now),
        is_manual: true,
        source: null,
        cost: null,
        phone_number_id: null,
        phone_caller_id: null,
      },
      contacts: [{ id: targetable, partial: true }],
      notes: [this.noteShape(n)],
      phone_numbers: [],
      phone_callers: [],
      users: u ? [{ id: u.id, display_name: u.display_name, email: u.email }] : [],
      targetables: [{ id: targetable, type: 'Contact' }],
    });
  }

  /** POST /contacts: {contact: {...}}; answers {contact} as the docs show. */
  private createContact(body: unknown, answer: (s: number, b: unknown) => void): void {
    const bad = (msg: string) => answer(400, freshsalesError(400, msg));
    const c = (body as { contact?: unknown } | undefined)?.contact;
    if (!c || typeof c !== 'object' || Array.isArray(c)) return bad('contact is required');
    const f = c as Record<string, unknown>;
    for (const [k, v] of Object.entries(f)) {
      if (!CONTACT_FIELDS.has(k) && !k.startsWith('cf_')) return bad(`Invalid field ${k}`);
      if (v !== null && typeof v !== 'string' && k !== 'owner_id') return bad(`${k} must be text`);
    }
    // Freshsales wants something to call the contact by; which fields suffice is unverified.
    if (!['first_name', 'last_name', 'email', 'mobile_number', 'work_number'].some((k) => f[k]))
      return bad('Please enter a last name, email or phone number');
    if (f.owner_id !== undefined && !this.users.some((u) => u.id === Number(f.owner_id)))
      return bad('Invalid owner_id');
    const id = this.addContact(f);
    answer(200, { contact: this.shape(this.contacts.get(id)!) });
  }
}
