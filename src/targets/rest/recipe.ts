// A REST recipe (`type: rest`): the YAML file that says how one CRM is spoken to (docs/targets.md
// "Writing a recipe"). This module finds a recipe by name or path, validates it against its
// schema (config/recipe.schema.json), and reports every problem as recipe-file:line:col: unknown
// fields with the name meant, expression syntax, unknown functions (compile.ts does the
// expressions).

import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import {
  ConfigError,
  exprIssueAt,
  issueAt,
  loadYamlFile,
  type ConfigIssue,
  type LoadedYaml,
} from '../../lib/yaml.js';
import { nearest } from '../../lib/near.js';
import { exprProblems, isSimplePath, PLAIN, templateProblems, type Site } from './compile.js';

const Expr = (description: string) => z.string().min(1).meta({ description });
const Template = (description: string) => z.string().meta({ description });
/** A request window (`requests` per `perSeconds`): a recipe's defaults and relay.yaml's alike. */
export const Rate = z.strictObject({
  requests: z.number().int().positive(),
  perSeconds: z.number().positive(),
});

const RequestSchema = z
  .strictObject({
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']),
    url: Template(
      'Path below baseUrl (or an absolute URL) with {expression} placeholders, each percent-encoded.',
    ),
    query: z
      .record(z.string(), Expr('An expression; undefined or null leaves the parameter out.'))
      .optional()
      .meta({ description: 'Query parameters: name -> expression (URL-encoded).' }),
    headers: z
      .record(z.string(), Template('A header value with {expression} placeholders (as is).'))
      .optional(),
    json: Expr('The JSON body: an expression over the input.').optional(),
    form: Expr('A form-encoded body: an expression giving an object of strings.').optional(),
    multipart: z
      .strictObject({
        field: z.string().min(1),
        filename: Template("The file name (default: the recording URL's own).").optional(),
      })
      .optional()
      .meta({ description: 'Upload steps: the recording as one multipart/form-data file part.' }),
    base64: z.literal(true).optional().meta({
      description:
        'Upload steps: json/form sees `file: { base64, filename, contentType }` (the whole recording).',
    }),
  })
  .meta({ description: 'One HTTP request: method, URL template, query, headers, body.' });

const when = Expr(
  'An expression over `vars` only, decided when the target starts: the step runs if truthy.',
).optional();
const what = z
  .string()
  .min(1)
  .optional()
  .meta({ description: 'What the step does, for messages ("creating the call log").' });
const keep = Expr(
  'An expression over the input and `answer`: an object merged into `remote` (kept for later steps).',
).optional();

/** Requests sent in order after a create, update or upsert wrote the activity (`then:`). */
const Then = z
  .array(
    z.strictObject({
      what,
      if: Expr(
        'An expression over the delivery input (call, contact, owner, remote, vars, ...), each delivery: falsy skips this request.',
      ).optional(),
      request: RequestSchema,
    }),
  )
  .optional()
  .meta({
    description:
      "Requests sent in order after the step's own succeeded and its id was saved, each as idempotent; one failing retries the delivery, which then takes the `update` path.",
  });

const StepSchema = z.strictObject({ when, what, request: RequestSchema, keep, then: Then });
const IdStepSchema = StepSchema.extend({
  id: Expr('An expression over `answer`: the remote id of the activity.'),
});

/** What every search of a lookup has: the terms it tries, the request, paging, and its reading. */
const searchFields = (terms: string, read: string) => ({
  terms: Expr(terms).optional(),
  request: RequestSchema,
  notFound: z.array(z.number().int()).optional(),
  next: Expr(
    'Paging: an object merged into the query for the next page, or undefined to stop.',
  ).optional(),
  maxPages: z.number().int().min(1).max(50).optional(),
  read: Expr(read),
});

/**
 * A contact search by text or by email for a phone system's caller lookup (sources[].crm): as the
 * contact lookup by number, over `text` or `email` instead of `external`; the cards are made by
 * `lookups.contact.card`.
 */
const ContactSearch = (over: 'text' | 'email', what: string) =>
  z
    .strictObject(
      searchFields(
        `The terms to search, each (default [${over}]); sees \`${over}\`, \`vars\`.`,
        'The records found: [{ id, numbers, name?, createdAt?, data? }], best first.',
      ),
    )
    .optional()
    .meta({
      description: `Contacts by ${over} (${what}) for a phone system's contact search; needs lookups.contact.card.`,
    });

const VarSchema = z.strictObject({
  description: z.string().optional(),
  default: z.union([z.string(), z.number(), z.boolean()]).optional(),
  required: z.boolean().optional(),
  enum: z.array(z.union([z.string(), z.number(), z.boolean()])).optional(),
  pattern: z.string().optional(),
});

const AUTH_TYPES = ['bearer', 'header', 'basic', 'client_credentials', 'refresh_token'] as const;

export const RecipeSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]*$/)
      .meta({
        description: "The recipe's name: its file name without .yaml (`recipe:` in relay.yaml).",
      }),
    crm: z.string().min(1).meta({ description: "The CRM's name in messages." }),
    description: z.string().optional(),
    vars: z.record(z.string(), VarSchema).default({}).meta({
      description: "What relay.yaml's `vars:` may or must fill (expressions see them as `vars`).",
    }),
    baseUrl: Template(
      "The API's base URL: a template over `vars`, worked out once (an OAuth apiUrl overrides it).",
    ),
    deliverOn: z
      .array(z.enum(['ended', 'change']))
      .min(1)
      .optional()
      .meta({
        description:
          'The deliverOn values the CRM can take (default: both): e.g. [ended] where what the first create says cannot be changed later.',
      }),
    defaults: z
      .strictObject({
        rateLimit: Rate.optional(),
        searchRateLimit: Rate.optional(),
        concurrency: z.number().int().min(1).max(64).optional(),
        deliverOn: z.enum(['ended', 'change']).optional(),
        settleSec: z.number().min(0).optional(),
        createContacts: z.boolean().optional().meta({
          description:
            "Make a contact (by `newContact`) for a caller no contact has the number of (relay.yaml's `createContacts` overrides).",
        }),
        budget: Rate.optional().meta({
          description:
            "A second window over every request of the target, deliveries and lookups alike (an account's hourly allowance; relay.yaml's `budget` overrides).",
        }),
      })
      .default({})
      .meta({ description: "The target's defaults (relay.yaml may override each)." }),
    auth: z
      .strictObject({
        type: z.enum(AUTH_TYPES),
        fields: z.array(z.string().regex(/^\w+$/)).optional().meta({
          description: "`header` auth: the fields relay.yaml's `auth:` must hold.",
        }),
        headers: z.record(z.string(), z.string()).optional().meta({
          description:
            'Credential headers: templates over `auth` (fixed types) or `token` (OAuth 2).',
        }),
        tokenUrl: Template(
          'OAuth 2: the token endpoint (a template over `vars`, worked out once).',
        ).optional(),
        scope: Template(
          'OAuth 2: the scope asked for (a template over `vars`, worked out once, like tokenUrl).',
        ).optional(),
        clientAuth: z.enum(['body', 'basic']).optional(),
        lifetimeSec: z.number().positive().optional(),
        apiUrl: Expr('OAuth 2: the API base URL from the token answer (a simple path).').optional(),
      })
      .meta({ description: 'How the relay proves who it is.' }),
    lookups: z
      .strictObject({
        contact: z
          .strictObject({
            ...searchFields(
              'The number forms to search, each (default [external]); sees `external`, `vars`.',
              'The candidates: [{ id, numbers, name?, createdAt?, data? }].',
            ),
            untilFound: z.boolean().optional().meta({
              description:
                'Stop at the first term whose records really have the number, asking no more (for CRMs where every request counts against an allowance); records only the later terms would find are then not seen.',
            }),
            card: z
              .strictObject({
                firstName: Expr(
                  'First name (over `contact`, as `read` gave it, and `vars`).',
                ).optional(),
                lastName: Expr('Last name (or the whole name).').optional(),
                company: Expr('Company or account name.').optional(),
                email: Expr('Email address.').optional(),
                phones: Expr(
                  "[{ kind: 'business' | 'mobile' | 'home' | 'other', number }] (default: the candidate's numbers, kind other).",
                ).optional(),
                url: Template(
                  "The record's page (a template over `contact` and `vars`).",
                ).optional(),
                entityType: Expr(
                  'The kind of record in the CRM\'s words ("Contact", "Lead"; default "contact").',
                ).optional(),
              })
              .optional()
              .meta({
                description:
                  "What a phone system's caller lookup shows of a contact found by number (sources[].crm): expressions over `contact` ({ id, name, numbers, createdAt, data } as `read` gave it) and `vars`. Without it the target answers no lookups.",
              }),
          })
          .optional(),
        text: ContactSearch('text', 'Free text as typed in the phone client (a name, a company).'),
        email: ContactSearch('email', 'An email address.'),
        user: z
          .strictObject({
            request: RequestSchema,
            notFound: z.array(z.number().int()).optional(),
            read: Expr("The user's id, or undefined."),
            idPattern: z.string().min(1).optional().meta({
              description:
                "A regex for the CRM's user ids, which relay.yaml's `agents:` may give as is (default: numeric).",
            }),
          })
          .optional(),
      })
      .default({}),
    skip: Expr(
      'Over the delivery input (contact and owner known): a text skips the call for this CRM (nothing written; the delivery is done and the text kept as `remote.skipped`).',
    ).optional(),
    create: IdStepSchema.optional(),
    update: StepSchema.optional(),
    upsert: IdStepSchema.extend({
      id: Expr('The id in the first answer; later answers without one keep remote.id.'),
    }).optional(),
    find: z
      .strictObject({
        lagSec: z.number().min(0).default(0),
        request: RequestSchema,
        notFound: z.array(z.number().int()).optional(),
        id: Expr('The id of what a lost create made, or undefined.'),
      })
      .optional()
      .meta({ description: 'How to find a create whose answer was lost.' }),
    errors: z
      .strictObject({
        message: Expr("The CRM's words for error messages (over `answer`).").optional(),
        classify: Expr(
          "'ok' | 'retry' | 'rate-limited' | 'dead' | 'unauthorized' | 'relookup' (the contact id sent was refused: look it up again) | undefined (the status decides).",
        ).optional(),
        retry: z.array(z.number().int()).optional(),
        dead: z.array(z.number().int()).optional(),
        wait: Expr('Milliseconds to wait when rate-limited (default: Retry-After).').optional(),
        windowLeft: z
          .strictObject({ header: z.string().min(1), pauseSec: z.number().positive() })
          .optional(),
      })
      .default({}),
    recordings: z
      .strictObject({
        upload: z.strictObject({ when, what, request: RequestSchema }).optional(),
      })
      .optional(),
    link: z
      .strictObject({
        id: Expr("How the console names the CRM's record."),
        url: Template('Its URL (a template).').optional(),
      })
      .optional(),
    newContact: z
      .strictObject({
        what,
        request: RequestSchema,
        read: Expr(
          'Over `contact`, `vars` and `answer`: the record made, as `lookups.contact.read` gives one ({ id, numbers, name?, createdAt?, data? }).',
        ),
      })
      .optional()
      .meta({
        description:
          'How a phone client\'s "create contact" makes one (sources[].crm.createIn): a request over `contact` ({ firstName, lastName, company, email, e164 }, each possibly absent) and `vars`; the card is made by `lookups.contact.card`.',
      }),
    check: z.strictObject({ request: RequestSchema }).optional(),
    sandbox: z
      .strictObject({
        create: Expr("Dry runs: the create's answer body, over { request, id }.").optional(),
        upsert: Expr("Dry runs: the upsert's answer body, over { request, id }.").optional(),
        update: Expr("Dry runs: the update's answer body.").optional(),
        lookup: Expr("Dry runs: the contact search's answer body (default: notFound).").optional(),
        user: Expr("Dry runs: the user search's answer body, over { request, id }.").optional(),
      })
      .optional(),
  })
  .meta({
    title: 'callrelay REST recipe',
    description: 'How the relay writes calls into one CRM (docs/targets.md, "Writing a recipe").',
  });

export type Recipe = z.output<typeof RecipeSchema>;
export type RecipeRequest = z.output<typeof RequestSchema>;
export type RecipeVar = z.output<typeof VarSchema>;
export type AuthType = (typeof AUTH_TYPES)[number];

export interface LoadedRecipe {
  def: Recipe;
  yaml: LoadedYaml;
  /** Absolute path. */
  file: string;
}

/** The recipes that ship with the relay: the package's top-level targets/ (src/ or dist/ alike). */
export const SHIPPED_RECIPES = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'targets',
);

/**
 * `vars` as expressions see them: relay.yaml's text (or a YAML scalar) becomes a boolean or number
 * where the recipe's enum or default says the variable is one, so `vars.x = false` means what it
 * says ("false" would be truthy).
 */
export function typedVars(
  def: Recipe,
  vars: Record<string, string>,
): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = { ...vars };
  for (const [k, spec] of Object.entries(def.vars)) {
    const v = vars[k];
    if (v === undefined) continue;
    const kinds = new Set(
      [...(spec.enum ?? []), ...(spec.default === undefined ? [] : [spec.default])].map(
        (x) => typeof x,
      ),
    );
    if (kinds.size !== 1) continue;
    if (kinds.has('boolean') && (v === 'true' || v === 'false')) out[k] = v === 'true';
    else if (kinds.has('number') && v.trim() !== '' && Number.isFinite(Number(v)))
      out[k] = Number(v);
  }
  return out;
}

/** Whether `v` is a user id of the recipe's CRM (its `lookups.user.idPattern`, else numeric). */
export function userIdTest(def: Recipe): (v: string) => boolean {
  const p = def.lookups.user?.idPattern;
  if (p === undefined) return (v) => /^\d+$/.test(v);
  const re = new RegExp(p);
  return (v) => re.test(v);
}

/** What relay.yaml's fields the auth type needs. */
export function authFields(auth: Recipe['auth']): string[] {
  switch (auth.type) {
    case 'bearer':
      return ['token'];
    case 'basic':
      return ['user', 'password'];
    case 'header':
      return auth.fields ?? [];
    case 'client_credentials':
      return ['clientId', 'clientSecret'];
    case 'refresh_token':
      return ['clientId', 'clientSecret', 'refreshToken'];
  }
}

/** The recipe files a folder holds, by name (file name without .yaml). */
export function recipeFiles(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir).sort())
    if (/\.ya?ml$/.test(f)) out.set(f.replace(/\.ya?ml$/, ''), join(dir, f));
  return out;
}

/**
 * Where `recipe:` points: a path (with a slash or .yaml) relative to relay.yaml's folder, else a
 * name looked up in `targets/` beside relay.yaml (the integrator's, first) and then the shipped
 * ones. Undefined with the names known when there is none.
 */
export function findRecipe(
  ref: string,
  configDir: string,
  shipped = SHIPPED_RECIPES,
): { file: string } | { known: string[] } {
  if (/[\\/]|\.ya?ml$/.test(ref)) return { file: resolve(configDir, ref) };
  const own = recipeFiles(join(configDir, 'targets'));
  const ours = recipeFiles(shipped);
  const file = own.get(ref) ?? ours.get(ref);
  return file ? { file } : { known: [...new Set([...own.keys(), ...ours.keys()])].sort() };
}

/** A recipe file, validated and its expressions checked; ConfigError with recipe places if not. */
export function loadRecipe(file: string): LoadedRecipe {
  const yaml = loadYamlFile(file);
  const r = RecipeSchema.safeParse(yaml.value);
  const issues: ConfigIssue[] = [];
  if (!r.success) {
    for (const iss of r.error.issues) {
      if (iss.code === 'unrecognized_keys') {
        const known = keysAt(RecipeSchema, iss.path);
        for (const k of iss.keys) {
          const near = nearest(k, known);
          issues.push(
            issueAt(
              yaml,
              iss.path,
              `unknown field "${k}"${near ? ` (did you mean "${near}"?)` : ''}`,
              { key: k },
            ),
          );
        }
      } else {
        const where = iss.path.length ? `${iss.path.join('.')}: ` : '';
        issues.push(issueAt(yaml, iss.path, `${where}${iss.message}`));
      }
    }
    throw new ConfigError(sorted(issues));
  }
  const def = r.data;
  const stem = basename(file).replace(/\.ya?ml$/, '');
  if (def.name !== stem)
    issues.push(
      issueAt(
        yaml,
        ['name'],
        `name "${def.name}" must be the file's name without .yaml ("${stem}")`,
      ),
    );
  if (!def.create && !def.upsert)
    issues.push(issueAt(yaml, [], 'a recipe needs `create` (with `find`) or `upsert`'));
  // With `upsert` too: its `when:` may switch it off, and then create runs without a way back.
  if (def.create && !def.find)
    issues.push(
      issueAt(
        yaml,
        ['create'],
        '`create` needs `find` (how to find a create whose answer was lost), or use `upsert` alone',
      ),
    );
  if (def.deliverOn && def.defaults.deliverOn && !def.deliverOn.includes(def.defaults.deliverOn))
    issues.push(
      issueAt(yaml, ['defaults', 'deliverOn'], `not one of deliverOn: ${def.deliverOn.join(', ')}`),
    );
  if (def.auth.type === 'header' && !def.auth.fields?.length)
    issues.push(
      issueAt(yaml, ['auth'], '`header` auth lists its relay.yaml fields under `fields:`'),
    );
  const oauth = def.auth.type === 'client_credentials' || def.auth.type === 'refresh_token';
  if (oauth && !def.auth.tokenUrl)
    issues.push(issueAt(yaml, ['auth'], `\`${def.auth.type}\` auth needs \`tokenUrl\``));
  const idPattern = def.lookups.user?.idPattern;
  if (idPattern !== undefined)
    try {
      new RegExp(idPattern);
    } catch (err) {
      issues.push(
        issueAt(yaml, ['lookups', 'user', 'idPattern'], `idPattern: ${(err as Error).message}`),
      );
    }
  for (const s of recipeSites(def)) {
    for (const p of s.problems) issues.push(exprIssueAt(yaml, s.path, p.offset, p.message));
  }
  if (issues.length) throw new ConfigError(sorted(issues));
  return { def, yaml, file };
}

const sorted = (issues: ConfigIssue[]): ConfigIssue[] =>
  issues.sort((a, b) => a.line - b.line || a.col - b.col);

/** The field names an object of the schema at `path` has (for "did you mean"). */
function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let s: z.ZodType | undefined = schema;
  const unwrap = (x: z.ZodType): z.ZodType => {
    let y = x;
    while (y instanceof z.ZodOptional || y instanceof z.ZodDefault || y instanceof z.ZodNullable)
      y = (y as z.ZodOptional<z.ZodType>).unwrap() as z.ZodType;
    return y;
  };
  for (const seg of path) {
    if (!s) return [];
    s = unwrap(s);
    if (s instanceof z.ZodObject) s = (s.shape as Record<string, z.ZodType>)[String(seg)];
    else if (s instanceof z.ZodRecord) s = s.valueType as z.ZodType;
    else if (s instanceof z.ZodArray) s = s.element as z.ZodType;
    else return [];
  }
  if (!s) return [];
  s = unwrap(s);
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

/** Every expression and template of a recipe, with its place and problems. */
export function recipeSites(def: Recipe): Site[] {
  const sites: Site[] = [];
  const expr = (path: (string | number)[], source: string | undefined): void => {
    if (source !== undefined)
      sites.push({ path, kind: 'expr', source, problems: exprProblems(source) });
  };
  const tpl = (path: (string | number)[], source: string | undefined, plain = false): void => {
    if (source !== undefined)
      sites.push({ path, kind: 'template', source, problems: templateProblems(source, plain) });
  };
  const request = (base: (string | number)[], r: RecipeRequest | undefined): void => {
    if (!r) return;
    tpl([...base, 'url'], r.url);
    for (const [k, v] of Object.entries(r.query ?? {})) expr([...base, 'query', k], v);
    for (const [k, v] of Object.entries(r.headers ?? {})) tpl([...base, 'headers', k], v);
    expr([...base, 'json'], r.json);
    expr([...base, 'form'], r.form);
    tpl([...base, 'multipart', 'filename'], r.multipart?.filename);
  };
  // baseUrl and tokenUrl: any expression over `vars`, worked out once before the first request.
  // OAuth headers and apiUrl are read on every token: plain paths only.
  const oauth = def.auth.type === 'client_credentials' || def.auth.type === 'refresh_token';
  tpl(['baseUrl'], def.baseUrl);
  for (const [k, v] of Object.entries(def.auth.headers ?? {}))
    tpl(['auth', 'headers', k], v, oauth);
  tpl(['auth', 'tokenUrl'], def.auth.tokenUrl);
  tpl(['auth', 'scope'], def.auth.scope);
  expr(['auth', 'apiUrl'], def.auth.apiUrl);
  if (def.auth.apiUrl && !isSimplePath(def.auth.apiUrl))
    sites.at(-1)!.problems.push({ offset: 0, message: PLAIN });
  const c = def.lookups.contact;
  if (c) {
    expr(['lookups', 'contact', 'terms'], c.terms);
    request(['lookups', 'contact', 'request'], c.request);
    expr(['lookups', 'contact', 'next'], c.next);
    expr(['lookups', 'contact', 'read'], c.read);
    for (const k of ['firstName', 'lastName', 'company', 'email', 'phones', 'entityType'] as const)
      expr(['lookups', 'contact', 'card', k], c.card?.[k]);
    tpl(['lookups', 'contact', 'card', 'url'], c.card?.url);
  }
  for (const k of ['text', 'email'] as const) {
    const l = def.lookups[k];
    if (!l) continue;
    expr(['lookups', k, 'terms'], l.terms);
    request(['lookups', k, 'request'], l.request);
    expr(['lookups', k, 'next'], l.next);
    expr(['lookups', k, 'read'], l.read);
  }
  if (def.lookups.user) {
    request(['lookups', 'user', 'request'], def.lookups.user.request);
    expr(['lookups', 'user', 'read'], def.lookups.user.read);
  }
  expr(['skip'], def.skip);
  for (const step of ['create', 'update', 'upsert'] as const) {
    const s = def[step];
    if (!s) continue;
    expr([step, 'when'], s.when);
    request([step, 'request'], s.request);
    expr([step, 'keep'], s.keep);
    if ('id' in s) expr([step, 'id'], s.id as string);
    for (const [i, t] of (s.then ?? []).entries()) {
      expr([step, 'then', i, 'if'], t.if);
      request([step, 'then', i, 'request'], t.request);
    }
  }
  if (def.find) {
    request(['find', 'request'], def.find.request);
    expr(['find', 'id'], def.find.id);
  }
  expr(['errors', 'message'], def.errors.message);
  expr(['errors', 'classify'], def.errors.classify);
  expr(['errors', 'wait'], def.errors.wait);
  const up = def.recordings?.upload;
  if (up) {
    expr(['recordings', 'upload', 'when'], up.when);
    request(['recordings', 'upload', 'request'], up.request);
  }
  if (def.link) {
    expr(['link', 'id'], def.link.id);
    tpl(['link', 'url'], def.link.url);
  }
  if (def.newContact) {
    request(['newContact', 'request'], def.newContact.request);
    expr(['newContact', 'read'], def.newContact.read);
  }
  request(['check', 'request'], def.check?.request);
  for (const [k, v] of Object.entries(def.sandbox ?? {})) expr(['sandbox', k], v);
  return sites;
}
