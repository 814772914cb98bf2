// Plays 3CX's server-side CRM integration from a template's text, as the PBX would run it against
// the "CRM" (here: the relay): the admin's parameters over the template's defaults, <Number>
// formatting, [Variable] substitution in Passes rounds with the .NET calls templates use
// (ToString(fmt), get_TotalSeconds()), IIf / == / != / || conditions in SkipIf and If, the request
// (Url, RequestType, Basic auth, headers, PostValues as JSON or a form), and the answer through
// Rules, Variables (dot paths that walk arrays) and Outputs, then 3CX's own acceptance of a
// contact: a ContactUrl, a name, and (for a number lookup) a phone output holding the asked number.
// docs/3cx-template.md cites the public templates and 3CX's template description it rests on.
// Where 3CX's behaviour is not documented (what Passes="0" means exactly, whether [Number] is
// URL-escaped in a Url) it takes the reading the real templates rely on (one pass evaluates nested
// calls; no escaping but [EscapedSearchText]), and it is strict where a lenient reading would hide
// a template bug: a variable the PBX does not have stays its literal "[Name]", as on a V18 PBX.

import { XMLParser, XMLValidator } from 'fast-xml-parser';

/** An element of the template: its attributes, child elements in order, and its own text. */
export interface XNode {
  name: string;
  attrs: Record<string, string>;
  children: XNode[];
  text: string;
}

type Ordered = Record<string, unknown>[];

/** The template's root element (<Crm>), in document order; throws on XML that does not parse. */
export function parseTemplate(xml: string): XNode {
  const valid = XMLValidator.validate(xml);
  if (valid !== true)
    throw new Error(`not well-formed XML: ${valid.err.msg} (line ${valid.err.line})`);
  // The validator lets a bare "&" pass; .NET's XML reader (3CX) does not.
  const amp = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[\da-f]+);)/i.exec(xml);
  if (amp) throw new Error(`not well-formed XML: a bare "&" at offset ${amp.index}`);
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '',
    preserveOrder: true,
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: true,
  });
  const toNode = (entry: Record<string, unknown>): XNode | undefined => {
    const name = Object.keys(entry).find((k) => k !== ':@');
    if (!name || name.startsWith('?') || name === '#text') return undefined;
    const body = entry[name] as Ordered;
    return {
      name,
      attrs: { ...((entry[':@'] as Record<string, string> | undefined) ?? {}) },
      children: body.map(toNode).filter((n): n is XNode => !!n),
      text: body
        .filter((c) => '#text' in c)
        .map((c) => String(c['#text']))
        .join(''),
    };
  };
  const roots = (parser.parse(xml) as Ordered).map(toNode).filter((n): n is XNode => !!n);
  if (roots.length !== 1) throw new Error(`expected one root element, found ${roots.length}`);
  return roots[0]!;
}

export const child = (n: XNode | undefined, name: string): XNode | undefined =>
  n?.children.find((c) => c.name === name);
export const children = (n: XNode | undefined, name: string): XNode[] =>
  n?.children.filter((c) => c.name === name) ?? [];

/**
 * The variables 3CX gives each scenario (i23 facts §7/§8): the template may use these, its
 * parameters, and its scenario's own variables, nothing else. `Contact::<Output>` is the matched
 * contact's output, in the journal.
 */
export const THREECX_VARIABLES: Record<string, readonly string[]> = {
  '': ['Number', 'FoundRecordCount'],
  SearchContacts: ['SearchText', 'EscapedSearchText', 'FoundRecordCount'],
  LookupByEmail: ['Email', 'FoundRecordCount'],
  CreateContactRecordFromClient: ['FirstName', 'LastName', 'Email', 'Number', 'Company'],
  ReportCall: [
    'CallType',
    'CallDirection',
    'Number',
    'Name',
    'Agent',
    'AgentFirstName',
    'AgentLastName',
    'AgentEmail',
    'QueueExtension',
    'Duration',
    'DurationTimespan',
    'DateTime',
    'CallStartTimeLocal',
    'CallStartTimeUTC',
    'CallEndTimeLocal',
    'CallEndTimeUTC',
    'CallEstablishedTimeLocal',
    'CallEstablishedTimeUTC',
    'EntityId',
    'EntityType',
    'RecordingUrl',
    'Transcription',
    'Summary',
    'Sentiment',
  ],
};
/** Variables only a V20 PBX fills; a V18 leaves them as their literal "[Name]". */
export const V20_ONLY = [
  'AgentFirstName',
  'AgentLastName',
  'AgentEmail',
  'RecordingUrl',
  'Transcription',
  'Summary',
  'Sentiment',
];
/** The outputs 3CX compares with the caller's number. */
export const PHONE_OUTPUTS = [
  'PhoneBusiness',
  'PhoneBusiness2',
  'PhoneMobile',
  'PhoneMobile2',
  'PhoneHome',
  'PhoneOther',
];

// ---- values and expressions ------------------------------------------------------------------

class TimeSpan {
  constructor(readonly ms: number) {}
  toString(): string {
    const s = Math.floor(this.ms / 1000);
    const p = (n: number): string => String(n).padStart(2, '0');
    return `${p(Math.floor(s / 3600))}:${p(Math.floor(s / 60) % 60)}:${p(s % 60)}`;
  }
}
/** A .NET DateTime: its wall-clock fields are the Date's UTC fields (no zone of its own). */
class DateTimeValue {
  constructor(readonly wall: Date) {}
}
type Value = string | number | boolean | TimeSpan | DateTimeValue;

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** .NET custom (and the common standard) DateTime format strings, invariant culture. */
function formatDate(d: Date, fmt: string): string {
  const standard: Record<string, string> = {
    t: 'HH:mm',
    T: 'HH:mm:ss',
    d: 'MM/dd/yyyy',
    s: "yyyy-MM-dd'T'HH:mm:ss",
    u: "yyyy-MM-dd HH:mm:ss'Z'",
    g: 'MM/dd/yyyy HH:mm',
    G: 'MM/dd/yyyy HH:mm:ss',
  };
  const f = standard[fmt] ?? fmt;
  const tokens: [RegExp, () => string][] = [
    [/^yyyy/, () => pad(d.getUTCFullYear(), 4)],
    [/^yy/, () => pad(d.getUTCFullYear() % 100)],
    [/^MM/, () => pad(d.getUTCMonth() + 1)],
    [/^M/, () => String(d.getUTCMonth() + 1)],
    [/^dd/, () => pad(d.getUTCDate())],
    [/^d/, () => String(d.getUTCDate())],
    [/^HH/, () => pad(d.getUTCHours())],
    [/^H/, () => String(d.getUTCHours())],
    [/^hh/, () => pad(d.getUTCHours() % 12 || 12)],
    [/^mm/, () => pad(d.getUTCMinutes())],
    [/^ss/, () => pad(d.getUTCSeconds())],
    [/^fff/, () => pad(d.getUTCMilliseconds(), 3)],
    [/^tt/, () => (d.getUTCHours() < 12 ? 'AM' : 'PM')],
  ];
  let out = '';
  let rest = f;
  outer: while (rest) {
    if (rest[0] === "'" || rest[0] === '"') {
      const end = rest.indexOf(rest[0], 1);
      out += rest.slice(1, end < 0 ? undefined : end);
      rest = end < 0 ? '' : rest.slice(end + 1);
      continue;
    }
    if (rest[0] === '\\') {
      out += rest[1] ?? '';
      rest = rest.slice(2);
      continue;
    }
    for (const [re, fn] of tokens) {
      const m = re.exec(rest);
      if (m) {
        out += fn();
        rest = rest.slice(m[0].length);
        continue outer;
      }
    }
    out += rest[0];
    rest = rest.slice(1);
  }
  return out;
}

/** How a value reads once it is text (3CX's en-US culture for dates). */
function show(v: Value): string {
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (v instanceof DateTimeValue) return formatDate(v.wall, 'M/d/yyyy h:mm:ss tt');
  return String(v);
}

/** The index of the bracket closing the one at `open`, minding nested brackets and quotes. */
function closing(s: string, open: number, pair = '[]'): number {
  let depth = 0;
  let quote = '';
  for (let i = open; i < s.length; i++) {
    const ch = s[i]!;
    if (quote) {
      if (ch === quote) quote = '';
    } else if (ch === '"') quote = ch;
    else if (ch === pair[0]) depth++;
    else if (ch === pair[1] && --depth === 0) return i;
  }
  return -1;
}

/** Splits at top-level occurrences of `sep` (outside brackets, parentheses and quotes). */
function splitTop(s: string, sep: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote = '';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quote) {
      if (ch === quote) quote = '';
      continue;
    }
    if (ch === '"') quote = ch;
    else if (ch === '[' || ch === '(') depth++;
    else if (ch === ']' || ch === ')') depth--;
    else if (depth === 0 && s.startsWith(sep, i)) {
      parts.push(s.slice(start, i));
      start = i + sep.length;
      i += sep.length - 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}

const NAME = /^[A-Za-z_][\w]*(?:::[A-Za-z_][\w]*)?$/;

/** Evaluates expressions against a scope of variables, as one 3CX substitution pass. */
class Evaluator {
  constructor(private readonly scope: (name: string) => Value | undefined) {}

  /** A text with [..] groups: a lone group keeps its type (for nested calls). */
  value(s: string): Value {
    const t = s.trim();
    if (t.startsWith('[') && closing(t, 0) === t.length - 1) return this.group(t.slice(1, -1));
    return this.text(s);
  }

  text(s: string): string {
    let out = '';
    let i = 0;
    while (i < s.length) {
      const open = s.indexOf('[', i);
      if (open < 0) break;
      const end = closing(s, open);
      if (end < 0) break;
      out += s.slice(i, open) + show(this.group(s.slice(open + 1, end)));
      i = end + 1;
    }
    return out + s.slice(i);
  }

  /** The inside of one [..] group. */
  private group(inner: string): Value {
    const t = inner.trim();
    if (NAME.test(t)) return this.scope(t) ?? `[${t}]`; // the PBX lacks it: literal, as V18 does
    const iif = /^IIf\s*\(([\s\S]*)\)$/i.exec(t);
    if (iif) {
      const [cond = '', a = '', b = ''] = splitTop(iif[1]!, ',');
      return this.text(this.condition(cond) ? a : b).trim();
    }
    // [<group>].Method(args)[.Method(args)...]
    if (t.startsWith('[')) {
      const end = closing(t, 0);
      let v = this.group(t.slice(1, end));
      let rest = t.slice(end + 1);
      let call: RegExpExecArray | null;
      while ((call = /^\.(\w+)\(((?:"[^"]*"|[^)])*)\)/.exec(rest))) {
        v = this.call(v, call[1]!, call[2]!.trim().replace(/^"(.*)"$/, '$1'));
        rest = rest.slice(call[0].length);
      }
      if (!rest.trim()) return v;
    }
    return `[${this.text(t)}]`;
  }

  private call(v: Value, method: string, arg: string): Value {
    switch (method) {
      case 'ToString':
        if (v instanceof DateTimeValue) return formatDate(v.wall, arg || 'M/d/yyyy h:mm:ss tt');
        if (typeof v === 'number' && /^[FN]\d*$/i.test(arg))
          return v.toFixed(Number(arg.slice(1) || 2));
        return show(v);
      case 'get_TotalSeconds':
        if (v instanceof TimeSpan) return v.ms / 1000;
        break;
      case 'get_TotalMinutes':
        if (v instanceof TimeSpan) return v.ms / 60_000;
        break;
    }
    throw new Error(`3CX harness: ${method}(${arg}) on ${show(v)} is not something 3CX can do`);
  }

  /** SkipIf / If / IIf conditions: ||, &&, ==, !=, >, <, >=, <=; a bare True is true. */
  condition(s: string): boolean {
    if (!s.trim()) return false;
    const ors = splitTop(s, '||');
    if (ors.length > 1) return ors.some((p) => this.condition(p));
    const ands = splitTop(s, '&&');
    if (ands.length > 1) return ands.every((p) => this.condition(p));
    for (const op of ['!=', '==', '>=', '<=', '>', '<']) {
      const sides = splitTop(s, op);
      if (sides.length !== 2) continue;
      const [a, b] = sides.map((x) =>
        this.text(x)
          .trim()
          .replace(/^"(.*)"$/, '$1'),
      ) as [string, string];
      const numeric = a !== '' && b !== '' && !isNaN(Number(a)) && !isNaN(Number(b));
      const [x, y] = numeric ? [Number(a), Number(b)] : [a.toLowerCase(), b.toLowerCase()];
      switch (op) {
        case '!=':
          return x !== y;
        case '==':
          return x === y;
        case '>=':
          return x >= y;
        case '<=':
          return x <= y;
        case '>':
          return x > y;
        default:
          return x < y;
      }
    }
    return this.text(s).trim().toLowerCase() === 'true';
  }
}

// ---- answers: paths, rules, variables ----------------------------------------------------------

interface Leaf {
  value: unknown;
  /** The index taken at each array on the way (the first one is the record). */
  indexes: number[];
  /** The objects passed on the way, by path depth. */
  trail: unknown[];
}

/** Values at a dot path; arrays on the way are walked implicitly, as 3CX does. */
function walk(root: unknown, path: string): Leaf[] {
  const segs = path.split('.').filter(Boolean);
  const out: Leaf[] = [];
  const go = (v: unknown, i: number, indexes: number[], trail: unknown[]): void => {
    if (Array.isArray(v)) {
      v.forEach((e, k) => go(e, i, [...indexes, k], trail));
      return;
    }
    if (i === segs.length) {
      if (v !== undefined && v !== null) out.push({ value: v, indexes, trail });
      return;
    }
    if (v && typeof v === 'object') {
      const m = /^(\w+)\[(\d+)\]$/.exec(segs[i]!);
      const next = m
        ? ((v as Record<string, unknown[]>)[m[1]!] ?? [])[Number(m[2])]
        : (v as Record<string, unknown>)[segs[i]!];
      go(next, i + 1, indexes, [...trail, v]);
    }
  };
  go(root, 0, [], []);
  return out;
}

const scalar = (v: unknown): string =>
  typeof v === 'object' ? JSON.stringify(v) : typeof v === 'boolean' ? show(v) : String(v);

// ---- the PBX ----------------------------------------------------------------------------------

/** A contact as 3CX takes it from a scenario's Outputs: output type -> value. */
export type Contact = Record<string, string>;

/** A finished call, as the PBX knows it when it journals (ReportCall). */
export interface PbxCall {
  callType: 'Inbound' | 'Outbound' | 'Missed' | 'Notanswered';
  /** The external party's number as the PBX holds it (before <Number> formatting). */
  number: string;
  agent: string;
  agentFirstName?: string;
  agentLastName?: string;
  agentEmail?: string;
  queue?: string;
  name?: string;
  start: Date;
  end: Date;
  /** Talk time; 0 for a call nobody answered. */
  talkSec: number;
  recordingUrl?: string;
  transcription?: string;
  summary?: string;
  sentiment?: string;
  /** The matched contact's outputs ([Contact::X]); by default the last lookup of the number. */
  contact?: Contact;
}

export interface Exchange {
  scenario: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
  status: number;
  answer: string;
  ms: number;
}

export interface ThreeCxOptions {
  /** The admin's values in the integration's form (e.g. Token), over the template's Defaults. */
  params?: Record<string, string>;
  /** 18 leaves the V20-only variables as their literal "[Name]". */
  version?: 18 | 20;
  /** Minutes east of UTC of the PBX's local time ([CallStartTimeLocal], [DateTime]). */
  utcOffsetMin?: number;
  /** How long the PBX waits for the CRM (not documented by 3CX). */
  timeoutMs?: number;
}

/** 3CX running one uploaded template. */
export class ThreeCx {
  readonly root: XNode;
  readonly params: Record<string, string>;
  /** Every request it made, with the answer. */
  readonly exchanges: Exchange[] = [];
  /** Records a scenario produced that 3CX's acceptance turned down, with why. */
  readonly rejected: { contact: Contact; reason: string }[] = [];
  private readonly version: 18 | 20;
  private readonly matched = new Map<string, Contact>();
  private readonly maxConcurrent: number;
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    template: string,
    private readonly o: ThreeCxOptions = {},
  ) {
    this.root = parseTemplate(template);
    if (this.root.name !== 'Crm') throw new Error(`root element is <${this.root.name}>, not <Crm>`);
    this.version = o.version ?? 20;
    this.params = {};
    for (const p of children(child(this.root, 'Parameters'), 'Parameter'))
      this.params[p.attrs.Name!] = o.params?.[p.attrs.Name!] ?? p.attrs.Default ?? '';
    this.maxConcurrent = Number(child(this.root, 'Connection')?.attrs.MaxConcurrentRequests) || 4;
  }

  scenarios(id: string): XNode[] {
    return children(child(this.root, 'Scenarios'), 'Scenario').filter(
      (s) => (s.attrs.Id ?? '') === id,
    );
  }

  /** The number as <Number Prefix MaxLength> makes it before it is matched and sent. */
  formatNumber(raw: string): string {
    const spec = child(this.root, 'Number')?.attrs ?? {};
    let n = raw.trim();
    const intl = n.startsWith('+') ? n.slice(1) : n.startsWith('00') ? n.slice(2) : undefined;
    switch (spec.Prefix) {
      case 'Off':
        if (intl !== undefined) n = intl;
        break;
      case 'Plus':
        if (intl !== undefined) n = `+${intl}`;
        break;
      case 'Zeros':
        if (intl !== undefined) n = `00${intl}`;
        break;
    }
    const max = Number(spec.MaxLength);
    if (spec.MaxLength && Number.isInteger(max) && max > 0) {
      const digits = n.replace(/\D/g, '');
      if (digits.length > max) n = digits.slice(-max);
    }
    return n;
  }

  /** Ring time: who is calling? The accepted contact, or undefined (3CX shows the bare number). */
  async lookup(rawNumber: string): Promise<Contact | undefined> {
    const number = this.formatNumber(rawNumber);
    let found: Contact[] = [];
    for (const s of this.scenarios('')) {
      const records = await this.run(s, { Number: number, FoundRecordCount: found.length }, false);
      if (records) found = [...found, ...this.accept(records, number)];
    }
    if (found[0]) this.matched.set(number, found[0]);
    return found[0];
  }

  /** The Web Client's contact search. */
  async search(text: string): Promise<Contact[]> {
    const vars = { SearchText: text, EscapedSearchText: encodeURIComponent(text) };
    return this.runAll('SearchContacts', vars, true);
  }

  async lookupEmail(address: string): Promise<Contact | undefined> {
    return (await this.runAll('LookupByEmail', { Email: address }, false))[0];
  }

  /** "Create contact" in the Web Client; undefined when the template has no such scenario. */
  async createContact(c: {
    firstName: string;
    lastName: string;
    email?: string;
    number: string;
    company?: string;
  }): Promise<Contact | undefined> {
    const vars = {
      FirstName: c.firstName,
      LastName: c.lastName,
      Email: c.email ?? '',
      Number: this.formatNumber(c.number),
      Company: c.company ?? '',
    };
    return (await this.runAll('CreateContactRecordFromClient', vars, false))[0];
  }

  /** Journals a finished call as the PBX does once it ends; the ReportCall exchanges it made. */
  async reportCall(call: PbxCall): Promise<Exchange[]> {
    const before = this.exchanges.length;
    const number = this.formatNumber(call.number);
    const local = (d: Date): DateTimeValue =>
      new DateTimeValue(new Date(d.getTime() + (this.o.utcOffsetMin ?? 0) * 60_000));
    const talk = new TimeSpan(call.talkSec * 1000);
    const vars: Record<string, Value> = {
      CallType: call.callType,
      CallDirection: /^(Inbound|Missed)$/.test(call.callType) ? 'Inbound' : 'Outbound',
      Number: number,
      Name: call.name ?? '',
      Agent: call.agent,
      QueueExtension: call.queue ?? '',
      Duration: talk.toString(),
      DurationTimespan: talk,
      DateTime: formatDate(local(call.start).wall, 'dd.MM.yyyy HH:mm'),
      CallStartTimeUTC: new DateTimeValue(call.start),
      CallEndTimeUTC: new DateTimeValue(call.end),
      CallStartTimeLocal: local(call.start),
      CallEndTimeLocal: local(call.end),
      CallEstablishedTimeUTC: new DateTimeValue(call.start),
      CallEstablishedTimeLocal: local(call.start),
    };
    const contact = call.contact ?? this.matched.get(number);
    if (contact) {
      vars.EntityId = contact.EntityId ?? contact.ContactID ?? '';
      vars.EntityType = contact.EntityType ?? '';
      for (const [k, v] of Object.entries(contact)) vars[`Contact::${k}`] = v;
    }
    if (this.version >= 20) {
      const v20: Record<string, string | undefined> = {
        AgentFirstName: call.agentFirstName,
        AgentLastName: call.agentLastName,
        AgentEmail: call.agentEmail,
        RecordingUrl: call.recordingUrl,
        Transcription: call.transcription,
        Summary: call.summary,
        Sentiment: call.sentiment,
      };
      for (const [k, v] of Object.entries(v20)) vars[k] = v ?? '';
    }
    await this.runAll('ReportCall', vars, false);
    return this.exchanges.slice(before).filter((e) => e.scenario.startsWith('ReportCall'));
  }

  /** The scenarios of an id, in order, and their chains (Next). */
  private async runAll(id: string, vars: Record<string, Value>, many: boolean): Promise<Contact[]> {
    const out: Contact[] = [];
    for (const s of this.scenarios(id)) {
      const records = await this.run(s, { ...vars, FoundRecordCount: out.length }, many);
      if (records) out.push(...this.accept(records, undefined));
    }
    return out;
  }

  /**
   * One scenario (and its Next chain): undefined when skipped or its rules found nothing,
   * else the records its Outputs made (one per element of the answer's list when `many`).
   */
  private async run(
    scenario: XNode,
    given: Record<string, Value>,
    many: boolean,
  ): Promise<Contact[] | undefined> {
    const scenarioVars: Record<string, Value> = {};
    const scope = (name: string): Value | undefined =>
      scenarioVars[name] ?? given[name] ?? this.params[name];
    const ev = new Evaluator(scope);
    const rounds = (text: string, passes: string | undefined): string => {
      let v = text;
      for (let i = 0; i < Math.max(1, Number(passes) || 0); i++) v = ev.text(v);
      return v;
    };
    const req = child(scenario, 'Request');
    if (!req) throw new Error(`scenario "${scenario.attrs.Id ?? ''}" has no <Request>`);
    if (ev.condition(req.attrs.SkipIf ?? '')) return undefined;

    const url = rounds(req.attrs.Url ?? '', '1');
    const method = (req.attrs.RequestType ?? 'Get').toUpperCase();
    const headers: Record<string, string> = {};
    const auth = child(this.root, 'Authentication');
    if (auth?.attrs.Type === 'Basic')
      headers.authorization = `Basic ${Buffer.from(rounds(child(auth, 'Value')?.text ?? '', '1')).toString('base64')}`;
    else if (auth && auth.attrs.Type !== 'No')
      throw new Error(`3CX harness: Authentication Type="${auth.attrs.Type}" is not played`);
    for (const h of children(child(req, 'Headers'), 'Value'))
      headers[h.attrs.Key!.toLowerCase()] = rounds(h.text, h.attrs.Passes);
    let body: string | undefined;
    const post = child(req, 'PostValues');
    if (post) {
      const values: Record<string, unknown> = {};
      for (const v of children(post, 'Value')) {
        if (v.attrs.SkipIf && ev.condition(v.attrs.SkipIf)) continue;
        if (v.attrs.If && !ev.condition(v.attrs.If)) continue;
        const text = rounds(v.text, v.attrs.Passes);
        values[v.attrs.Key!] = v.attrs.Type === 'Integer' ? Number(text) : text;
      }
      const payload = post.attrs.Key ? { [post.attrs.Key]: values } : values;
      if ((req.attrs.RequestEncoding ?? '').toLowerCase() === 'json') {
        body = JSON.stringify(payload);
        headers['content-type'] = req.attrs.RequestContentType || 'application/json';
      } else {
        body = new URLSearchParams(payload as Record<string, string>).toString();
        headers['content-type'] =
          req.attrs.RequestContentType || 'application/x-www-form-urlencoded';
      }
    }
    const answer = await this.exchange(scenario.attrs.Id ?? '', method, url, headers, body);
    if (answer === undefined) return undefined;

    const rules = children(child(scenario, 'Rules'), 'Rule');
    const passed = rules.every((r) => {
      const leaves = walk(answer, r.text);
      if (r.attrs.Type === 'Any') return leaves.some((l) => scalar(l.value) !== '');
      if (r.attrs.Type === 'Equals') {
        const want = ev.text(r.attrs.Ethalon ?? '');
        return leaves.some((l) => scalar(l.value) === want);
      }
      throw new Error(`3CX harness: Rule Type="${r.attrs.Type}" is not played`);
    });
    const outputs = child(scenario, 'Outputs');
    const allowEmpty = outputs?.attrs.AllowEmpty === 'true';
    if (!passed && !allowEmpty) return undefined;

    const variables = children(child(scenario, 'Variables'), 'Variable').map((v) => ({
      name: v.attrs.Name!,
      leaves: this.filtered(v, walk(answer, v.attrs.Path ?? ''), answer, ev),
    }));
    const recordCount = many
      ? Math.max(0, ...variables.flatMap((v) => v.leaves.map((l) => (l.indexes[0] ?? 0) + 1)))
      : 1;
    const records: Contact[] = [];
    for (let i = 0; i < (passed ? recordCount : 0); i++) {
      for (const v of variables) {
        const leaf = many ? v.leaves.find((l) => (l.indexes[0] ?? 0) === i) : v.leaves[0];
        scenarioVars[v.name] = leaf ? scalar(leaf.value) : '';
      }
      const contact: Contact = {};
      for (const o of children(outputs, 'Output'))
        contact[o.attrs.Type!] = rounds(o.attrs.Value ?? '', o.attrs.Passes);
      records.push(contact);
    }
    const next = outputs?.attrs.Next;
    if (next) {
      for (const s of this.scenarios(next)) {
        const more = await this.run(s, { ...given, ...scenarioVars }, many);
        if (more?.length) return more;
      }
    }
    return records;
  }

  /** A variable's <Filter><Rule Type="Equals" Ethalon=..>sibling.path</Rule></Filter>. */
  private filtered(v: XNode, leaves: Leaf[], answer: unknown, ev: Evaluator): Leaf[] {
    const rules = children(child(v, 'Filter'), 'Rule');
    if (!rules.length) return leaves;
    const vSegs = (v.attrs.Path ?? '').split('.');
    return leaves.filter((leaf) =>
      rules.every((r) => {
        const fSegs = r.text.split('.');
        let k = 0;
        while (k < vSegs.length - 1 && vSegs[k] === fSegs[k]) k++;
        const base = k === 0 ? answer : leaf.trail[k];
        const want = ev.text(r.attrs.Ethalon ?? '');
        return walk(base, fSegs.slice(k).join('.')).some((l) => scalar(l.value) === want);
      }),
    );
  }

  /** 3CX's acceptance of a record: ContactUrl, a name, and a phone with the asked number. */
  private accept(records: Contact[], number: string | undefined): Contact[] {
    // A scenario without outputs (the journal) makes no contact to accept or turn down.
    return records.filter((c) => {
      if (!Object.keys(c).length) return false;
      const reason = !c.ContactUrl
        ? 'no ContactUrl'
        : !(c.FirstName || c.LastName || c.CompanyName)
          ? 'no FirstName, LastName or CompanyName'
          : number !== undefined && !PHONE_OUTPUTS.some((p) => c[p]?.includes(number))
            ? `no phone output holds ${number}`
            : undefined;
      if (reason) this.rejected.push({ contact: c, reason });
      return !reason;
    });
  }

  private async exchange(
    scenario: string,
    method: string,
    url: string,
    headers: Record<string, string>,
    body: string | undefined,
  ): Promise<unknown> {
    while (this.running >= this.maxConcurrent) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    const t0 = performance.now();
    const record: Exchange = { scenario, method, url, headers, body, status: 0, answer: '', ms: 0 };
    try {
      const res = await fetch(url, {
        method,
        headers,
        body,
        signal: AbortSignal.timeout(this.o.timeoutMs ?? 10_000),
      });
      record.status = res.status;
      record.answer = await res.text();
    } catch (e) {
      record.answer = String(e);
    } finally {
      record.ms = performance.now() - t0;
      this.exchanges.push(record);
      this.running--;
      this.waiting.shift()?.();
    }
    if (record.status < 200 || record.status > 299) return undefined;
    try {
      return JSON.parse(record.answer) as unknown;
    } catch {
      return record.answer === '' ? {} : undefined;
    }
  }
}
