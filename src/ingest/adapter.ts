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
  JSONATA_FUNCTIONS,
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
    ignore: z
      .boolean()
      .optional()
      .meta({ description: 'Store the request as ignored (pings, tests) instead of mapping it.' }),
    fields: FieldMap.optional().meta({
      description: 'Field expressions for this rule, over and above the adapter-wide `fields`.',
    }),
  })
  .refine((r) => !!r.type !== !!r.ignore, {
    message: 'a rule needs either `type` or `ignore: true`',
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
  const def = validateYaml(yaml, AdapterFileSchema);
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

function expressionSites(def: AdapterFile): ExprSite[] {
  const sites: ExprSite[] = [];
  const addFields = (
    base: (string | number)[],
    fields: Record<string, unknown> | undefined,
  ): void => {
    for (const [k, v] of Object.entries(fields ?? {})) {
      if (typeof v === 'string') sites.push({ path: [...base, k], source: v });
      else if (v && typeof v === 'object') addFields([...base, k], v as Record<string, unknown>);
    }
  };
  addFields(['fields'], def.fields);
  def.events.forEach((r, i) => {
    sites.push({ path: ['events', i, 'when'], source: r.when });
    addFields(['events', i, 'fields'], r.fields);
  });
  return sites;
}

const KNOWN_FUNCTIONS = new Set<string>(HELPER_NAMES);

/** What the schema cannot see: expression syntax, field-name case, unknown functions and maps. */
export function lintAdapter(a: LoadedAdapter): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const site of expressionSites(a.def)) {
    let ast;
    try {
      ast = parseExpr(site.source).ast;
    } catch (err) {
      const e = err as ExprError;
      issues.push(
        exprIssueAt(
          a.yaml,
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
            a.yaml,
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
        if (m?.type === 'string' && !(String(m.value) in a.def.maps)) {
          issues.push(
            exprIssueAt(
              a.yaml,
              site.path,
              call.position,
              `$mapValue: no map named "${String(m.value)}" under maps:`,
            ),
          );
        }
      } else if (!KNOWN_FUNCTIONS.has(call.name) && !JSONATA_FUNCTIONS.has(call.name)) {
        issues.push(
          exprIssueAt(a.yaml, site.path, call.position, `unknown function $${call.name}`),
        );
      }
    }
  }
  return issues.sort((x, y) => x.line - y.line || x.col - y.col);
}

interface CompiledRule {
  name: string;
  type: CallEvent['type'] | undefined;
  ignore: boolean;
  when: CompiledExpr;
  fields: [string[], CompiledExpr][];
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
  const rules: CompiledRule[] = a.def.events.map((r) => {
    const merged = new Map(common);
    for (const [p, s] of flatten(r.fields)) merged.set(p.join('.'), [p, s]);
    return {
      name: r.name,
      type: r.type,
      ignore: r.ignore === true,
      when: compile(r.when),
      fields: [...merged.values()].map(([p, s]) => [p, compile(s)]),
    };
  });

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

      const out: Record<string, unknown> = { type: rule.type };
      for (const [path, expr] of rule.fields) {
        let v: unknown;
        try {
          v = expr.evaluate(input.fields, vars);
          if (v instanceof Promise) v = await v;
        } catch (err) {
          return {
            status: 'unmapped',
            rule: rule.name,
            code: 'RELAY_ERR_MAPPING_FAILED',
            message: `rule ${rule.name}, field ${path.join('.')}: ${(err as Error).message}`,
          };
        }
        const norm = normalizeField(path, v);
        if (norm instanceof Error)
          return {
            status: 'unmapped',
            rule: rule.name,
            code: 'RELAY_ERR_MAPPING_FAILED',
            message: `rule ${rule.name}, field ${path.join('.')}: ${norm.message}`,
          };
        if (norm === undefined) continue;
        if (path.length === 2) ((out[path[0]!] ??= {}) as Record<string, unknown>)[path[1]!] = norm;
        else out[path[0]!] = norm;
      }
      if (out.externalNumber !== undefined && out.externalE164 === undefined) {
        const n = e164(out.externalNumber, undefined, source.defaultCountry);
        if (n) out.externalE164 = n;
      }
      if (out.type === 'originated' ? !out.channelId : !out.callId) {
        const what = out.type === 'originated' ? 'channel id' : 'call id';
        return {
          status: 'unmapped',
          rule: rule.name,
          code: 'RELAY_ERR_MISSING_CALL_ID',
          message: `rule ${rule.name} (${String(out.type)}) found no ${what}`,
        };
      }
      const checked = CallEventSchema.safeParse(out);
      if (!checked.success) {
        const i = checked.error.issues[0]!;
        return {
          status: 'unmapped',
          rule: rule.name,
          code: 'RELAY_ERR_MAPPING_FAILED',
          message: `rule ${rule.name}, field ${i.path.join('.')}: ${i.message}`,
        };
      }
      return { status: 'mapped', rule: rule.name, events: [checked.data] };
    },
  };
}

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(truthy);
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return !!v;
}

const NUMBER_FIELDS = new Set(['durationSec', 'talkSec', 'ai.sentiment']);
const BOOLEAN_FIELDS = new Set(['transferred']);
const LOWER_ENUM_FIELDS = new Set(['direction', 'outcome', 'transferKind']);

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
  return LOWER_ENUM_FIELDS.has(key) ? s.toLowerCase() : s;
}
