// "Pebble CRM": a made-up CRM on 127.0.0.1 for the REST target's tests, shaped unlike the shipped
// recipes' CRMs on purpose (it follows no vendor's documents): an API key in a header (or a
// bearer token), form-encoded bodies, the new call's id only in Location, a contact search that is
// fuzzy about numbers and pages two at a time, a user search by email, errors inside a 200 answer
// (`{ ok: false, error: { code, message } }`), 429 with its own wait header (x-pebble-retry-ms),
// a write by external reference (PUT /v1/calls/ref/<ref>: 201 with the id, or 204), and contacts
// made by form (POST /v1/contacts).
// Faults can be scripted one by one or dealt at random rates (failures, lost answers: the call
// is made, then the connection dropped before the answer).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { CrmFake, seededRandom } from './local-server.js';

export interface PebbleCall {
  id: string;
  fields: Record<string, string>;
  /** Every PUT's fields, in order. */
  updates: Record<string, string>[];
  attachments: { filename: string; bytes: number }[];
}

type Fault =
  | { status: number; body?: unknown; headers?: Record<string, string> }
  | { lost: true }
  | { errorIn200: { code: string; message: string } };

const DIRECTIONS = ['in', 'out'];
const OUTCOMES = ['talked', 'no-answer', 'busy', 'failed'];
const PAGE = 2;

export class FakePebble extends CrmFake {
  readonly calls = new Map<string, PebbleCall>();
  readonly contacts: { id: string; name: string; phones: string[]; created: string }[] = [];
  readonly users: { id: string; email: string }[] = [];
  readonly faults: { match: string; fault: Fault }[] = [];
  /** Contact ids merged into others: a write naming one is refused (code MERGED). */
  readonly merged = new Set<string>();
  /** Random faults on requests whose "METHOD /path" starts with one of `match`. */
  private chaos: { match: string[]; fail: number; lost: number } | undefined;
  readonly chaosLog: string[] = [];
  private random: () => number = seededRandom(0);
  private nextId = 100;
  /** Every form body sent, by "METHOD /path". */
  readonly forms: { key: string; fields: Record<string, string> }[] = [];

  /** A fixed key in a header, or a bearer token the CRM's authorization server says is live. */
  constructor(
    private readonly auth: { header: string; value: string } | { bearer: (t: string) => boolean },
  ) {
    super();
  }

  private authorized(req: IncomingMessage): boolean {
    if ('bearer' in this.auth) {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      return !!token && this.auth.bearer(token);
    }
    return req.headers[this.auth.header] === this.auth.value;
  }

  setChaos(c: { match: string[]; fail: number; lost: number; seed: number } | undefined): void {
    this.chaos = c;
    this.random = seededRandom(c?.seed ?? 0);
  }

  addContact(name: string, phones: string[], created = new Date().toISOString()): string {
    const id = `c${this.nextId++}`;
    this.contacts.push({ id, name, phones, created });
    return id;
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://x');
    const key = `${req.method} ${url.pathname}`;
    const send = (status: number, body?: unknown, headers: Record<string, string> = {}): void => {
      this.log.push({ method: req.method!, path: url.pathname, status });
      res.writeHead(status, {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
    if (!this.authorized(req))
      return send(401, { ok: false, error: { code: 'AUTH', message: 'bad credentials' } });

    let lost = false;
    const i = this.faults.findIndex((f) => key.startsWith(f.match));
    if (i >= 0) {
      const { fault } = this.faults.splice(i, 1)[0]!;
      if ('lost' in fault) lost = true;
      else if ('errorIn200' in fault) return send(200, { ok: false, error: fault.errorIn200 });
      else return send(fault.status, fault.body, fault.headers);
    } else if (this.chaos && this.chaos.match.some((m) => key.startsWith(m))) {
      const r = this.random();
      if (r < this.chaos.fail) {
        this.chaosLog.push(`fail ${key}`);
        return send(500, { ok: false, error: { code: 'OOPS', message: 'internal error' } });
      }
      if (r < this.chaos.fail + this.chaos.lost) {
        this.chaosLog.push(`lost ${key}`);
        lost = true;
      }
    }
    // Done, then the answer never arrives.
    const reply = lost
      ? (status: number): void => {
          this.log.push({ method: req.method!, path: url.pathname, status });
          res.destroy();
        }
      : send;

    const form = (): Record<string, string> | undefined => {
      if (!String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded'))
        return undefined;
      const f = Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
      this.forms.push({ key, fields: f });
      return f;
    };
    const invalid = (message: string): void =>
      reply(200, {
        ok: false,
        error: { code: / was merged into /.test(message) ? 'MERGED' : 'INVALID', message },
      });

    if (req.method === 'GET' && url.pathname === '/v1/contacts') {
      // Fuzzy, as CRM searches are: any contact whose digits contain the term's digits.
      const digits = (url.searchParams.get('phone') ?? '').replace(/\D/g, '');
      const page = Number(url.searchParams.get('page') ?? '1');
      const all = digits
        ? this.contacts.filter((c) => c.phones.some((p) => p.replace(/\D/g, '').includes(digits)))
        : [];
      const items = all.slice((page - 1) * PAGE, page * PAGE);
      return reply(200, { ok: true, page, more: page * PAGE < all.length, items });
    }
    if (req.method === 'GET' && url.pathname === '/v1/users') {
      const email = (url.searchParams.get('email') ?? '').toLowerCase();
      return reply(200, { ok: true, users: this.users.filter((u) => u.email === email) });
    }
    if (req.method === 'GET' && url.pathname === '/v1/calls') {
      const ref = url.searchParams.get('external_ref');
      const items = [...this.calls.values()]
        .filter((c) => ref && c.fields.external_ref === ref)
        .map((c) => ({ id: c.id }));
      return reply(200, { ok: true, items });
    }
    if (req.method === 'POST' && url.pathname === '/v1/calls') {
      const f = form();
      if (!f)
        return reply(415, { ok: false, error: { code: 'FORM', message: 'form bodies only' } });
      const problem = this.validate(f);
      if (problem) return invalid(problem);
      const id = String(this.nextId++);
      this.calls.set(id, { id, fields: f, updates: [], attachments: [] });
      return reply(201, undefined, { location: `/v1/calls/${id}` });
    }
    // Write by external reference: made (201 with its id) or updated (204), never twice.
    const byRef = /^\/v1\/calls\/ref\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'PUT' && byRef) {
      const ref = decodeURIComponent(byRef[1]!);
      const f = form();
      if (!f)
        return reply(415, { ok: false, error: { code: 'FORM', message: 'form bodies only' } });
      const problem = this.validate(f);
      if (problem) return invalid(problem);
      const had = [...this.calls.values()].find((c) => c.fields.external_ref === ref);
      if (had) {
        had.updates.push(f);
        had.fields = { ...had.fields, ...f, external_ref: ref };
        return reply(204);
      }
      const id = String(this.nextId++);
      this.calls.set(id, { id, fields: { ...f, external_ref: ref }, updates: [], attachments: [] });
      return reply(201, { ok: true, id });
    }
    const one = /^\/v1\/calls\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'PUT' && one) {
      const call = this.calls.get(one[1]!);
      if (!call) return reply(404, { ok: false, error: { code: 'NOT_FOUND', message: 'no call' } });
      const f = form();
      if (!f)
        return reply(415, { ok: false, error: { code: 'FORM', message: 'form bodies only' } });
      const problem = this.validate(f);
      if (problem) return invalid(problem);
      call.updates.push(f);
      call.fields = { ...call.fields, ...f };
      return reply(200, { ok: true });
    }
    const att = /^\/v1\/calls\/([^/]+)\/attachments$/.exec(url.pathname);
    if (req.method === 'POST' && att) {
      const call = this.calls.get(att[1]!);
      if (!call) return reply(404, { ok: false, error: { code: 'NOT_FOUND', message: 'no call' } });
      if (String(req.headers['content-type']).startsWith('application/json')) {
        // The JSON form: { name, data } with the file in base64.
        const j = JSON.parse(raw.toString('utf8')) as { name?: string; data?: string };
        call.attachments.push({
          filename: j.name ?? '',
          bytes: Buffer.from(j.data ?? '', 'base64').length,
        });
        return reply(201, { ok: true });
      }
      const m = /filename="([^"]*)"/.exec(raw.toString('latin1'));
      call.attachments.push({ filename: m?.[1] ?? '', bytes: raw.length });
      return reply(201, { ok: true });
    }
    // A contact made (a recipe's newContact): { name, phone } as a form; 201 with its id.
    if (req.method === 'POST' && url.pathname === '/v1/contacts') {
      const f = form();
      if (!f?.phone) return invalid('phone is required');
      return reply(201, { ok: true, id: this.addContact(f.name || f.phone, [f.phone]) });
    }
    return reply(404, { ok: false, error: { code: 'NOT_FOUND', message: `no ${key}` } });
  }

  private validate(f: Record<string, string>): string | undefined {
    if (f.contact_id && this.merged.has(f.contact_id))
      return `contact ${f.contact_id} was merged into another`;
    if (!f.subject) return 'subject is required';
    if (!DIRECTIONS.includes(f.direction ?? '')) return `direction must be one of ${DIRECTIONS}`;
    if (!OUTCOMES.includes(f.outcome ?? '')) return `outcome must be one of ${OUTCOMES}`;
    if (!/^\d+$/.test(f.duration_sec ?? '')) return 'duration_sec must be whole seconds';
    return undefined;
  }
}
