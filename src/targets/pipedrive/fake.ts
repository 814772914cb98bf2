// A fake Pipedrive on 127.0.0.1 that holds the relay to the documented API (docs/crm-notes.md B,
// specs/pipedrive): x-api-token auth, the call-log schema (required fields, outcome enum, UTC
// "YYYY-MM-DD HH:MM:SS", duration as a string), multipart recordings, notes that need a parent,
// v2 person search, the 2-second rate window with Pipedrive's headers. Faults can be scripted.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { CrmFake } from '../../../test/fakes/local-server.js';

export interface CallLog {
  id: string;
  body: Record<string, any>;
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

export class FakePipedrive extends CrmFake {
  readonly callLogs = new Map<string, CallLog>();
  readonly persons = new Map<number, { id: number; name: string; phones: string[] }>();
  readonly users: { id: number; email: string; name: string }[] = [];
  readonly notes: { id: number; content: string; person_id: number }[] = [];
  readonly activities: Record<string, any>[] = [];
  readonly faults: { match: string; fault: Fault }[] = [];
  /** Requests per 2-second window (Lite plan, API token: 20). */
  limit = 20;
  private window: number[] = [];
  private nextId = 1;

  constructor(readonly token: string) {
    super();
  }

  addPerson(name: string, phones: string[]): number {
    const id = this.nextId++;
    this.persons.set(id, { id, name, phones });
    return id;
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
    const fault = fi >= 0 ? this.faults.splice(fi, 1)[0]!.fault : undefined;
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
      const fields = (url.searchParams.get('fields') ?? '').split(',');
      if (!fields.every((f) => ['custom_fields', 'email', 'notes', 'phone', 'name'].includes(f)))
        return fail(400, 'bad fields');
      if (term.length < (url.searchParams.get('exact_match') === 'true' ? 1 : 2))
        return fail(400, 'term too short');
      // Exact match on the stored string, after dropping spaces (as a careful client cannot rely
      // on more).
      const norm = (s: string): string => s.replace(/\s/g, '');
      const items = [...this.persons.values()]
        .filter((p) => p.phones.some((ph) => norm(ph) === norm(term)))
        .map((p) => ({
          result_score: 1,
          item: { id: p.id, type: 'person', name: p.name, phones: p.phones },
        }));
      return ok({ items }, { additional_data: { next_cursor: null } });
    }
    if (req.method === 'GET' && url.pathname === '/api/v1/users/me')
      return ok({ id: 1, name: 'Relay Bot', company_name: 'Acme', company_domain: 'acme' });
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
      const id = [...Array(32)].map(() => Math.floor(Math.random() * 16).toString(16)).join('');
      this.callLogs.set(id, { id, body: b });
      return ok({ id, has_recording: false, company_id: 1, ...b });
    }
    if (req.method === 'GET' && url.pathname === '/api/v1/callLogs') {
      const start = Number(url.searchParams.get('start') ?? 0);
      const limit = Number(url.searchParams.get('limit') ?? 20);
      if (limit > 50) return fail(400, 'limit is at most 50');
      const all = [...this.callLogs.values()].reverse().map((l) => ({ id: l.id, ...l.body }));
      return ok(all.slice(start, start + limit), {
        additional_data: {
          pagination: { start, limit, more_items_in_collection: start + limit < all.length },
        },
      });
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
    if (req.method === 'POST' && url.pathname === '/api/v1/activities') {
      const b = json();
      if (!b?.subject || !b.type) return fail(400, 'subject and type are required');
      if (b.due_date && !/^\d{4}-\d{2}-\d{2}$/.test(b.due_date))
        return fail(400, 'due_date must be YYYY-MM-DD');
      if (b.due_time && !/^\d{2}:\d{2}$/.test(b.due_time))
        return fail(400, 'due_time must be HH:MM');
      const a = { id: this.nextId++, ...b };
      this.activities.push(a);
      return ok(a);
    }
    fail(404, `no route ${key}`);
  }
}

function checkCallLog(b: Record<string, any>): string | undefined {
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
