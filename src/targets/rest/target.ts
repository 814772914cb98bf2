// The REST target: any CRM a recipe describes (recipe.ts), delivered with the built-in targets'
// guarantees by using their kit: the CRM client (limiter, quick retries, Retry-After, traces and
// attempt rows, metrics, dry runs), PhoneLookup and UserLookup (digits-checked matches, the
// shared-number rule, caches shared by concurrent deliveries), createOnce (exactly one activity
// through lost answers), the recording fetch (allowHosts, credentials, size cap).
//
// One delivery: the contact (looked up once per call, kept in `remote`), the owner, then the
// activity: upsert by key where the recipe has one, else create once (a lost create is found by
// `find`) and update on later deliveries if the recipe can; then each recording uploaded once.

import { randomBytes } from 'node:crypto';
import type { CallRecord } from '../../domain/model.js';
import type { RemoteState } from '../../domain/delivery.js';
import { ExprError } from '../../lib/expr.js';
import type { Logger } from '../../telemetry/log.js';
import { fixedAuth, type CrmAuth } from '../kit/auth.js';
import type { CrmClient, HttpAnswer, HttpCall, Review } from '../kit/client.js';
import { connectCrm } from '../kit/connect.js';
import { callContext, type ContextContact } from '../kit/context.js';
import { createOnce, type PendingCreate } from '../kit/create-once.js';
import {
  BudgetSpent,
  DeliveryError,
  StaleContactError,
  TokenEndpointError,
} from '../kit/errors.js';
import type { WindowLimiter } from '../kit/limiter.js';
import { oauthAuth } from '../kit/oauth.js';
import { sameNumber } from '../kit/lookup.js';
import { PhoneLookup } from '../kit/phone-lookup.js';
import {
  allowedRecordingUrl,
  fetchRecording,
  recordingFileName,
  withRecordingLinks,
  type RecordingLink,
} from '../kit/recordings.js';
import { recordNote } from '../kit/trace.js';
import { UserLookup } from '../kit/user-lookup.js';
import type {
  ContactCard,
  ContactQuery,
  DeliveryContext,
  NewContact,
  RecordingAccess,
  Target,
  TargetDeps,
} from '../types.js';
import { hasEmail, RecipeCards, type Found } from './contacts.js';
import { expression, template, type Expression, type Template } from './compile.js';
import { loadRecipe, typedVars, userIdTest, type Recipe, type RecipeRequest } from './recipe.js';
import { recipeSandbox } from './sandbox.js';
import type { RestConfig } from './spec.js';

type Input = Record<string, unknown>;

interface Remote {
  /** The CRM's id of the activity. */
  id?: string;
  /** The activity exists (an upsert whose answers named no id yet). */
  delivered?: boolean;
  /** The contact found for the caller (null: nobody), looked up once per call. */
  contact?: ContextContact | null;
  /** Recording URLs uploaded (or given up on), each once. */
  uploaded?: string[];
  uploadFailed?: string;
  /** The console's name and link for the activity, worked out when it was delivered. */
  link?: { id: string; url: string | null };
  pendingCreate?: PendingCreate;
  /** Why the recipe's `skip:` wrote nothing for the call (its latest delivery). */
  skipped?: string;
  [k: string]: unknown;
}

/** A request of the recipe, compiled. */
export interface Request {
  step: string;
  method: RecipeRequest['method'];
  url: Template;
  query: [string, Expression][];
  headers: [string, Template][];
  json?: Expression;
  form?: Expression;
  multipart?: { field: string; filename?: Template };
  base64: boolean;
}

export function compileRequest(step: string, r: RecipeRequest): Request {
  return {
    step,
    method: r.method,
    url: template(r.url),
    query: Object.entries(r.query ?? {}).map(([k, v]) => [k, expression(v)]),
    headers: Object.entries(r.headers ?? {}).map(([k, v]) => [k, template(v)]),
    ...(r.json ? { json: expression(r.json) } : {}),
    ...(r.form ? { form: expression(r.form) } : {}),
    ...(r.multipart
      ? {
          multipart: {
            field: r.multipart.field,
            ...(r.multipart.filename ? { filename: template(r.multipart.filename) } : {}),
          },
        }
      : {}),
    base64: !!r.base64,
  };
}

const optional = (s: string | undefined): Expression | undefined =>
  s === undefined ? undefined : expression(s);

const text = (v: unknown): string =>
  v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);

const idOf = (v: unknown): string | undefined =>
  v === undefined || v === null || v === '' ? undefined : text(v);

/** Statuses a lookup or find reads as "nobody" (the CRM's own error otherwise). */
async function unlessNotFound(
  notFound: number[],
  send: () => Promise<HttpAnswer>,
): Promise<HttpAnswer | undefined> {
  try {
    const a = await send();
    return notFound.includes(a.status) ? undefined : a;
  } catch (err) {
    const e = (err as { originalError?: unknown }).originalError ?? err;
    // A token endpoint's 404 (a wrong tokenUrl) is no answer about the record.
    if (
      e instanceof DeliveryError &&
      !(e instanceof TokenEndpointError) &&
      e.status !== undefined &&
      notFound.includes(e.status)
    )
      return undefined;
    throw e;
  }
}

/** A write step's `what` where the recipe gives none: the step's own and its `then:` requests'. */
const WHAT = {
  create: 'creating the call activity',
  update: 'updating the call activity',
  upsert: 'writing the call activity (upsert)',
} as const;

/** One request of a step's `then:`, compiled. */
interface ThenRequest {
  what: string;
  if?: Expression;
  req: Request;
}

const BASIC = "Basic {$base64encode(auth.user & ':' & auth.password)}";

class RestTarget implements Target {
  readonly type = 'rest';
  readonly name: string;
  private readonly def: Recipe;
  private readonly where: string;
  private readonly vars: Record<string, string | number | boolean>;
  private readonly http: CrmClient;
  private auth: CrmAuth | undefined;
  private readonly searchLimiter: WindowLimiter;
  private readonly contacts: PhoneLookup<string> | undefined;
  private readonly users: UserLookup<string>;
  private readonly x: {
    terms?: Expression;
    next?: Expression;
    read?: Expression;
    userRead?: Expression;
    createId?: Expression;
    createKeep?: Expression;
    upsertId?: Expression;
    upsertKeep?: Expression;
    findId?: Expression;
    linkId?: Expression;
    linkUrl?: Template;
    message?: Expression;
    classify?: Expression;
    wait?: Expression;
    skip?: Expression;
  };
  private readonly req: Partial<
    Record<
      'contact' | 'user' | 'create' | 'update' | 'upsert' | 'find' | 'upload' | 'check',
      Request
    >
  >;
  /**
   * Contacts for a phone system's caller lookup: only where the recipe has a contact lookup and
   * says what a card shows (`lookups.contact.card`); by text and email where it has
   * `lookups.text` and `lookups.email` (otherwise those find nobody).
   */
  readonly findContacts?: (q: ContactQuery) => Promise<ContactCard[]>;
  /** A contact from the phone client's form, where the recipe has `newContact` and a card. */
  readonly addContact?: (c: NewContact) => Promise<ContactCard>;
  /** Each write step's `then:` requests, in order. */
  private readonly then: Record<'create' | 'update' | 'upsert', ThenRequest[]>;
  /** Which steps run, decided once over `vars` (`when:`). */
  private active?: Promise<{ create: boolean; update: boolean; upsert: boolean; upload: boolean }>;

  constructor(
    private readonly cfg: RestConfig,
    private readonly recordingAccess: Record<string, RecordingAccess>,
    private readonly recordingLink: RecordingLink | undefined,
    deps: TargetDeps,
  ) {
    this.name = cfg.name;
    const loaded = loadRecipe(cfg.recipeFile);
    const def = (this.def = loaded.def);
    this.where = `recipe ${loaded.yaml.file}`;
    this.vars = typedVars(def, cfg.vars);
    const c = def.lookups.contact;
    this.x = {
      terms: optional(c?.terms),
      next: optional(c?.next),
      read: optional(c?.read),
      userRead: optional(def.lookups.user?.read),
      createId: optional(def.create?.id),
      createKeep: optional(def.create?.keep),
      upsertId: optional(def.upsert?.id),
      upsertKeep: optional(def.upsert?.keep),
      findId: optional(def.find?.id),
      linkId: optional(def.link?.id),
      ...(def.link?.url ? { linkUrl: template(def.link.url) } : {}),
      message: optional(def.errors.message),
      classify: optional(def.errors.classify),
      wait: optional(def.errors.wait),
      skip: optional(def.skip),
    };
    const req = (step: keyof RestTarget['req'], r: RecipeRequest | undefined) =>
      r ? { [step]: compileRequest(step, r) } : {};
    this.req = {
      ...req('contact', c?.request),
      ...req('user', def.lookups.user?.request),
      ...req('create', def.create?.request),
      ...req('update', def.update?.request),
      ...req('upsert', def.upsert?.request),
      ...req('find', def.find?.request),
      ...req('upload', def.recordings?.upload?.request),
      ...req('check', def.check?.request),
    };
    this.then = { create: [], update: [], upsert: [] };
    for (const step of ['create', 'update', 'upsert'] as const) {
      const d = def[step];
      const own = d?.what ?? WHAT[step];
      this.then[step] = (d?.then ?? []).map((t, i) => ({
        what: t.what ?? `after ${own} (${i + 1})`,
        ...(t.if === undefined ? {} : { if: expression(t.if) }),
        // Dry runs answer it as an update (sandbox.ts).
        req: compileRequest('then', t.request),
      }));
    }
    const statuses: Record<number, 'retry' | 'dead'> = {};
    for (const s of def.errors.retry ?? []) statuses[s] = 'retry';
    for (const s of def.errors.dead ?? []) statuses[s] = 'dead';
    const windowLeft = def.errors.windowLeft;
    const crm = connectCrm(
      {
        // Worked out before the first request (urls()); the credential names it (baseUrl()).
        baseUrl: cfg.baseUrl ?? '',
        rateLimit: cfg.rateLimit,
        searchRateLimit: cfg.searchRateLimit ?? cfg.rateLimit,
        budget: cfg.budget,
        timeoutSec: cfg.timeoutSec,
        dryRun: cfg.dryRun,
      },
      {
        crm: def.crm,
        auth: cfg.dryRun
          ? { ...fixedAuth({}), baseUrl: () => this.urlsNow?.base }
          : (this.auth = this.credential(deps.log, deps)),
        policy: { statuses },
        errorFields: ['message', 'error', 'error_description'],
        windowLeft: {
          header: windowLeft?.header.toLowerCase() ?? '',
          pauseMs: () => (windowLeft?.pauseSec ?? 1) * 1000,
        },
        review: (a) => this.review(a),
        sandbox: () => recipeSandbox(def, this.vars, this.notFound()),
      },
    );
    this.http = crm.client;
    this.searchLimiter = crm.searchLimiter;
    const makeContact = def.newContact && this.contactMaker(def.newContact);
    this.contacts = this.req.contact
      ? new PhoneLookup<string>({
          ttlMs: cfg.cacheSec * 1000,
          search: (e164) => this.searchContacts(e164),
          // createContacts: one contact per number, even for calls from it delivered together.
          ...(cfg.createContacts && makeContact
            ? {
                otherwise: async (e164: string) => {
                  const found = await makeContact(
                    { e164 },
                    'creating a contact for an unknown caller',
                  );
                  this.found.set(found.id, {
                    ...(found.name ? { name: found.name } : {}),
                    ...(found.data ? { data: found.data } : {}),
                  });
                  return found.id;
                },
              }
            : {}),
        })
      : undefined;
    if (c?.card && this.req.contact) {
      const cards = new RecipeCards(c.card, (e, i, w) => this.evaluate(e, i, w));
      if (makeContact)
        this.addContact = async (nc) => {
          const contact = {
            firstName: nc.firstName,
            lastName: nc.lastName,
            company: nc.company,
            email: nc.email,
            e164: nc.e164,
          };
          const found = await makeContact(contact, 'creating a contact from the phone client');
          // A delivery's cached miss for the number would hide the new contact for a while.
          this.contacts?.forget(nc.e164 ?? null);
          return cards.card(found, this.vars);
        };
      const by = {
        text: this.searchBy('text', def.lookups.text),
        email: this.searchBy('email', def.lookups.email),
      };
      const findNow = async (q: ContactQuery): Promise<ContactCard[]> => {
        if (q.e164)
          return cards.cards(q.e164, await this.searchContacts(q.e164, 0), q.limit, this.vars);
        const [kind, value] =
          q.text !== undefined ? (['text', q.text] as const) : (['email', q.email ?? ''] as const);
        const search = by[kind];
        if (!search || !value.trim()) return [];
        const found = await search(value.trim(), 0);
        // An email search counts only records whose data has that email.
        const kept = kind === 'email' ? found.filter((c) => hasEmail(c, value)) : found;
        return cards.listed(kept, q.limit, this.vars);
      };
      // A phone system's lookup never waits for the budget (budget:): spent, it finds nobody.
      this.findContacts = (q) =>
        findNow(q).catch((err: unknown) => {
          if (err instanceof BudgetSpent) return [];
          throw err;
        });
    }
    this.users = new UserLookup<string>({
      agents: cfg.agents,
      ttlMs: cfg.cacheSec * 1000,
      fromNumber: String,
      isId: userIdTest(def),
      byEmail: (email) => this.userByEmail(email),
      who: { crm: def.crm, target: cfg.name },
    });
  }

  private notFound(): { contact: number; user: number; find: number } {
    const d = this.def;
    return {
      contact: d.lookups.contact?.notFound?.[0] ?? 404,
      user: d.lookups.user?.notFound?.[0] ?? 404,
      find: d.find?.notFound?.[0] ?? 404,
    };
  }

  /** The recipe's credential: fixed headers, or OAuth 2 (kit/oauth.ts). */
  private credential(log: Logger, deps: TargetDeps): CrmAuth {
    const a = this.def.auth;
    const given = this.cfg.auth ?? {};
    const vars = this.vars;
    if (a.type === 'client_credentials' || a.type === 'refresh_token') {
      const headers = Object.entries(a.headers ?? { Authorization: 'Bearer {token}' }).map(
        ([k, v]) => [k, template(v)] as const,
      );
      const apiUrl = a.apiUrl ? expression(a.apiUrl) : undefined;
      const grant = a.type;
      // Scrubbed from now on, not only once the first request makes the OAuth client.
      if (given.clientSecret) deps.redact?.(given.clientSecret);
      if (given.refreshToken) deps.redact?.(given.refreshToken);
      let oauth: CrmAuth | undefined;
      const inner = async (): Promise<CrmAuth> => {
        const { token, scope } = await this.urls();
        return (oauth ??= oauthAuth({
          target: this.cfg.name,
          grant,
          tokenUrl: token!,
          clientId: given.clientId!,
          clientSecret: given.clientSecret!,
          ...(given.refreshToken ? { refreshToken: given.refreshToken } : {}),
          ...(scope ? { scope } : {}),
          clientAuth: a.clientAuth ?? 'body',
          ...(a.lifetimeSec ? { lifetimeSec: a.lifetimeSec } : {}),
          header: (token) =>
            Object.fromEntries(headers.map(([k, t]) => [k, t.renderNow({ token, vars }, false)])),
          ...(apiUrl ? { apiUrl: (answer) => idOf(apiUrl.evaluateNow({ answer, vars })) } : {}),
          ...(deps.tokens ? { tokens: deps.tokens } : {}),
          ...(deps.redact ? { redact: deps.redact } : {}),
          log,
          timeoutMs: this.cfg.timeoutSec * 1000,
        }));
      };
      return {
        headers: async () => (await inner()).headers(),
        rejected: async (sent) => (await inner()).rejected(sent),
        baseUrl: () => oauth?.baseUrl?.() ?? this.urlsNow?.base,
        close: async () => oauth?.close?.(),
      };
    }
    const raw =
      a.headers ??
      (a.type === 'basic' ? { Authorization: BASIC } : { Authorization: 'Bearer {auth.token}' });
    // Rendered once: the only place expressions see `auth`.
    let headers: Promise<Record<string, string>> | undefined;
    const fixed = fixedAuth({});
    return {
      ...fixed,
      baseUrl: () => this.urlsNow?.base,
      headers: () =>
        (headers ??= Promise.all(
          Object.entries(raw).map(
            async ([k, v]) => [k, await template(v).render({ auth: given, vars }, false)] as const,
          ),
        ).then(Object.fromEntries)),
    };
  }

  /** baseUrl, the token URL and scope, worked out over `vars` once, before the first request. */
  private urlsNow?: { base: string; token?: string; scope?: string };
  private urlsOnce?: Promise<{ base: string; token?: string; scope?: string }>;

  private urls(): Promise<{ base: string; token?: string; scope?: string }> {
    return (this.urlsOnce ??= (async () => {
      const input = { vars: this.vars };
      const render = async (at: string, source: string): Promise<string> => {
        try {
          return await template(source).render(input, false);
        } catch (err) {
          throw new DeliveryError(`${this.where}: ${at}: ${(err as Error).message}`, {
            retryable: false,
          });
        }
      };
      const tokenUrl = this.def.auth.tokenUrl;
      const scope = this.def.auth.scope;
      this.urlsNow = {
        base: this.cfg.baseUrl ?? (await render('baseUrl', this.def.baseUrl)),
        ...(tokenUrl ? { token: await render('auth.tokenUrl', tokenUrl) } : {}),
        ...(scope ? { scope: await render('auth.scope', scope) } : {}),
      };
      return this.urlsNow;
    })());
  }

  /** `errors:` over every answer: a verdict, the CRM's words, the wait a rate limit asks. */
  private async review(answer: HttpAnswer): Promise<Review | undefined> {
    const input = { answer, vars: this.vars };
    const quiet = async (e: Expression | undefined): Promise<unknown> => {
      try {
        return await e?.evaluate(input);
      } catch {
        return undefined; // an expression that cannot read this answer leaves it to the status
      }
    };
    const said = text(await quiet(this.x.classify));
    const ok2xx = answer.status >= 200 && answer.status < 300;
    const out: Review = {};
    if (said === 'ok' || said === 'retry' || said === 'dead') out.verdict = said;
    else if (said === 'rate-limited') out.verdict = 'retry';
    else if (said === 'relookup') {
      out.verdict = 'retry';
      out.relookup = true;
    } else if (said === 'unauthorized') {
      // Dead if a fresh credential is refused too; the client asks for one first.
      out.verdict = 'dead';
      out.unauthorized = true;
    }
    if (out.verdict === 'ok' || (ok2xx && !out.verdict)) return out;
    const message = text(await quiet(this.x.message));
    if (message) out.message = message;
    if (said === 'unauthorized')
      out.message = `${this.def.crm} refused the credentials${message ? `: ${message}` : ''}`;
    if (said === 'rate-limited' || answer.status === 429) {
      const ms = Number(await quiet(this.x.wait));
      if (this.x.wait && Number.isFinite(ms) && ms >= 0) out.afterMs = Math.round(ms);
    }
    return out;
  }

  private steps(): NonNullable<RestTarget['active']> {
    return (this.active ??= (async () => {
      const on = async (w: string | undefined) =>
        w === undefined
          ? true
          : !!(await this.evaluate(expression(w), { vars: this.vars }, 'when'));
      const d = this.def;
      const upsert = !!d.upsert && (await on(d.upsert.when));
      return {
        upsert,
        create: !upsert && !!d.create && (await on(d.create.when)),
        update: !upsert && !!d.update && (await on(d.update.when)),
        upload: !!d.recordings?.upload && (await on(d.recordings.upload.when)),
      };
    })());
  }

  /** An expression's value; an error in it is the recipe's, never worth a retry. */
  private async evaluate(e: Expression, input: Input, what: string): Promise<unknown> {
    try {
      return await e.evaluate(input);
    } catch (err) {
      const m = err instanceof ExprError || err instanceof Error ? err.message : String(err);
      const src = e.source.replace(/\s+/g, ' ').trim();
      throw new DeliveryError(
        `${what}: ${this.where}: "${src.length > 60 ? `${src.slice(0, 57)}...` : src}": ${m}`,
        { retryable: false },
      );
    }
  }

  /** One request of the recipe, its templates and body worked out over `input`. */
  private async send(
    r: Request,
    input: Input,
    o: {
      what: string;
      idempotent: boolean;
      limiter?: WindowLimiter;
      extraQuery?: Record<string, unknown>;
      recording?: { url: string; access: RecordingAccess };
      budgetWaitMs?: number;
    },
  ): Promise<HttpAnswer> {
    const at = (e: Expression) => this.evaluate(e, input, o.what);
    await this.urls();
    let path: string;
    try {
      path = await r.url.render(input, true);
    } catch (err) {
      throw new DeliveryError(`${o.what}: ${this.where}: url: ${(err as Error).message}`, {
        retryable: false,
      });
    }
    const q = new URLSearchParams();
    for (const [k, e] of r.query) {
      const v = await at(e);
      if (v !== undefined && v !== null) q.set(k, text(v));
    }
    for (const [k, v] of Object.entries(o.extraQuery ?? {}))
      if (v !== undefined && v !== null) q.set(k, text(v));
    if ([...q.keys()].length) path += `${path.includes('?') ? '&' : '?'}${q.toString()}`;
    const headers: Record<string, string> = {};
    for (const [k, t] of r.headers) headers[k.toLowerCase()] = await t.render(input, false);
    const call: HttpCall = {
      method: r.method,
      path,
      headers,
      idempotent: o.idempotent,
      what: o.what,
      step: r.step,
      ...(o.limiter ? { limiter: o.limiter } : {}),
      ...(o.budgetWaitMs === undefined ? {} : { budgetWaitMs: o.budgetWaitMs }),
    };
    if (r.multipart && o.recording) {
      const { url, access } = o.recording;
      const boundary = `callrelay-${randomBytes(12).toString('hex')}`;
      const named = r.multipart.filename ? await r.multipart.filename.render(input, false) : '';
      const field = r.multipart.field.replace(/"/g, '');
      headers['content-type'] = `multipart/form-data; boundary=${boundary}`;
      call.stream = async () => {
        const rec = await fetchRecording(url, access);
        const filename = (named || rec.filename).replace(/["\r\n]/g, '');
        return (async function* () {
          yield Buffer.from(
            `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: ${rec.contentType}\r\n\r\n`,
          );
          yield* rec.body;
          yield Buffer.from(`\r\n--${boundary}--\r\n`);
        })();
      };
    } else if (r.json) call.json = await at(r.json);
    else if (r.form) {
      const v = await at(r.form);
      const f = new URLSearchParams();
      for (const [k, x] of Object.entries((v ?? {}) as Record<string, unknown>))
        if (x !== undefined && x !== null) f.set(k, text(x));
      call.body = f.toString();
      headers['content-type'] ??= 'application/x-www-form-urlencoded';
    }
    return this.http.call(call);
  }

  async deliver(ctx: DeliveryContext): Promise<Remote> {
    let saved = { ...(ctx.job.remote as Remote) };
    const save = async (r: Remote): Promise<void> => {
      saved = { ...r };
      await ctx.save(r);
    };
    try {
      return await this.write({ ...ctx, save });
    } catch (err) {
      if (!(err instanceof StaleContactError)) throw err;
      // A merged or deleted contact: the next attempt looks the number up again.
      this.contacts?.forget(ctx.job.record.externalE164);
      const { contact: _gone, ...rest } = saved;
      await ctx.save(rest);
      throw err;
    }
  }

  private async write(ctx: DeliveryContext): Promise<Remote> {
    const c = ctx.job.record;
    const remote: Remote = { ...(ctx.job.remote as Remote) };
    const steps = await this.steps();
    if (remote.contact === undefined) {
      const match = await this.contacts?.find(c.externalE164);
      remote.contact = match
        ? {
            id: match.id,
            others: match.others,
            ...(this.found.get(match.id)?.name ? { name: this.found.get(match.id)!.name! } : {}),
            ...(this.found.get(match.id)?.data ? { data: this.found.get(match.id)!.data! } : {}),
          }
        : null;
    }
    const owner = (await this.users.forAgent(c.agent, ctx.log)) ?? null;
    const input = (): Input => ({
      ...callContext(withRecordingLinks(c, this.recordingLink), {
        target: this.name,
        contact: remote.contact ?? null,
        owner,
      }),
      vars: this.vars,
      remote,
    });

    // `skip:` over what the lookups found: a text writes nothing to this CRM for the call. Only
    // before anything was written for it: a call in the CRM already is kept up to date.
    if (this.x.skip && !remote.id && !remote.delivered && !remote.pendingCreate) {
      const skip = await this.evaluate(this.x.skip, input(), 'skip');
      if (typeof skip === 'string' && skip) return this.skipped(remote, skip, c.externalE164);
      // A truthy non-text (`contact = null` gives true) is a recipe mistake: never ignored.
      if (skip)
        throw new DeliveryError(
          `${this.where}: skip: give the reason as text, got ${JSON.stringify(skip)}`,
          { retryable: false },
        );
    }
    delete remote.skipped;

    if (steps.upsert) {
      const answer = await this.send(this.req.upsert!, input(), {
        what: this.def.upsert!.what ?? WHAT.upsert,
        idempotent: true,
      });
      // Written: an id the recipe cannot read is a warning, never a dead letter of it.
      let id: string | undefined;
      try {
        id = idOf(await this.evaluate(this.x.upsertId!, { ...input(), answer }, 'upsert id'));
      } catch (err) {
        ctx.log.warn({ target: this.name, err: (err as Error).message }, 'upsert id unread');
      }
      if (id) remote.id = id;
      remote.delivered = true;
      await ctx.save(remote);
      await this.keepAfter(ctx, this.x.upsertKeep, { ...input(), answer }, remote);
      await this.thenAfter('upsert', input());
    } else if (!remote.id) {
      if (!steps.create)
        throw new DeliveryError(`${this.where}: no create step for these vars`, {
          retryable: false,
        });
      const what = this.def.create!.what ?? WHAT.create;
      let kept: Input = {};
      const { id, adopted } = await createOnce({
        ctx,
        remote,
        crm: this.def.crm,
        what,
        token: String(input().key),
        searchLagMs: (this.def.find?.lagSec ?? 0) * 1000,
        find: async () => {
          const answer = await unlessNotFound(this.def.find!.notFound ?? [404], () =>
            this.send(this.req.find!, input(), {
              what: 'looking for the activity whose create was lost',
              idempotent: true,
            }),
          );
          if (!answer) return undefined;
          return idOf(await this.evaluate(this.x.findId!, { ...input(), answer }, 'find id'));
        },
        create: async () => {
          const answer = await this.send(this.req.create!, input(), { what, idempotent: false });
          kept = { ...input(), answer };
          // The object exists now: an id the recipe cannot read is a create without an id (the
          // intent stays, and the next attempt finds it), never a dead letter that forgets it.
          try {
            return idOf(await this.evaluate(this.x.createId!, kept, `${what} (id)`));
          } catch (err) {
            ctx.log.warn({ target: this.name, err: (err as Error).message }, 'create id unread');
            return undefined;
          }
        },
      });
      remote.id = id;
      remote.delivered = true;
      await ctx.save(remote);
      if (!adopted) await this.keepAfter(ctx, this.x.createKeep, kept, remote);
      // What a lost create made carries an older revision of the call: bring it up to date.
      if (adopted && steps.update) await this.update(input());
      // Without an update, the create's own `then` brings it to its end state (idempotent).
      else await this.thenAfter('create', input());
    } else if (steps.update) await this.update(input());
    // No update step: the create's `then` (idempotent) again, in case one of it failed last time.
    else await this.thenAfter('create', input());

    if (steps.upload && (remote.id || remote.delivered)) await this.uploads(ctx, c, remote, input);
    const link = await this.linkOf(input());
    if (link) remote.link = link;
    return remote;
  }

  /**
   * A delivery the recipe's `skip:` wrote nothing for: done, with the reason kept and shown among
   * its attempts. The contact is looked up again next time (it may exist by then).
   */
  private skipped(remote: Remote, reason: string, e164: string | null): Remote {
    recordNote("skipping the call (the recipe's skip:)", `skipped: ${reason}`);
    // Its cached miss too, or "Deliver again" finds nobody until the cache expires.
    this.contacts?.forget(e164);
    const { contact: _again, ...rest } = remote;
    return { ...rest, skipped: reason };
  }

  /**
   * The recipe's `newContact`, compiled once: makes a contact (the phone client's form, or
   * createContacts' `{ e164 }` for an unknown caller) and reads it as a lookup candidate.
   */
  private contactMaker(
    made: NonNullable<Recipe['newContact']>,
  ): (contact: Record<string, unknown>, what: string) => Promise<Found> {
    // Dry runs answer it as a create (sandbox.ts): a fresh id.
    const req = compileRequest('create', made.request);
    const read = expression(made.read);
    return async (contact, what) => {
      const input = { contact, vars: this.vars };
      const answer = await this.send(req, input, { what: made.what ?? what, idempotent: false });
      const [found] = this.candidates(
        await this.evaluate(read, { ...input, answer }, 'reading the contact made'),
      );
      if (!found)
        throw new DeliveryError(`creating a contact: ${this.where}: newContact.read gave no id`, {
          retryable: false,
        });
      return found;
    };
  }

  /** Candidates' names and data, by id, from the latest searches (for the context's contact). */
  private readonly found = new Map<string, { name?: string; data?: Record<string, unknown> }>();

  private async update(input: Input): Promise<void> {
    await this.send(this.req.update!, input, {
      what: this.def.update!.what ?? WHAT.update,
      idempotent: true,
    });
    await this.thenAfter('update', input);
  }

  /**
   * A step's `then:` requests, in order, each whose `if` holds for this delivery. One failing
   * fails the delivery; the activity's id is saved already, so the retry takes the update path.
   */
  private async thenAfter(step: keyof RestTarget['then'], input: Input): Promise<void> {
    for (const t of this.then[step]) {
      if (t.if && !(await this.evaluate(t.if, input, `${t.what} (if)`))) continue;
      await this.send(t.req, input, { what: t.what, idempotent: true });
    }
  }

  /** `keep` after a write that is saved already: failing, it is a warning, never a dead letter. */
  private async keepAfter(
    ctx: DeliveryContext,
    e: Expression | undefined,
    input: Input,
    remote: Remote,
  ): Promise<void> {
    if (!e) return;
    try {
      await this.keep(e, input, remote);
    } catch (err) {
      ctx.log.warn({ target: this.name, err: (err as Error).message }, 'keep failed');
      return;
    }
    await ctx.save(remote);
  }

  private async keep(e: Expression | undefined, input: Input, remote: Remote): Promise<void> {
    if (!e) return;
    const v = await this.evaluate(e, input, 'keep');
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const { id, contact, uploaded, link, pendingCreate, delivered } = remote;
      Object.assign(remote, v, { id, contact, uploaded, link, pendingCreate, delivered });
      for (const k of Object.keys(remote)) if (remote[k] === undefined) delete remote[k];
    }
  }

  private async uploads(
    ctx: DeliveryContext,
    c: CallRecord,
    remote: Remote,
    input: () => Input,
  ): Promise<void> {
    const access = this.recordingAccess[c.source];
    for (const url of c.recordings) {
      if ((remote.uploaded ?? []).includes(url) || !allowedRecordingUrl(url, access)) continue;
      const what = this.def.recordings!.upload!.what ?? 'uploading the recording';
      try {
        const r = this.req.upload!;
        const base = { ...input(), recording: { url, filename: recordingFileName(url) } };
        if (r.base64) {
          const file = this.cfg.dryRun
            ? { base64: '', filename: recordingFileName(url), contentType: 'audio/mpeg' }
            : await wholeRecording(url, access!);
          await this.send(r, { ...base, file }, { what, idempotent: false });
        } else
          await this.send(r, base, {
            what,
            idempotent: false,
            recording: { url, access: access! },
          });
      } catch (err) {
        // A recording the PBX will never give costs that recording only (as for Pipedrive).
        if (!(err instanceof DeliveryError) || err.retryable) throw err;
        remote.uploadFailed = err.message;
        ctx.log.warn({ call: c.callId, err: err.message }, 'recording not uploaded');
      }
      remote.uploaded = [...(remote.uploaded ?? []), url];
      await ctx.save(remote);
    }
  }

  private async linkOf(input: Input): Promise<Remote['link']> {
    if (!this.x.linkId) return undefined;
    try {
      const id = text(await this.x.linkId.evaluate(input));
      const url = this.x.linkUrl ? await this.x.linkUrl.render(input, true) : null;
      return id ? { id, url: url && /^https?:\/\//.test(url) ? url : null } : undefined;
    } catch {
      return undefined;
    }
  }

  /** What a recipe's `read` gave: the candidates with an id. */
  private candidates(read: unknown): Found[] {
    const out: Found[] = [];
    for (const c of (Array.isArray(read) ? read : read ? [read] : []) as Record<
      string,
      unknown
    >[]) {
      const id = idOf(c.id);
      if (!id) continue;
      const numbers = (Array.isArray(c.numbers) ? c.numbers : [c.numbers]).map((n) =>
        n === undefined || n === null ? null : text(n),
      );
      const name = typeof c.name === 'string' && c.name ? c.name : undefined;
      const data =
        c.data && typeof c.data === 'object' ? (c.data as Record<string, unknown>) : undefined;
      out.push({
        id,
        numbers,
        ...(name ? { name } : {}),
        ...(typeof c.createdAt === 'string' ? { createdAt: c.createdAt } : {}),
        ...(data ? { data } : {}),
      });
    }
    return out;
  }

  /** The recipe's contact search by text or email (`lookups.text`, `lookups.email`), if any. */
  private searchBy(
    kind: 'text' | 'email',
    l: Recipe['lookups']['text'],
  ): ((value: string, budgetWaitMs?: number) => Promise<Found[]>) | undefined {
    if (!l) return undefined;
    // Dry runs answer these as they answer the contact search (sandbox.ts).
    const req = compileRequest('contact', l.request);
    const terms = optional(l.terms);
    const next = optional(l.next);
    const read = expression(l.read);
    return (value, budgetWaitMs) =>
      this.runSearch(
        { def: l, req, ...(terms ? { terms } : {}), ...(next ? { next } : {}), read },
        { [kind]: value, vars: this.vars },
        value,
        kind === 'text' ? 'searching contacts' : 'looking up a contact by email',
        budgetWaitMs,
      );
  }

  /** Everyone the CRM finds for a number, in every form `terms` gives, page by page. */
  private searchContacts(e164: string, budgetWaitMs?: number): Promise<Found[]> {
    return this.runSearch(
      {
        def: this.def.lookups.contact!,
        req: this.req.contact!,
        ...(this.x.terms ? { terms: this.x.terms } : {}),
        ...(this.x.next ? { next: this.x.next } : {}),
        read: this.x.read!,
      },
      { external: e164, vars: this.vars },
      e164,
      'searching contacts by phone',
      budgetWaitMs,
    );
  }

  /** A search of the recipe (by number, text or email): each term, page by page. */
  private async runSearch(
    l: {
      def: {
        notFound?: number[] | undefined;
        maxPages?: number | undefined;
        untilFound?: boolean | undefined;
      };
      req: Request;
      terms?: Expression;
      next?: Expression;
      read: Expression;
    },
    base: Input,
    term0: string,
    what: string,
    budgetWaitMs?: number,
  ): Promise<Found[]> {
    const def = l.def;
    const forms = l.terms ? await this.evaluate(l.terms, base, 'terms') : [term0];
    const terms = [...new Set((Array.isArray(forms) ? forms : [forms]).map(text).filter((t) => t))];
    const out: Found[] = [];
    for (const term of terms) {
      let extra: Record<string, unknown> = {};
      for (let page = 1; page <= (def.maxPages ?? 5); page++) {
        const input = { ...base, term, page };
        const answer = await unlessNotFound(def.notFound ?? [404], () =>
          this.send(l.req, input, {
            what,
            idempotent: true,
            limiter: this.searchLimiter,
            extraQuery: extra,
            ...(budgetWaitMs === undefined ? {} : { budgetWaitMs }),
          }),
        );
        if (!answer) break;
        const read = await this.evaluate(l.read, { ...input, answer }, 'reading contacts');
        for (const c of this.candidates(read)) {
          // Kept for the contact of the calls a number's search was for; bounded like a cache.
          if (base.external !== undefined) {
            if (this.found.size >= 10_000) this.found.clear();
            this.found.set(c.id, {
              ...(c.name ? { name: c.name } : {}),
              ...(c.data ? { data: c.data } : {}),
            });
          }
          out.push(c);
        }
        if (!l.next) break;
        const more = await this.evaluate(l.next, { ...input, answer }, 'paging');
        if (!more || typeof more !== 'object') break;
        extra = { ...extra, ...(more as Record<string, unknown>) };
      }
      // untilFound: a record that really has the number (not a look-alike of another country's
      // that shares its national digits) ends the search; each further term costs a request.
      const caller = typeof base.external === 'string' ? base.external : undefined;
      if (def.untilFound && caller && out.some((c) => c.numbers.some((n) => sameNumber(n, caller))))
        break;
    }
    return out;
  }

  private async userByEmail(email: string): Promise<string | undefined> {
    const def = this.def.lookups.user;
    if (!def) return undefined;
    const input = { email, vars: this.vars };
    const answer = await unlessNotFound(def.notFound ?? [404], () =>
      this.send(this.req.user!, input, { what: `looking up the user ${email}`, idempotent: true }),
    );
    if (!answer) return undefined;
    return idOf(await this.evaluate(this.x.userRead!, { ...input, answer }, 'reading the user'));
  }

  link(remote: RemoteState): { id: string; url: string | null } | undefined {
    const r = remote as Remote;
    return r.link ?? (r.id ? { id: r.id, url: null } : undefined);
  }

  get mappedAgents(): string[] {
    return Object.keys(this.cfg.agents);
  }

  unknownAgents(): Promise<string[]> {
    return this.def.lookups.user ? this.users.unknown(this.def.crm) : Promise.resolve([]);
  }

  async check(): Promise<string> {
    if (this.req.check) {
      const a = await this.send(
        this.req.check,
        { vars: this.vars },
        {
          what: 'checking the credentials',
          idempotent: true,
        },
      );
      return `credentials accepted (${this.def.crm} answered ${a.status})`;
    }
    if (this.req.contact) {
      const found = await this.searchContacts('+15555550100');
      return `credentials accepted (${this.def.crm}: searching contacts by phone works, ${found.length} with +15555550100)`;
    }
    return `nothing to check: recipe ${this.def.name} has no lookups and no check`;
  }

  async close(): Promise<void> {
    await this.http.close();
    // OAuth's own connections to the token endpoint.
    await this.auth?.close?.();
  }
}

/** A recording whole, for a base64 body (the source's size cap holds). */
async function wholeRecording(
  url: string,
  access: RecordingAccess,
): Promise<{ base64: string; filename: string; contentType: string }> {
  const rec = await fetchRecording(url, access);
  const chunks: Buffer[] = [];
  for await (const c of rec.body) chunks.push(Buffer.from(c));
  return {
    base64: Buffer.concat(chunks).toString('base64'),
    filename: rec.filename,
    contentType: rec.contentType,
  };
}

export function create(config: RestConfig, deps: TargetDeps): Target {
  return new RestTarget(config, deps.recordings, deps.recordingLink, deps);
}
