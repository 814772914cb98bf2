// A fake Pipedrive on 127.0.0.1 that holds the relay to the documented API (docs/crm-notes.md B,
// specs/pipedrive): x-api-token auth, the call-log schema (required fields, outcome enum, UTC
// "YYYY-MM-DD HH:MM:SS", duration as a string), a call-log list that shows only the token user's
// logs, call logs that convert a `call` activity, v2 activities (create, list by owner and update
// time, get one), multipart recordings, notes that need a parent, v2 person search, the 2-second
// rate window with Pipedrive's headers, v2 deals listed by person and status (sorted by
// update_time). A call log's body is validated field by field as Pipedrive's API does, naming the
// first field it refuses (`"x" is not allowed.`, `"subject" must be a string.`: the spec's own
// example error is `"outcome" is required.`). Faults can be scripted, one by one or at random
// rates.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { CrmFake, seededRandom } from '../../../test/fakes/local-server.js';

export interface CallLog {
  id: string;
  body: Record<string, any>;
  /** The log's owner: its user_id, else the token's user. */
  userId: number;
  /** The `call` activity it converted, or the one made for it. */
  activityId: number;
  recording?: {
    filename: string;
    contentType: string;
    bytes: Buffer;
    /** The part's header lines by lower-cased name (an injected line shows up here). */
    headers: Record<string, string>;
  };
}

type Fault =
  | { status: number; body?: unknown; headers?: Record<string, string> }
  | { resetAfterProcessing: true };

/** A v2 activity as the fake keeps it (v2 field names: owner_id, boolean done). */
export interface Activity {
  id: number;
  subject: string;
  type: string;
  owner_id: number;
  done: boolean;
  note?: string;
  person_id?: number;
  due_date?: string;
  due_time?: string;
  add_time: string;
  update_time: string;
  [k: string]: unknown;
}

/** Random faults on the requests whose "METHOD /path" starts with one of `match`. */
export interface Chaos {
  match: string[];
  /** Share answered 500 without doing anything. */
  fail: number;
  /** Share done, then the connection dropped before the answer (the answer is lost). */
  lost: number;
  /** Deterministic: the same seed gives the same faults for the same sequence of requests. */
  seed: number;
}

// The documented outcomes, written here again on purpose: the fake checks the target against the
// API, so it must not take the target's own list (spec.ts) as the truth.
const OUTCOMES = [
  'connected',
  'no_answer',
  'left_message',
  'left_voicemail',
  'wrong_number',
  'busy',
];
const TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;

/** The call-log body's fields and their types (spec addCallLogRequest). */
const CALL_LOG_FIELDS: Record<string, 'string' | 'integer'> = {
  user_id: 'integer',
  activity_id: 'integer',
  subject: 'string',
  duration: 'string',
  outcome: 'string',
  from_phone_number: 'string',
  to_phone_number: 'string',
  start_time: 'string',
  end_time: 'string',
  person_id: 'integer',
  org_id: 'integer',
  deal_id: 'integer',
  lead_id: 'string',
  note: 'string',
};

/** A person as the fake keeps it; `phones` and `emails` as stored, each with its label. */
export interface Person {
  id: number;
  name: string;
  first_name: string | null;
  last_name: string | null;
  phones: string[];
  /** The label of each phone, by position ("work" unless given). */
  phoneLabels: string[];
  emails: string[];
  org: { id: number; name: string } | null;
  owner_id: number;
  /** RFC 3339, as v2 answers it. */
  add_time: string;
  update_time: string;
}

/** The fields v2 POST /persons takes (the fake refuses others, as a strict API would). */
const PERSON_FIELDS = [
  'name',
  'owner_id',
  'org_id',
  'add_time',
  'update_time',
  'emails',
  'phones',
  'visible_to',
  'label_ids',
  'marketing_status',
  'custom_fields',
];

/** Pipedrive splits a person's name into first and last at the last space. */
function splitName(name: string): { first_name: string | null; last_name: string | null } {
  const n = name.trim();
  const at = n.lastIndexOf(' ');
  return at < 0
    ? { first_name: n || null, last_name: null }
    : { first_name: n.slice(0, at), last_name: n.slice(at + 1) };
}

/** A v2 deal as the fake keeps it. */
export interface Deal {
  id: number;
  title: string;
  person_id: number | null;
  status: 'open' | 'won' | 'lost' | 'deleted';
  add_time: string;
  update_time: string;
}

export class FakePipedrive extends CrmFake {
  readonly callLogs = new Map<string, CallLog>();
  readonly persons = new Map<number, Person>();
  readonly users: { id: number; email: string; name: string }[] = [];
  readonly notes: { id: number; content: string; person_id: number }[] = [];
  readonly activities: Activity[] = [];
  readonly deals: Deal[] = [];
  readonly faults: { match: string; fault: Fault }[] = [];
  /** The API token's user: the call-log list shows only this user's logs, as documented. */
  tokenUserId = 1;
  /** Faults at random rates (after the scripted ones). */
  chaos: Chaos | undefined;
  /** Every random fault dealt: "METHOD /path" and which. */
  readonly chaosLog: { key: string; fault: 'fail' | 'lost' }[] = [];
  private random: () => number = seededRandom(0);
  /** Requests per 2-second window (Lite plan, API token: 20). */
  limit = 20;
  /** Searches per 2-second window (the Search API's own limit, on every plan: 10). */
  searchLimit = 10;
  private window: number[] = [];
  private searchWindow: number[] = [];
  private nextId = 1;

  constructor(readonly token: string) {
    super();
  }

  /** Random faults from now on (see Chaos). */
  setChaos(c: Chaos | undefined): void {
    this.chaos = c;
    this.random = seededRandom(c?.seed ?? 0);
  }

  /** An activity as Pipedrive keeps it (type "call" and done false unless given). */
  addActivity(a: Partial<Activity>): Activity {
    const now = pdNow();
    const activity: Activity = {
      subject: 'Call',
      type: 'call',
      owner_id: this.tokenUserId,
      done: false,
      ...Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined)),
      id: this.nextId++,
      add_time: now,
      update_time: now,
    };
    this.activities.push(activity);
    return activity;
  }

  /** A deal, last updated at `updateTime` (RFC 3339, as v2 answers). */
  addDeal(o: {
    title: string;
    personId: number | null;
    status?: Deal['status'];
    updateTime: string;
  }): number {
    const id = this.nextId++;
    this.deals.push({
      id,
      title: o.title,
      person_id: o.personId,
      status: o.status ?? 'open',
      add_time: o.updateTime,
      update_time: o.updateTime,
    });
    return id;
  }

  /** A person; `more` gives labels, emails, an organization, and when it was made. */
  addPerson(
    name: string,
    phones: string[],
    more: { labels?: string[]; emails?: string[]; org?: string; addTime?: string } = {},
  ): number {
    const id = this.nextId++;
    const at = more.addTime ?? pdNow();
    this.persons.set(id, {
      id,
      name,
      ...splitName(name),
      phones,
      phoneLabels: phones.map((_, i) => more.labels?.[i] ?? 'work'),
      emails: more.emails ?? [],
      org: more.org ? { id: this.nextId++, name: more.org } : null,
      owner_id: this.tokenUserId,
      add_time: at,
      update_time: at,
    });
    return id;
  }

  /** Person searches made (v2 GET /persons/search), for tests that count them. */
  get personSearches(): number {
    return this.count('GET', '/api/v2/persons/search');
  }

  /** A person as v2 GET /persons/{id} and POST /persons answer it. */
  private personView(p: Person): Record<string, unknown> {
    const labelled = (values: string[], labels: string[]) =>
      values.map((value, i) => ({ value, primary: i === 0, label: labels[i] ?? 'work' }));
    return {
      id: p.id,
      name: p.name,
      first_name: p.first_name,
      last_name: p.last_name,
      owner_id: p.owner_id,
      org_id: p.org?.id ?? null,
      add_time: p.add_time,
      update_time: p.update_time,
      emails: labelled(p.emails, []),
      phones: labelled(p.phones, p.phoneLabels),
      is_deleted: false,
      visible_to: 3,
      label_ids: [],
      picture_id: null,
      custom_fields: {},
    };
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://x');
    const key = `${req.method} ${url.pathname}`;
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      this.log.push({ method: req.method!, path: url.pathname, status });
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    const fail = (status: number, error: string, info = ''): void =>
      send(status, { success: false, error, error_info: info, data: null, additional_data: null });

    if (req.headers['x-api-token'] !== this.token)
      return fail(401, 'unauthorized access', 'Please check the API token.');
    const fi = this.faults.findIndex((f) => key.startsWith(f.match));
    let fault = fi >= 0 ? this.faults.splice(fi, 1)[0]!.fault : undefined;
    if (!fault && this.chaos?.match.some((m) => key.startsWith(m))) {
      const r = this.random();
      if (r < this.chaos.fail) {
        fault = { status: 500, body: { success: false, error: 'Internal error (chaos)' } };
        this.chaosLog.push({ key, fault: 'fail' });
      } else if (r < this.chaos.fail + this.chaos.lost) {
        fault = { resetAfterProcessing: true };
        this.chaosLog.push({ key, fault: 'lost' });
      }
    }
    if (fault && 'status' in fault)
      return send(fault.status, fault.body ?? { success: false, error: 'injected' }, fault.headers);

    const now = Date.now();
    while (this.window.length && this.window[0]! <= now - 2000) this.window.shift();
    const limitHeaders = (remaining: number): Record<string, string> => ({
      'x-ratelimit-limit': String(this.limit),
      'x-ratelimit-remaining': String(Math.max(0, remaining)),
      'x-ratelimit-reset': '2',
    });
    if (this.window.length >= this.limit)
      return send(429, { success: false, error: 'Request over limit' }, limitHeaders(0));
    if (url.pathname.endsWith('/search')) {
      while (this.searchWindow.length && this.searchWindow[0]! <= now - 2000)
        this.searchWindow.shift();
      if (this.searchWindow.length >= this.searchLimit)
        return send(429, { success: false, error: 'Request over limit' }, limitHeaders(0));
      this.searchWindow.push(now);
    }
    this.window.push(now);
    const headers = limitHeaders(this.limit - this.window.length);
    const ok = (data: unknown, extra: Record<string, unknown> = {}): void => {
      if (fault && 'resetAfterProcessing' in fault) return void req.socket.destroy();
      send(200, { success: true, data, ...extra }, headers);
    };
    const json = (): Record<string, any> | undefined => {
      if (!String(req.headers['content-type']).startsWith('application/json')) return undefined;
      try {
        return JSON.parse(raw.toString()) as Record<string, any>;
      } catch {
        return undefined;
      }
    };

    if (req.method === 'GET' && url.pathname === '/api/v2/persons/search') {
      const term = url.searchParams.get('term') ?? '';
      const all = ['custom_fields', 'email', 'notes', 'phone', 'name'];
      const given = url.searchParams.get('fields');
      const fields = given === null ? all : given.split(',');
      if (!fields.every((f) => all.includes(f))) return fail(400, 'bad fields');
      const exact = url.searchParams.get('exact_match') === 'true';
      if (term.length < (exact ? 1 : 2)) return fail(400, 'term too short');
      const limit = Number(url.searchParams.get('limit') ?? 100);
      if (!Number.isInteger(limit) || limit < 1 || limit > 500)
        return fail(400, 'limit must be 1 to 500');
      // Exact: the whole stored value (case-insensitive, spaces dropped). Otherwise a part of it.
      const norm = (s: string): string => s.replace(/\s/g, '').toLowerCase();
      const t = norm(term);
      const hit = (v: string): boolean => (exact ? norm(v) === t : norm(v).includes(t));
      // How Pipedrive normalises numbers for search is not documented: this fake is lenient, as
      // the worst case a client must survive. A number matches when its digits end with the
      // term's, so the national digits also find the same local number in another country.
      const digits = (s: string): string => s.replace(/\D/g, '');
      const phoneHit = (v: string): boolean =>
        hit(v) || (digits(t).length >= 6 && digits(v).endsWith(digits(t)));
      const items = [...this.persons.values()]
        .filter(
          (p) =>
            (fields.includes('phone') && p.phones.some(phoneHit)) ||
            (fields.includes('email') && p.emails.some(hit)) ||
            (fields.includes('name') &&
              (exact ? hit(p.name) : p.name.toLowerCase().includes(term.trim().toLowerCase()))),
        )
        .slice(0, limit)
        .map((p) => ({
          result_score: 1,
          item: {
            id: p.id,
            type: 'person',
            name: p.name,
            phones: p.phones,
            emails: p.emails,
            visible_to: 3,
            owner: { id: p.owner_id },
            organization: p.org ? { id: p.org.id, name: p.org.name, address: null } : null,
            custom_fields: [],
            notes: [],
          },
        }));
      return ok({ items }, { additional_data: { next_cursor: null } });
    }
    const person = /^\/api\/v2\/persons\/(\d+)$/.exec(url.pathname);
    if (req.method === 'GET' && person) {
      const p = this.persons.get(Number(person[1]));
      return p ? ok(this.personView(p)) : fail(404, 'Person not found');
    }
    if (req.method === 'POST' && url.pathname === '/api/v2/persons') {
      const b = json();
      if (!b) return fail(400, 'Invalid JSON', 'Send application/json');
      const extra = Object.keys(b).find((k) => !PERSON_FIELDS.includes(k));
      if (extra) return fail(400, `"${extra}" is not allowed.`);
      if (typeof b.name !== 'string' || !b.name.trim()) return fail(400, '"name" is required.');
      for (const k of ['emails', 'phones'])
        if (
          b[k] !== undefined &&
          (!Array.isArray(b[k]) ||
            !b[k].every((x: any) => typeof x?.value === 'string' && x.value.length > 0))
        )
          return fail(400, `"${k}" must be an array of { value, primary?, label? }`);
      const phones = (b.phones ?? []) as { value: string; label?: string }[];
      const id = this.addPerson(
        b.name,
        phones.map((x) => x.value),
        {
          labels: phones.map((x) => x.label ?? 'work'),
          emails: ((b.emails ?? []) as { value: string }[]).map((x) => x.value),
        },
      );
      return ok(this.personView(this.persons.get(id)!));
    }
    if (req.method === 'GET' && url.pathname === '/api/v1/users/me')
      return ok({
        id: this.tokenUserId,
        name: 'Relay Bot',
        company_name: 'Acme',
        company_domain: 'acme',
      });
    const user = /^\/api\/v1\/users\/(\d+)$/.exec(url.pathname);
    if (req.method === 'GET' && user) {
      const u = this.users.find((x) => x.id === Number(user[1]));
      return u ? ok(u) : fail(404, 'User not found');
    }
    if (req.method === 'GET' && url.pathname === '/api/v1/users/find') {
      const term = url.searchParams.get('term') ?? '';
      if (url.searchParams.get('search_by_email') !== '1')
        return fail(400, 'search_by_email expected');
      return ok(this.users.filter((u) => u.email === term));
    }
    if (req.method === 'POST' && url.pathname === '/api/v1/callLogs') {
      const b = json();
      if (!b) return fail(400, 'Invalid JSON', 'Send application/json');
      const problem = checkCallLog(b);
      if (problem) return fail(400, problem);
      const userId: number = b.user_id ?? this.tokenUserId;
      // A call log is an activity too: with activity_id it converts that `call` activity (whose
      // person, org and deal win over the body's), without it one is made for it. Whether a
      // converted activity can be converted again is not documented: the fake lets it, so that a
      // second create shows up as a second log.
      let activity: Activity;
      if (b.activity_id !== undefined) {
        const a = this.activities.find((x) => x.id === b.activity_id);
        if (!a) return fail(404, 'Activity not found');
        if (a.type !== 'call') return fail(400, 'activity_id must refer to a call type activity');
        activity = Object.assign(a, {
          ...(b.subject !== undefined ? { subject: b.subject } : {}),
          ...(b.note !== undefined ? { note: b.note } : {}),
          done: true,
          update_time: pdNow(),
        });
        for (const k of ['person_id', 'org_id', 'deal_id']) delete b[k];
        if (a.person_id !== undefined) b.person_id = a.person_id;
        if (a.deal_id !== undefined) b.deal_id = a.deal_id;
      } else {
        activity = this.addActivity({
          subject: b.subject ?? 'Call',
          type: 'call',
          owner_id: userId,
          done: true,
          note: b.note,
          person_id: b.person_id,
        });
      }
      const id = [...Array(32)].map(() => Math.floor(Math.random() * 16).toString(16)).join('');
      this.callLogs.set(id, { id, body: b, userId, activityId: activity.id });
      return ok({ id, has_recording: false, company_id: 1, ...b, activity_id: activity.id });
    }
    if (req.method === 'GET' && url.pathname === '/api/v1/callLogs') {
      const start = Number(url.searchParams.get('start') ?? 0);
      const limit = Number(url.searchParams.get('limit') ?? 20);
      if (limit > 50) return fail(400, 'limit is at most 50');
      // Documented: the call logs of the token's user, no one else's.
      const all = [...this.callLogs.values()]
        .filter((l) => l.userId === this.tokenUserId)
        .reverse()
        .map((l) => ({ id: l.id, ...l.body, user_id: l.userId, activity_id: l.activityId }));
      return ok(all.slice(start, start + limit), {
        additional_data: {
          pagination: { start, limit, more_items_in_collection: start + limit < all.length },
        },
      });
    }
    const one = /^\/api\/v1\/callLogs\/([0-9a-f]+)$/.exec(url.pathname);
    if (req.method === 'GET' && one) {
      const l = this.callLogs.get(one[1]!);
      if (!l) return fail(404, 'Call log not found');
      return ok({ id: l.id, ...l.body, user_id: l.userId, activity_id: l.activityId });
    }
    if (req.method === 'POST' && url.pathname === '/api/v2/activities') {
      const b = json();
      if (!b) return fail(400, 'Invalid JSON', 'Send application/json');
      const problem = checkActivity(b);
      if (problem) return fail(400, problem);
      const a = this.addActivity({ ...b, owner_id: b.owner_id ?? this.tokenUserId });
      return ok(a);
    }
    if (req.method === 'GET' && url.pathname === '/api/v2/deals') {
      const q = url.searchParams;
      const limit = Number(q.get('limit') ?? 100);
      if (!Number.isInteger(limit) || limit < 1 || limit > 500)
        return fail(400, 'limit must be 1 to 500');
      const status = q.get('status');
      if (status !== null && !['open', 'won', 'lost', 'deleted'].includes(status))
        return fail(400, 'bad status');
      const sortBy = q.get('sort_by') ?? 'id';
      if (!['id', 'update_time', 'add_time'].includes(sortBy)) return fail(400, 'bad sort_by');
      const person = q.has('person_id') ? Number(q.get('person_id')) : undefined;
      const dir = q.get('sort_direction') === 'desc' ? -1 : 1;
      const key = sortBy as 'id' | 'update_time' | 'add_time';
      const all = this.deals
        .filter((d) => person === undefined || d.person_id === person)
        // Without a status: every deal not deleted (as documented for v1 and v2).
        .filter((d) => (status === null ? d.status !== 'deleted' : d.status === status))
        .sort((x, y) => dir * (x[key] === y[key] ? x.id - y.id : x[key] < y[key] ? -1 : 1));
      const start = q.has('cursor') ? Number(Buffer.from(q.get('cursor')!, 'base64url')) : 0;
      const next =
        start + limit < all.length
          ? Buffer.from(String(start + limit)).toString('base64url')
          : null;
      return ok(all.slice(start, start + limit), { additional_data: { next_cursor: next } });
    }
    if (req.method === 'GET' && url.pathname === '/api/v2/activities') {
      const q = url.searchParams;
      const limit = Number(q.get('limit') ?? 100);
      if (!Number.isInteger(limit) || limit < 1 || limit > 500)
        return fail(400, 'limit must be 1 to 500');
      for (const k of ['updated_since', 'updated_until'])
        if (q.has(k) && !RFC3339.test(q.get(k)!)) return fail(400, `${k} must be RFC3339`);
      const sortBy = q.get('sort_by') ?? 'id';
      if (!['id', 'update_time', 'add_time'].includes(sortBy)) return fail(400, 'bad sort_by');
      const owner = q.has('owner_id') ? Number(q.get('owner_id')) : undefined;
      const since = q.has('updated_since') ? Date.parse(q.get('updated_since')!) : -Infinity;
      const until = q.has('updated_until') ? Date.parse(q.get('updated_until')!) : Infinity;
      const dir = q.get('sort_direction') === 'desc' ? -1 : 1;
      const all = this.activities
        .filter((a) => owner === undefined || a.owner_id === owner)
        .filter((a) => Date.parse(a.update_time) >= since && Date.parse(a.update_time) < until)
        .sort(
          (x, y) =>
            dir * (x[sortBy] === y[sortBy] ? x.id - y.id : x[sortBy]! < y[sortBy]! ? -1 : 1),
        );
      const start = q.has('cursor') ? Number(Buffer.from(q.get('cursor')!, 'base64url')) : 0;
      const next =
        start + limit < all.length
          ? Buffer.from(String(start + limit)).toString('base64url')
          : null;
      return ok(all.slice(start, start + limit), { additional_data: { next_cursor: next } });
    }
    const act = /^\/api\/v2\/activities\/(\d+)$/.exec(url.pathname);
    if (req.method === 'GET' && act) {
      const a = this.activities.find((x) => x.id === Number(act[1]));
      if (!a) return fail(404, 'Activity not found');
      return ok(a);
    }
    const rec = /^\/api\/v1\/callLogs\/([0-9a-f]+)\/recordings$/.exec(url.pathname);
    if (req.method === 'POST' && rec) {
      const log = this.callLogs.get(rec[1]!);
      if (!log) return fail(404, 'Call log not found');
      if (log.recording) return fail(409, 'Recording already exists');
      const file = multipartFile(String(req.headers['content-type']), raw);
      if (!file) return fail(400, 'multipart/form-data with a "file" part expected');
      log.recording = file;
      return ok({ success: true });
    }
    if (req.method === 'POST' && url.pathname === '/api/v1/notes') {
      const b = json();
      if (!b?.content) return fail(400, 'content is required');
      if (!b.person_id && !b.deal_id && !b.org_id && !b.lead_id)
        return fail(400, 'A note needs a deal, person, organization or lead');
      const note = { id: this.nextId++, content: b.content, person_id: b.person_id };
      this.notes.push(note);
      return ok(note);
    }
    fail(404, `no route ${key}`);
  }
}

/** An activity from the relay or made for a call log, timestamped as Pipedrive v2 does. */
function pdNow(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const ACTIVITY_TYPES = ['call', 'meeting', 'task', 'deadline', 'email', 'lunch'];

/** v2 activity fields: owner_id, a boolean done, dates as on v1. */
function checkActivity(b: Record<string, any>): string | undefined {
  if (b.type !== undefined && !ACTIVITY_TYPES.includes(b.type))
    return `type must be an activity type key (${ACTIVITY_TYPES.join(', ')})`;
  if (b.done !== undefined && typeof b.done !== 'boolean') return 'done must be a boolean';
  if (b.due_date !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(b.due_date))
    return 'due_date must be YYYY-MM-DD';
  if (b.due_time !== undefined && !/^\d{2}:\d{2}$/.test(b.due_time))
    return 'due_time must be HH:MM';
  for (const k of ['owner_id', 'person_id', 'org_id', 'deal_id'])
    if (b[k] !== undefined && !Number.isInteger(b[k])) return `${k} must be an integer`;
  return undefined;
}

function checkCallLog(b: Record<string, any>): string | undefined {
  for (const [k, v] of Object.entries(b)) {
    const type = CALL_LOG_FIELDS[k];
    if (!type) return `"${k}" is not allowed.`;
    if (type === 'string' && typeof v !== 'string') return `"${k}" must be a string.`;
  }
  if (!OUTCOMES.includes(b.outcome)) return `outcome must be one of ${OUTCOMES.join(', ')}`;
  if (typeof b.to_phone_number !== 'string' || !b.to_phone_number)
    return 'to_phone_number is required';
  if (!TIME.test(b.start_time ?? '') || !TIME.test(b.end_time ?? ''))
    return 'start_time and end_time are required, as YYYY-MM-DD HH:MM:SS (UTC)';
  if (b.end_time < b.start_time) return 'end_time is before start_time';
  if (b.duration !== undefined && (typeof b.duration !== 'string' || !/^\d+$/.test(b.duration)))
    return 'duration must be a string of seconds';
  for (const k of ['user_id', 'person_id', 'org_id', 'deal_id', 'activity_id'])
    if (b[k] !== undefined && !Number.isInteger(b[k])) return `${k} must be an integer`;
  if (b.deal_id && b.lead_id) return 'a call log links to a deal or a lead, not both';
  return undefined;
}

/** The "file" part of a multipart/form-data body. */
function multipartFile(contentType: string, raw: Buffer): CallLog['recording'] | undefined {
  const m = /boundary=([^;]+)/.exec(contentType);
  if (!contentType.startsWith('multipart/form-data') || !m) return undefined;
  const sep = Buffer.from(`--${m[1]}`);
  let at = raw.indexOf(sep);
  while (at >= 0) {
    const next = raw.indexOf(sep, at + sep.length);
    if (next < 0) break;
    const part = raw.subarray(at + sep.length + 2, next - 2);
    const headEnd = part.indexOf('\r\n\r\n');
    const head = part.subarray(0, headEnd).toString();
    if (/name="file"/.test(head)) {
      return {
        filename: /filename="([^"]*)"/.exec(head)?.[1] ?? '',
        contentType: /content-type:\s*([^\r\n]+)/i.exec(head)?.[1] ?? '',
        bytes: part.subarray(headEnd + 4),
        headers: Object.fromEntries(
          head
            .split('\r\n')
            .map((l) => /^([^:]+):\s*(.*)$/.exec(l))
            .filter((x): x is RegExpExecArray => x !== null)
            .map((x) => [x[1]!.toLowerCase(), x[2]!]),
        ),
      };
    }
    at = next;
  }
  return undefined;
}
