// A REST target (`type: rest`): any CRM a recipe describes (recipe.ts; docs/targets.md "Writing
// a recipe"). The config schema and, in `prepare`, everything the schema cannot check: the recipe
// found and valid (its errors at recipe-file:line:col), relay.yaml's `vars` and `auth` as the
// recipe asks (errors at relay.yaml's places), and the recipe's defaults.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { nearest } from '../../lib/near.js';
import { ConfigError, issueAt, type ConfigIssue } from '../../lib/yaml.js';
import { isAgentValue } from '../kit/agents.js';
import type { CommonTargetConfig, PreparedTarget, TargetPlace, TargetSpec } from '../types.js';
import { authFields, findRecipe, loadRecipe, Rate, userIdTest, type Recipe } from './recipe.js';

/** The recipe file's schema (config/recipe.schema.json), for config/json-schemas.ts. */
export { RecipeSchema as RestRecipeSchema } from './recipe.js';

const configSchema = z.strictObject({
  type: z.literal('rest'),
  recipe: z.string().min(1).meta({
    description:
      'A recipe name (targets/<name>.yaml beside relay.yaml, else a shipped one) or a path.',
  }),
  vars: z
    .record(z.string(), z.union([z.string(), z.number(), z.boolean()]))
    .default({})
    .meta({ description: "The recipe's variables (its `vars:` say which)." }),
  auth: z.record(z.string(), z.string()).optional().meta({
    description:
      "The credentials the recipe's auth type needs (use ${ENV_VAR}); none for a dry run.",
  }),
  baseUrl: z.url().optional().meta({ description: "Overrides the recipe's baseUrl (tests)." }),
  // Checked in prepare: an id is what the recipe's lookups.user.idPattern says (default numeric).
  agents: z.record(z.string(), z.coerce.string()).default({}).meta({
    description:
      "Extension -> CRM user: email (looked up) or user id (numeric, or as the recipe's lookups.user.idPattern says).",
  }),
  searchRateLimit: Rate.optional().meta({
    description: "Lookups' own window (default: the recipe's, else rateLimit).",
  }),
  cacheSec: z.number().min(0).default(600),
  createContacts: z.boolean().optional().meta({
    description:
      "Make a contact (the recipe's `newContact`) for a caller no contact has the number of (default: the recipe's defaults.createContacts, else false).",
  }),
  budget: Rate.optional().meta({
    description:
      "A second window over every request of the target, deliveries and lookups alike: an account's hourly allowance (default: the recipe's defaults.budget).",
  }),
});

export type RestConfig = z.infer<typeof configSchema> &
  CommonTargetConfig & { recipeFile: string; recipeSha: string; vars: Record<string, string> };

const VALUE = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

function prepare(raw: Record<string, unknown>, at: TargetPlace): PreparedTarget {
  const y = at.yaml;
  const here = (...p: (string | number)[]) => [...at.path, ...p];
  const ref = String(raw.recipe);
  const found = findRecipe(ref, at.configDir);
  if (!('file' in found))
    return {
      issues: [
        issueAt(
          y,
          here('recipe'),
          `no recipe "${ref}" in targets/ beside relay.yaml or shipped (known: ${found.known.join(', ') || 'none'})`,
        ),
      ],
    };
  let def: Recipe;
  try {
    def = loadRecipe(found.file).def;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { issues: err.issues };
  }
  const issues: ConfigIssue[] = [];

  // vars: known, required, enum, pattern; the defaults filled in.
  const given = (raw.vars ?? {}) as Record<string, unknown>;
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(given)) {
    const spec = def.vars[k];
    if (!spec) {
      const near = nearest(k, Object.keys(def.vars));
      issues.push(
        issueAt(
          y,
          here('vars'),
          `recipe ${def.name} has no variable "${k}"${near ? ` (did you mean "${near}"?)` : ''} (known: ${Object.keys(def.vars).join(', ') || 'none'})`,
          { key: k },
        ),
      );
      continue;
    }
    const s = VALUE(v);
    if (spec.enum && !spec.enum.map(String).includes(s))
      issues.push(
        issueAt(y, here('vars', k), `vars.${k}: one of ${spec.enum.join(', ')}, not "${s}"`),
      );
    else if (spec.pattern && !new RegExp(spec.pattern).test(s))
      issues.push(issueAt(y, here('vars', k), `vars.${k}: "${s}" does not match ${spec.pattern}`));
    vars[k] = s;
  }
  for (const [k, spec] of Object.entries(def.vars)) {
    if (k in vars) continue;
    if (spec.default !== undefined) vars[k] = VALUE(spec.default);
    else if (spec.required)
      issues.push(
        issueAt(
          y,
          given === raw.vars ? here('vars') : here(),
          `recipe ${def.name} needs vars.${k}${spec.description ? ` (${spec.description})` : ''}`,
        ),
      );
  }

  // agents: an email, or an id of the form the recipe gives (Salesforce's 005...), else numeric.
  const isId = userIdTest(def);
  for (const [ext, v] of Object.entries((raw.agents ?? {}) as Record<string, unknown>)) {
    const s = String(v);
    if (isId(s) || (!/^\d+$/.test(s) && isAgentValue(s))) continue;
    const ids = def.lookups.user?.idPattern
      ? `a ${def.crm} user id (${def.lookups.user.idPattern})`
      : 'a numeric user id (12345)';
    issues.push(
      issueAt(
        y,
        here('agents', ext),
        `agents.${ext}: expected the user's email or ${ids}, not "${s}"`,
      ),
    );
  }

  // auth: exactly the fields the recipe's type needs; none needed for a dry run.
  const need = authFields(def.auth);
  const auth = raw.auth as Record<string, string> | undefined;
  if (auth) {
    const missing = need.filter((f) => !(f in auth));
    const extra = Object.keys(auth).filter((f) => !need.includes(f));
    for (const f of extra)
      issues.push(
        issueAt(
          y,
          here('auth'),
          `auth.${f}: recipe ${def.name} (${def.auth.type}) takes ${need.join(', ')}${nearest(f, need) ? ` (did you mean "${nearest(f, need)}"?)` : ''}`,
          { key: f },
        ),
      );
    if (missing.length)
      issues.push(
        issueAt(
          y,
          here('auth'),
          `auth: recipe ${def.name} (${def.auth.type}) needs ${missing.join(', ')}`,
        ),
      );
  } else if (!raw.dryRun)
    issues.push(
      issueAt(
        y,
        here(),
        `auth: recipe ${def.name} (${def.auth.type}) needs ${need.join(', ')} (or dryRun: true to try without the CRM)`,
        { key: 'type' },
      ),
    );

  // `deliverOn: change` needs a way to change what was sent.
  const deliverOn = raw.deliverOn ?? def.defaults.deliverOn;
  if (deliverOn === 'change' && !def.update && !def.upsert)
    issues.push(
      issueAt(
        y,
        raw.deliverOn ? here('deliverOn') : here('recipe'),
        `deliverOn: change needs \`update\` or \`upsert\` in recipe ${def.name}, which can only create once: use deliverOn: ended`,
      ),
    );

  // A recipe that says which it can take (a field fixed at create, like Zoho's Call_Type).
  const allowed: string[] | undefined = def.deliverOn;
  if (typeof deliverOn === 'string' && allowed && !allowed.includes(deliverOn))
    issues.push(
      issueAt(
        y,
        raw.deliverOn ? here('deliverOn') : here('recipe'),
        `deliverOn: ${deliverOn} does not suit recipe ${def.name}, which takes only ${allowed.join(', ')} (its description says why)`,
      ),
    );

  // createContacts makes contacts by the recipe's `newContact`: one without it cannot.
  const createContacts = (raw.createContacts ?? def.defaults.createContacts ?? false) === true;
  if (createContacts && !def.newContact)
    issues.push(
      issueAt(
        y,
        raw.createContacts === undefined ? here('recipe') : here('createContacts'),
        `createContacts: recipe ${def.name} has no \`newContact\` (how to make a contact), so it cannot create contacts`,
      ),
    );

  const d = def.defaults;
  return {
    issues,
    config: {
      vars,
      recipeFile: found.file,
      // A reload sees an edited recipe as a changed target.
      recipeSha: createHash('sha256').update(readFileSync(found.file)).digest('hex').slice(0, 16),
      ...(raw.searchRateLimit || !d.searchRateLimit ? {} : { searchRateLimit: d.searchRateLimit }),
      createContacts,
      ...(raw.budget || !d.budget ? {} : { budget: d.budget }),
      // Whether a phone system's caller lookup can ask it (contacts(), below).
      findsContacts: !!def.lookups.contact?.card,
      makesContacts: !!(def.lookups.contact?.card && def.newContact),
    },
    defaults: {
      ...(d.rateLimit ? { rateLimit: d.rateLimit } : {}),
      ...(d.concurrency ? { concurrency: d.concurrency } : {}),
      ...(d.deliverOn ? { deliverOn: d.deliverOn } : {}),
      ...(d.settleSec !== undefined ? { settleSec: d.settleSec } : {}),
    },
  };
}

export const restSpec: TargetSpec = {
  type: 'rest',
  configSchema,
  // A recipe's own defaults take these places (prepare).
  defaults: {
    deliverOn: 'ended',
    settleSec: 0,
    rateLimit: { requests: 10, perSeconds: 1 },
    concurrency: 2,
  },
  prepare,
  // A recipe finds contacts where it has a contact lookup with a card, and makes them where it
  // also has `newContact`.
  contacts: (config) => ({
    find: config.findsContacts === true,
    create: config.makesContacts === true,
  }),
};
