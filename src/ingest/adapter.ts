// Adapters are data: a YAML file says how to recognise each of a provider's webhooks (`when`) and
// how to map its fields onto a canonical call event (`fields`, JSONata). This module validates an
// adapter file (errors as file:line:col), compiles every expression once, and maps requests.

import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { CountryCode } from 'libphonenumber-js';
import { z } from 'zod';
import {
  ConfigError,
  exprIssueAt,
  issueAt,
  loadYamlFile,
  validateYaml,
  type ConfigIssue,
  type LoadedYaml,
} from '../lib/yaml.js';
import {
  CallEventSchema,
  EVENT_TYPES,
  LEG_JOINED_TYPES,
  RELAY_EVENT_TYPES,
  type CallEvent,
} from '../domain/model.js';
import type { MapResult, RawRequest } from '../domain/request.js';
import { Country, TimeZone } from '../domain/values.js';
import {
  compileExpr,
  ExprError,
  fieldNames,
  functionCalls,
  JSONATA_BUILTINS,
  parseExpr,
  type CompiledExpr,
  type ExprVars,
} from '../lib/expr.js';
import { e164, HELPER_NAMES, makeHelpers } from './helpers.js';
import { parseRequest } from './request.js';

const Expr = z
  .string()
  .min(1)
  .meta({ description: 'A JSONata expression over the request fields (keys lower-cased).' });

/** The event types a rule may produce: all but the relay's own (a close is never a webhook's). */
const ADAPTER_EVENT_TYPES = EVENT_TYPES.filter(
  (t): t is Exclude<(typeof EVENT_TYPES)[number], (typeof RELAY_EVENT_TYPES)[number]> =>
    !(RELAY_EVENT_TYPES as readonly string[]).includes(t),
);

const AI_FIELDS = ['summary', 'transcription', 'sentiment'] as const;
/** Every canonical event field but `type` (given by the rule) and `ai` (nested). */
export const EVENT_FIELDS = Object.keys(CallEventSchema.shape).filter(
  (k) => k !== 'type' && k !== 'ai',
) as (keyof CallEvent)[];

const FieldMap = z
  .strictObject({
    ...Object.fromEntries(EVENT_FIELDS.map((k) => [k, Expr.optional()])),
    ai: z.strictObject(Object.fromEntries(AI_FIELDS.map((k) => [k, Expr.optional()]))).optional(),
  })
  .meta({
    description: 'Canonical event field -> JSONata expression. See config/call-event.schema.json.',
  });

const Emitted = z
  .strictObject({
    type: z
      .enum(ADAPTER_EVENT_TYPES)
      .meta({ description: 'The canonical event type of this one event.' }),
    when: Expr.optional().meta({
      description: 'JSONata; this event is made only when it is true (default: always).',
    }),
    fields: FieldMap.optional().meta({
      description: "This event's own field expressions, over the rule's and the adapter's.",
    }),
  })
  .meta({ description: 'One of the events a rule makes of one webhook.' });

const Rule = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_.-]*$/i)
      .meta({ description: 'Names the rule in messages and `map` output.' }),
    when: Expr.meta({
      description: 'JSONata; the first rule whose `when` is true handles the request.',
    }),
    type: z
      .enum(ADAPTER_EVENT_TYPES)
      .optional()
      .meta({ description: 'The canonical event type this rule produces.' }),
    emit: z
      .array(Emitted)
      .min(1)
      .optional()
      .meta({
        description:
          'Instead of `type`: several events from one webhook, in this order (a transfer is the ' +
          'end of one leg and the answer of the next).',
      }),
    ignore: z
      .boolean()
      .optional()
      .meta({ description: 'Store the request as ignored (pings, tests) instead of mapping it.' }),
    fields: FieldMap.optional().meta({
      description: 'Field expressions for this rule, over and above the adapter-wide `fields`.',
    }),
  })
  .refine((r) => [!!r.type, !!r.emit, r.ignore === true].filter(Boolean).length === 1, {
    message: 'a rule needs exactly one of `type`, `emit` or `ignore: true`',
  });

export const AdapterFileSchema = z
  .strictObject({
    $schema: z.string().optional(),
    adapter: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]*$/)
      .meta({ description: 'The adapter name sources refer to.' }),
    version: z.literal(1).meta({ description: 'Adapter file format version.' }),
    description: z.string().optional(),
    defaults: z
      .strictObject({ timezone: TimeZone.optional(), defaultCountry: Country.optional() })
      .prefault({})
      .meta({ description: 'Used when the source in relay.yaml does not say.' }),
    maps: z
      .record(
        z.string(),
        z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
      )
      .prefault({})
      .meta({
        description: 'Value maps for $mapValue(value, "name"); keys match case-insensitively.',
      }),
    fields: FieldMap.prefault({}).meta({
      description: 'Field expressions shared by every rule (a rule may override them).',
    }),
    events: z.array(Rule).min(1),
  })
  .meta({
    title: 'callrelay adapter',
    description: "Maps one provider's webhooks onto canonical call events.",
  });

export type AdapterFile = z.output<typeof AdapterFileSchema>;

export interface LoadedAdapter {
  name: string;
  yaml: LoadedYaml;
  def: AdapterFile;
}

export interface SourceSettings {
  name: string;
  timezone: string;
  defaultCountry: CountryCode | undefined;
}

export interface CompiledAdapter {
  name: string;
  settings: SourceSettings;
  map(req: RawRequest): Promise<MapResult>;
}

export function loadAdapter(path: string): LoadedAdapter {
  const yaml = loadYamlFile(path);
  let def: AdapterFile;
  try {
    def = validateYaml(yaml, AdapterFileSchema);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // The expressions are linted where they stand too, so that one `check` reports both.
    const issues = [...err.issues, ...lintExpressions(yaml, yaml.value)];
    throw new ConfigError(issues.sort((x, y) => x.line - y.line || x.col - y.col));
  }
  const issues = lintAdapter({ name: def.adapter, yaml, def });
  if (issues.length) throw new ConfigError(issues);
  return { name: def.adapter, yaml, def };
}

/** Every adapter file in a folder, by adapter name. */
export function loadAdapterDir(dir: string): Map<string, LoadedAdapter> {
  const out = new Map<string, LoadedAdapter>();
  const issues: ConfigIssue[] = [];
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort();
  } catch {
    return out;
  }
  for (const f of files) {
    try {
      const a = loadAdapter(join(dir, f));
      if (out.has(a.name))
        issues.push(
          issueAt(
            a.yaml,
            ['adapter'],
            `adapter "${a.name}" is also defined by another file in ${dir}`,
          ),
        );
      else out.set(a.name, a);
    } catch (err) {
      if (err instanceof ConfigError) issues.push(...err.issues);
      else throw err;
    }
  }
  if (issues.length) throw new ConfigError(issues);
  return out;
}

/** Where a file's adapter name and file name disagree, sources may still use either. */
export function adapterFileName(a: LoadedAdapter): string {
  return basename(a.yaml.file).replace(/\.ya?ml$/, '');
}

interface ExprSite {
  path: (string | number)[];
  source: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  !!v && typeof v === 'object' && !Array.isArray(v);

/**
 * Every expression of an adapter file, read from its value as loaded: valid or not, so that an
 * expression is linted even when the schema fails elsewhere. Only the places the schema gives
 * expressions count (a misspelt field's value is the schema's to report).
 */
function expressionSites(def: unknown): ExprSite[] {
  const sites: ExprSite[] = [];
  const add = (path: (string | number)[], v: unknown): void => {
    if (typeof v === 'string' && v) sites.push({ path, source: v });
  };
  const addFields = (base: (string | number)[], fields: unknown): void => {
    if (!isRecord(fields)) return;
    for (const k of EVENT_FIELDS) add([...base, k], fields[k]);
    if (isRecord(fields.ai)) for (const k of AI_FIELDS) add([...base, 'ai', k], fields.ai[k]);
  };
  if (!isRecord(def)) return sites;
  addFields(['fields'], def.fields);
  if (!Array.isArray(def.events)) return sites;
  def.events.forEach((r: unknown, i) => {
    if (!isRecord(r)) return;
    add(['events', i, 'when'], r.when);
    addFields(['events', i, 'fields'], r.fields);
    if (Array.isArray(r.emit))
      r.emit.forEach((e: unknown, j) => {
        if (!isRecord(e)) return;
        add(['events', i, 'emit', j, 'when'], e.when);
        addFields(['events', i, 'emit', j, 'fields'], e.fields);
      });
  });
  return sites;
}

const KNOWN_FUNCTIONS = new Set<string>(HELPER_NAMES);

/** What the schema cannot see: expression syntax, field-name case, unknown functions and maps. */
export function lintAdapter(a: LoadedAdapter): ConfigIssue[] {
  return lintExpressions(a.yaml, a.def);
}

/** lintAdapter of a file's value, whether or not it passed the schema. */
function lintExpressions(yaml: LoadedYaml, def: unknown): ConfigIssue[] {
  const maps = isRecord(def) && isRecord(def.maps) ? def.maps : {};
  const issues: ConfigIssue[] = [];
  for (const site of expressionSites(def)) {
    let ast;
    try {
      ast = parseExpr(site.source).ast;
    } catch (err) {
      const e = err as ExprError;
      issues.push(
        exprIssueAt(
          yaml,
          site.path,
          e.position === undefined ? undefined : e.position - 1,
          `expression error: ${e.message}`,
        ),
      );
      continue;
    }
    for (const f of fieldNames(ast)) {
      if (f.name !== f.name.toLowerCase()) {
        issues.push(
          exprIssueAt(
            yaml,
            site.path,
            f.position,
            `field "${f.name}" never matches: request keys are lower-cased, write "${f.name.toLowerCase()}"`,
          ),
        );
      }
    }
    for (const call of functionCalls(ast)) {
      if (call.name === 'mapValue') {
        const m = call.args[1];
        if (m?.type === 'string' && !Object.hasOwn(maps, String(m.value))) {
          issues.push(
            exprIssueAt(
              yaml,
              site.path,
              call.position,
              `$mapValue: no map named "${String(m.value)}" under maps:`,
            ),
          );
        }
      } else if (!KNOWN_FUNCTIONS.has(call.name) && !JSONATA_BUILTINS.has(call.name)) {
        issues.push(exprIssueAt(yaml, site.path, call.position, `unknown function $${call.name}`));
      }
    }
  }
  return issues.sort((x, y) => x.line - y.line || x.col - y.col);
}

interface CompiledEvent {
  type: CallEvent['type'];
  /** undefined: always. */
  when: CompiledExpr | undefined;
  fields: [string[], CompiledExpr][];
}

interface CompiledRule {
  name: string;
  ignore: boolean;
  when: CompiledExpr;
  /** What the rule makes of a request, in order: one event, or several (`emit`). */
  events: CompiledEvent[];
}

export function compileAdapter(a: LoadedAdapter, source: SourceSettings): CompiledAdapter {
  const helpers = makeHelpers({
    timezone: source.timezone,
    defaultCountry: source.defaultCountry,
    maps: a.def.maps,
  });
  const compile = (s: string): CompiledExpr => compileExpr(s, helpers);
  const flatten = (
    fields: Record<string, unknown> | undefined,
    base: string[] = [],
  ): [string[], string][] =>
    Object.entries(fields ?? {}).flatMap(([k, v]): [string[], string][] =>
      typeof v === 'string'
        ? [[[...base, k], v]]
        : v && typeof v === 'object'
          ? flatten(v as Record<string, unknown>, [...base, k])
          : [],
    );
  const common = new Map(flatten(a.def.fields).map(([p, s]) => [p.join('.'), [p, s] as const]));
  // Later layers override earlier ones field by field: adapter, rule, emitted event.
  const fieldsOf = (
    ...layers: (Record<string, unknown> | undefined)[]
  ): [string[], CompiledExpr][] => {
    const merged = new Map(common);
    for (const layer of layers)
      for (const [p, s] of flatten(layer)) merged.set(p.join('.'), [p, s]);
    // Times first: a time that does not parse is then reported as such, not as the call id
    // made of it (the 3CX journal's).
    const ordered = [...merged.values()].sort(
      ([a], [b]) => Number(TIME_FIELDS.has(b.join('.'))) - Number(TIME_FIELDS.has(a.join('.'))),
    );
    return ordered.map(([p, s]) => [p, compile(s)]);
  };
  const rules: CompiledRule[] = a.def.events.map((r) => ({
    name: r.name,
    ignore: r.ignore === true,
    when: compile(r.when),
    events: r.emit
      ? r.emit.map((e) => ({
          type: e.type,
          when: e.when ? compile(e.when) : undefined,
          fields: fieldsOf(r.fields, e.fields),
        }))
      : r.type
        ? [{ type: r.type, when: undefined, fields: fieldsOf(r.fields) }]
        : [],
  }));

  return {
    name: a.name,
    settings: source,
    async map(req) {
      const input = parseRequest(req);
      if (input.parseError)
        return {
          status: 'unmapped',
          code: 'RELAY_ERR_UNPARSEABLE_BODY',
          message: input.parseError,
        };
      const vars: ExprVars = {
        text: input.text,
        method: req.method,
        contentType: req.contentType ?? undefined,
        kind: req.kind,
        source: source.name,
      };
      let rule: CompiledRule | undefined;
      for (const r of rules) {
        try {
          const w = r.when.evaluate(input.fields, vars);
          // Most expressions run synchronously (fast path); only a fallback returns a promise.
          if (truthy(w instanceof Promise ? await w : w)) {
            rule = r;
            break;
          }
        } catch (err) {
          return {
            status: 'unmapped',
            rule: r.name,
            code: 'RELAY_ERR_MAPPING_FAILED',
            message: `rule ${r.name}, when: ${(err as Error).message}`,
          };
        }
      }
      if (!rule) {
        const keys = Object.keys(input.fields);
        const what = keys.length
          ? `fields: ${keys.slice(0, 12).join(', ')}${keys.length > 12 ? ', ...' : ''}`
          : input.text
            ? 'a text body'
            : 'no fields';
        return {
          status: 'unmapped',
          code: 'RELAY_ERR_UNKNOWN_EVENT',
          message: `no event rule of adapter ${a.name} matched (${what})`,
        };
      }
      if (rule.ignore)
        return { status: 'ignored', rule: rule.name, message: `ignored by rule ${rule.name}` };

      const events: CallEvent[] = [];
      for (const [i, ev] of rule.events.entries()) {
        // Several events of one rule are told apart in messages by their place in `emit`.
        const where = rule.events.length > 1 ? `rule ${rule.name}, emit ${i}` : `rule ${rule.name}`;
        if (ev.when) {
          let w: unknown;
          try {
            w = ev.when.evaluate(input.fields, vars);
            if (w instanceof Promise) w = await w;
          } catch (err) {
            return {
              status: 'unmapped',
              rule: rule.name,
              code: 'RELAY_ERR_MAPPING_FAILED',
              message: `${where}, when: ${(err as Error).message}`,
            };
          }
          if (!truthy(w)) continue;
        }
        const made = await mapEvent(ev, input.fields, vars, where, source);
        if (made instanceof MappingProblem)
          return { status: 'unmapped', rule: rule.name, code: made.code, message: made.message };
        events.push(made);
      }
      if (!events.length)
        return {
          status: 'ignored',
          rule: rule.name,
          message: `rule ${rule.name} made no event of this request (no emit condition held)`,
        };
      return { status: 'mapped', rule: rule.name, events };
    },
  };
}

class MappingProblem {
  constructor(
    readonly code: 'RELAY_ERR_MAPPING_FAILED' | 'RELAY_ERR_MISSING_CALL_ID',
    readonly message: string,
  ) {}
}

/** One canonical event of a request, or what was wrong with it (`where`: the rule, in messages). */
async function mapEvent(
  ev: CompiledEvent,
  fields: Record<string, unknown>,
  vars: ExprVars,
  where: string,
  source: SourceSettings,
): Promise<CallEvent | MappingProblem> {
  const out: Record<string, unknown> = { type: ev.type };
  for (const [path, expr] of ev.fields) {
    let v: unknown;
    try {
      v = expr.evaluate(fields, vars);
      if (v instanceof Promise) v = await v;
    } catch (err) {
      return new MappingProblem(
        'RELAY_ERR_MAPPING_FAILED',
        `${where}, field ${path.join('.')}: ${(err as Error).message}`,
      );
    }
    const norm = normalizeField(path, v);
    if (norm instanceof Error)
      return new MappingProblem(
        'RELAY_ERR_MAPPING_FAILED',
        `${where}, field ${path.join('.')}: ${norm.message}`,
      );
    if (norm === undefined) continue;
    if (path.length === 2) ((out[path[0]!] ??= {}) as Record<string, unknown>)[path[1]!] = norm;
    else out[path[0]!] = norm;
  }
  if (out.externalNumber !== undefined && out.externalE164 === undefined) {
    const n = e164(out.externalNumber, undefined, source.defaultCountry);
    if (n) out.externalE164 = n;
  }
  const joinsByLeg = LEG_JOINED_TYPES.has(ev.type) && !!out.legId;
  if (out.type === 'originated' ? !out.channelId : !out.callId && !joinsByLeg) {
    const what = out.type === 'originated' ? 'channel id' : 'call id';
    return new MappingProblem(
      'RELAY_ERR_MISSING_CALL_ID',
      `${where} (${String(out.type)}) found no ${what}`,
    );
  }
  const checked = CallEventSchema.safeParse(out);
  if (!checked.success) {
    const i = checked.error.issues[0]!;
    return new MappingProblem(
      'RELAY_ERR_MAPPING_FAILED',
      `${where}, field ${i.path.join('.')}: ${i.message}`,
    );
  }
  return checked.data;
}

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(truthy);
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return !!v;
}

const NUMBER_FIELDS = new Set(['durationSec', 'talkSec', 'ai.sentiment']);
const BOOLEAN_FIELDS = new Set(['transferred']);
const LOWER_ENUM_FIELDS = new Set(['direction', 'outcome', 'transferKind', 'scope']);
const TIME_FIELDS = new Set(['at', 'startedAt', 'answeredAt', 'endedAt']);
const IsoTime = z.iso.datetime({ offset: true });

/** Coerce an expression result to the field's type; undefined leaves the field out. */
function normalizeField(path: string[], v: unknown): unknown {
  const key = path.join('.');
  if (v === undefined || v === null || (typeof v === 'string' && v.trim() === '')) return undefined;
  if (key === 'recordings') {
    const list = (Array.isArray(v) ? v : [v])
      .filter((x) => typeof x === 'string' && x.trim())
      .map((x) => (x as string).trim());
    return list.length ? list : undefined;
  }
  if (Array.isArray(v)) {
    if (v.length === 1) return normalizeField(path, v[0]);
    return new Error(`expected one value, got a list of ${v.length}`);
  }
  if (NUMBER_FIELDS.has(key)) {
    const n =
      typeof v === 'number'
        ? v
        : typeof v === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(v)
          ? Number(v)
          : NaN;
    return Number.isFinite(n)
      ? n
      : new Error(`expected a number, got ${JSON.stringify(v).slice(0, 40)}`);
  }
  if (BOOLEAN_FIELDS.has(key)) {
    if (typeof v === 'boolean') return v;
    const s = String(v).trim().toLowerCase();
    return s === 'true'
      ? true
      : s === 'false'
        ? false
        : new Error(`expected true or false, got ${JSON.stringify(v).slice(0, 40)}`);
  }
  if (typeof v === 'object') return new Error('expected a text value, got an object');
  const s = String(v).trim();
  // A provider's own time text is no time of ours: say which, rather than "invalid datetime".
  if (TIME_FIELDS.has(key) && !IsoTime.safeParse(s).success)
    return new Error(
      `${JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s)} is not an ISO time with an ` +
        'offset (read it with $toUtc)',
    );
  return LOWER_ENUM_FIELDS.has(key) ? s.toLowerCase() : s;
}
