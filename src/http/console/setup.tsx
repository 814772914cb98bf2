// How this relay is set up: per source the webhook URL to paste into the phone system (its token
// fetched only on a click), the last request seen and the last refused; per source with crm: the
// 3CX template to download, how to upload it, and "what would 3CX show for this number"; per
// target its counts, a connection test and a backfill (counted first, then confirmed); the agents
// of relay.yaml with a one-time sign-in link each (shown once); the store's health and version.

import type { Context, Hono } from 'hono';
import type { Child } from 'hono/jsx';
import { RelayError } from '../../domain/errors.js';
import { backfillAll } from '../../store/backfill.js';
import {
  UNKNOWN_SOURCE,
  type AgentWithoutUser,
  type Refusal,
  type SourceActivity,
  type TargetStats,
} from '../../store/types.js';
import {
  action,
  Csrf,
  done,
  DryRunBadge,
  errorPage,
  Layout,
  page,
  PostButton,
  render,
  scrubbed,
  Time,
  type ConsoleContext,
} from './kit.js';
import { requestOrigin } from '../origin.js';
import { crmProbeView, type CrmProbeView } from '../admin.js';
import type { Session } from './session.js';

const MASK = '••••••••';

/**
 * Where the phone system must post: server.publicUrl when set (the browser may be on the relay's
 * private address, 127.0.0.1 or an SSH tunnel, which the PBX cannot reach), else the origin the
 * browser used.
 */
const hookBase = (c: Context, source: string, publicUrl: string | undefined): string => {
  const { proto, host } = requestOrigin(c);
  const base = publicUrl ? publicUrl.replace(/\/+$/, '') : `${proto}://${host}`;
  return `${base}/hooks/${encodeURIComponent(source)}/`;
};

/** The directory, how agents sign in, and per agent a button that makes a sign-in link. */
function AgentsSection(props: { ctx: ConsoleContext; session: Session }): Child {
  const agents = props.ctx.opts.agents;
  const list = agents?.directory() ?? [];
  const company = agents?.companySignIn();
  return (
    <>
      <h2>Agents</h2>
      <p>
        {company
          ? `Agents sign in to their page (/agent) with their company account ("Sign in with ${company}"), matched by the email below; a sign-in link works too.`
          : 'Company sign-in is not set up (auth.oidc in relay.yaml): agents sign in to their page (/agent) with a one-time link you make here and send them.'}
      </p>
      {list.length ? (
        <div class="scroll" role="region" aria-label="Agents" tabindex={0}>
          <table>
            <caption>{`${list.length} agent(s) in relay.yaml agents:`}</caption>
            <thead>
              <tr>
                <th scope="col">Extension</th>
                <th scope="col">Name</th>
                <th scope="col">Email</th>
                <th scope="col">Sign-in link</th>
              </tr>
            </thead>
            <tbody>
              {list.map((a) => (
                <tr>
                  <td>{a.extension}</td>
                  <td>{a.name ?? ''}</td>
                  <td>{a.email ?? <span class="muted">none</span>}</td>
                  <td>
                    <form
                      method="post"
                      action={`/console/setup/agents/${encodeURIComponent(a.extension)}/sign-in-link`}
                    >
                      <Csrf session={props.session} />
                      <button type="submit">Make sign-in link</button>
                    </form>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <p class="muted">
          No agents in relay.yaml: list them under agents: (extension, name, email) to give them a
          page of their own.
        </p>
      )}
    </>
  );
}

/** A refused webhook in a line: when, why, from where, to which (masked) path. */
function RefusalLine({ r }: { r: Refusal }): Child {
  return (
    <>
      <Time iso={r.at} />
      {` · ${r.reason} · from ${r.address || 'an unknown address'} · `}
      <code>{r.path}</code>
      {r.count > 1 && ` · ${r.count} refused so far`}
      <span class="muted">{` (${r.status} ${r.code})`}</span>
    </>
  );
}

function SourceCard(props: {
  name: string;
  adapter: string;
  base: string;
  activity: SourceActivity | undefined;
  refusal: Refusal | undefined;
  session: Session;
}): Child {
  const { name, activity: a } = props;
  const id = `hook-${name.replace(/[^\w-]/g, '_')}`;
  return (
    <section class="card" aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>{name}</h3>
      <dl class="facts">
        <dt>Adapter</dt>
        <dd>{props.adapter}</dd>
        <dt>Webhook URL</dt>
        <dd>
          <code class="url" id={id}>
            {`${props.base}${MASK}`}
          </code>
          <div class="actions">
            <form
              method="post"
              action={`/console/setup/sources/${encodeURIComponent(name)}/reveal`}
              data-reveal={id}
            >
              <Csrf session={props.session} />
              <button type="submit" aria-controls={id} aria-expanded="false">
                Reveal
              </button>
            </form>
            <button type="button" data-copy={id} hidden>
              Copy
            </button>
            <span id={`${id}-note`} role="status" class="muted"></span>
          </div>
        </dd>
        <dt>Last request</dt>
        <dd>
          {a ? (
            <>
              <Time iso={a.lastReceivedAt} />
              {` · #${a.lastId} · ${a.lastState}`}
              {a.lastReasonCode && ` (${a.lastReasonCode})`}
            </>
          ) : (
            <span class="muted">none yet: paste the URL into the phone system</span>
          )}
        </dd>
        <dt>Last refused</dt>
        <dd>
          {props.refusal ? <RefusalLine r={props.refusal} /> : <span class="muted">none</span>}
        </dd>
      </dl>
    </section>
  );
}

function TargetCard(props: {
  name: string;
  type: string;
  dryRun: boolean;
  stats: TargetStats | undefined;
  /** Agents its CRM had no user for lately (their calls went without an owner). */
  noUser: AgentWithoutUser[];
  session: Session;
}): Child {
  const s = props.stats;
  return (
    <section class="card" aria-labelledby={`target-${props.name}`}>
      <h3 id={`target-${props.name}`}>
        {props.name} {props.dryRun && <DryRunBadge />}
      </h3>
      <dl class="facts">
        <dt>Type</dt>
        <dd>{props.type}</dd>
        <dt>Delivered</dt>
        <dd>{String(s?.done ?? 0)}</dd>
        <dt>Waiting</dt>
        <dd>{String(s?.due ?? 0)}</dd>
        <dt>Retrying</dt>
        <dd>{String(s?.retrying ?? 0)}</dd>
        <dt>Dead</dt>
        <dd>{String(s?.dead ?? 0)}</dd>
        <dt>Oldest due</dt>
        <dd>
          <Time iso={s?.oldestDueAt} />
        </dd>
        {props.noUser.length > 0 && (
          <>
            <dt>Agents without a user</dt>
            <dd>
              <ul>
                {props.noUser.map((a) => (
                  <li>
                    <span class="b-error">{a.text}</span> ({a.runs}×, last <Time iso={a.lastAt} />)
                  </li>
                ))}
              </ul>
            </dd>
          </>
        )}
      </dl>
      <div class="actions">
        <PostButton
          session={props.session}
          action={`/console/setup/targets/${encodeURIComponent(props.name)}/check`}
          label="Test connection"
        />
      </div>
      <form
        class="actions"
        method="get"
        action={`/console/setup/targets/${encodeURIComponent(props.name)}/backfill`}
      >
        <label>
          Calls stored before this target, since <input type="date" name="since" required />
        </label>
        <button type="submit">Count for backfill</button>
      </form>
    </section>
  );
}

/** Where a source's 3CX template is downloaded, and where its lookup is tried. */
const crmPath = (source: string, what: '3cx-template' | 'crm-lookup'): string =>
  `/console/setup/sources/${encodeURIComponent(source)}/${what}`;

/** A source with crm:: its template, how to upload it, and the lookup test. */
function CrmCard(props: { source: string; hookUrl: string | undefined; number?: string }): Child {
  const id = `crm-${props.source.replace(/[^\w-]/g, '_')}`;
  return (
    <section class="card" aria-labelledby={`${id}-h`}>
      <h3 id={`${id}-h`}>{props.source}</h3>
      <dl class="facts">
        <dt>Template</dt>
        <dd>
          {props.hookUrl ? (
            <>
              <a class="button" href={crmPath(props.source, '3cx-template')} download>
                Download the 3CX template
              </a>{' '}
              <span class="muted">
                for <code>{props.hookUrl}</code>
              </span>
            </>
          ) : (
            <span>
              3CX must reach the relay at its public address, and relay.yaml has no{' '}
              <code>server.publicUrl</code>: set it (https://relay.example.com), or run{' '}
              <code>{`callrelay 3cx-template --source ${props.source} --url https://…`}</code>
            </span>
          )}
        </dd>
        <dt>Upload</dt>
        <dd>
          <ol>
            <li>
              3CX V20: Admin &gt; Integrations &gt; CRM &gt; &quot;Add/Upload template&quot;, choose
              the file, then pick it as the CRM.
            </li>
            <li>V18: Settings &gt; CRM Integration &gt; Server Side, upload the file.</li>
            <li>
              Enter this source&apos;s token (the end of its webhook URL above) as &quot;Source
              token&quot;, then use 3CX&apos;s Test button with a number from the CRM.
            </li>
          </ol>
        </dd>
      </dl>
      <form class="actions" method="get" action={crmPath(props.source, 'crm-lookup')}>
        <label>
          What would 3CX show for{' '}
          <input
            type="tel"
            name="number"
            required
            placeholder="+420774852629"
            value={props.number ?? ''}
          />
        </label>
        <button type="submit">Look up</button>
      </form>
    </section>
  );
}

/** A lookup's answer as 3CX would show it. */
function CrmProbe(props: { view: CrmProbeView }): Child {
  const v = props.view;
  const how = `${v.result}${v.cached ? ', from the cache' : ''}, ${v.ms} ms`;
  return (
    <section class="card" aria-live="polite" id="crm-probe">
      <h3>{`3CX would show for ${v.number}`}</h3>
      {v.shown ? (
        <dl class="facts">
          <dt>Name</dt>
          <dd>{v.shown.name}</dd>
          <dt>Company</dt>
          <dd>{v.shown.company || <span class="muted">none</span>}</dd>
          <dt>Contact link</dt>
          <dd>
            {v.shown.contactUrl ? (
              <a href={v.shown.contactUrl} rel="noreferrer noopener" target="_blank">
                {v.shown.contactUrl}
              </a>
            ) : (
              <span class="b-error">
                none: 3CX accepts a contact only with a link (for HubSpot, set portalId)
              </span>
            )}
          </dd>
          <dt>Answered by</dt>
          <dd>{`${v.target ?? ''} (${how})`}</dd>
        </dl>
      ) : (
        <p>
          {`Nothing: 3CX shows the bare number (${how}${v.e164 ? `, looked up as ${v.e164}` : ', not a phone number'}).`}
          {v.result === 'timeout' &&
            ' The CRM did not answer within crm.answerWithinMs; its answer, once in, serves the next ring.'}
          {v.result === 'error' && ' The CRM failed: the relay log says why.'}
        </p>
      )}
    </section>
  );
}

/** How far back the setup page looks for agents a CRM had no user for. */
const NO_USER_DAYS = 7;

export function mountSetup(app: Hono, ctx: ConsoleContext): void {
  const { pipeline, redact } = ctx.opts;
  const store = pipeline.store;

  app.get(
    '/console/setup',
    page(ctx, async (c, session) => {
      const [activity, refusals, stats, health, noUser] = await Promise.all([
        store.sourceActivity(),
        store.refusals(),
        store.stats(),
        ctx.opts.storeHealth(),
        store.agentsWithoutUser({
          since: new Date(Date.now() - NO_USER_DAYS * 86400_000).toISOString(),
          limit: 100,
        }),
      ]);
      const seen = new Map(redact.value(activity).map((a) => [a.source, a]));
      const refused = new Map(redact.value(refusals).map((r) => [r.source, r]));
      const nowhere = refused.get(UNKNOWN_SOURCE);
      const counts = new Map(stats.targets.map((t) => [t.target, t]));
      const sources = [...pipeline.sources.values()].sort((a, b) => a.name.localeCompare(b.name));
      const crmSources = ctx.opts.crm?.templates() ?? [];
      return render(
        c,
        ctx,
        <Layout
          ctx={ctx}
          title="Setup"
          nav="setup"
          session={session}
          flash={ctx.sessions.takeFlash(c)}
        >
          <h1>Setup</h1>
          <h2>Sources</h2>
          <p>
            Paste a source&apos;s webhook URL into the phone system. It contains the source&apos;s
            token: reveal it only where nobody looks over your shoulder.
          </p>
          <div class="cards wide">
            {sources.map((s) => (
              <SourceCard
                name={s.name}
                adapter={s.provider}
                base={hookBase(c, s.name, ctx.opts.publicUrl)}
                activity={seen.get(s.name)}
                refusal={refused.get(s.name)}
                session={session}
              />
            ))}
          </div>
          {nowhere && (
            <p>
              {'Last request to a source that is not in relay.yaml (check the name in the ' +
                "phone system's URL): "}
              <RefusalLine r={nowhere} />
            </p>
          )}
          {crmSources.length > 0 && (
            <>
              <h2>3CX caller names</h2>
              <p>
                3CX&apos;s own CRM integration asks the relay who is calling and shows the
                contact&apos;s name on the phones, with a link to the CRM record; it can journal
                calls without the WebAPI add-on. Upload the template to 3CX once per source.
              </p>
              <div class="cards wide">
                {crmSources.map((t) => (
                  <CrmCard source={t.source} hookUrl={t.hookUrl} />
                ))}
              </div>
            </>
          )}
          <h2>Targets</h2>
          {ctx.opts.targets.length ? (
            <div class="cards">
              {ctx.opts.targets.map((t) => (
                <TargetCard
                  name={t.name}
                  type={t.type}
                  dryRun={t.dryRun}
                  stats={counts.get(t.name)}
                  noUser={noUser.filter((a) => a.target === t.name)}
                  session={session}
                />
              ))}
            </div>
          ) : (
            <p class="muted">No targets in relay.yaml: calls are stored, not delivered.</p>
          )}
          {ctx.opts.agents && <AgentsSection ctx={ctx} session={session} />}
          <h2>Store</h2>
          <dl class="facts">
            <dt>Kind</dt>
            <dd>{health.backend}</dd>
            <dt>Health</dt>
            <dd>
              <span class={`badge ${health.ok ? 'b-ok' : 'b-error'}`}>
                {health.ok ? 'ok' : 'failing'}
              </span>{' '}
              {redact.text(health.detail)}
            </dd>
            <dt>Requests</dt>
            <dd>
              {Object.entries(stats.inbox)
                .map(([k, v]) => `${v} ${k}`)
                .join(', ')}
            </dd>
            <dt>Oldest not folded</dt>
            <dd>
              <Time iso={stats.oldestPendingAt} />
            </dd>
            <dt>Version</dt>
            <dd>{`callrelay ${ctx.opts.version}`}</dd>
          </dl>
        </Layout>,
      );
    }),
  );

  // The one answer that shows a secret, on purpose: asked for by a signed-in admin with the CSRF
  // token (a plain GET could be made by an image tag or leak through history), never cached.
  app.post('/console/setup/sources/:name/reveal', async (c) => {
    const wantsJson = (c.req.header('accept') ?? '').includes('application/json');
    const session = await ctx.sessions.current(c);
    try {
      if (!session)
        throw new RelayError('RELAY_ERR_UNAUTHORIZED', 'the console session has ended: sign in');
      ctx.sessions.checkPost(c, session, await c.req.parseBody());
      const name = c.req.param('name');
      const src = pipeline.sources.get(name);
      if (!src)
        throw new RelayError('RELAY_ERR_UNKNOWN_SOURCE', `no source "${name}" in relay.yaml`);
      const url = `${hookBase(c, name, ctx.opts.publicUrl)}${encodeURIComponent(src.token)}`;
      if (wantsJson) return c.json({ source: name, url });
      return c.html(
        `<!doctype html>${String(
          await (
            <Layout ctx={ctx} title={`Webhook URL of ${name}`} nav="setup" session={session}>
              <h1>{`Webhook URL of ${name}`}</h1>
              <p>
                <code class="url">{url}</code>
              </p>
              <p>
                <a href="/console/setup">Back to setup</a>
              </p>
            </Layout>
          ),
        )}`,
      );
    } catch (err) {
      const e = scrubbed(ctx, c, err);
      if (wantsJson) return c.json(e.toJSON(), e.status as 400);
      return errorPage(c, ctx, e, session);
    }
  });

  /** The source's template entry, or 404 for a source without crm:. */
  const crmOf = (name: string) => {
    const t = ctx.opts.crm?.templates().find((x) => x.source === name);
    if (!t)
      throw new RelayError(
        'RELAY_ERR_CRM_NOT_CONFIGURED',
        `source ${name} has no crm: in relay.yaml, so 3CX's CRM lookups are off for it`,
      );
    return t;
  };

  app.get(
    '/console/setup/sources/:name/3cx-template',
    page(ctx, async (c) => {
      const t = crmOf(c.req.param('name')!);
      if (!t.xml)
        throw new RelayError(
          'RELAY_ERR_NOT_FOUND',
          'the template needs server.publicUrl in relay.yaml (the address 3CX reaches the relay at)',
        );
      const file = `callrelay-${t.source.replace(/[^\w-]/g, '_')}.xml`;
      return c.body(t.xml, 200, {
        'content-type': 'application/xml; charset=utf-8',
        'content-disposition': `attachment; filename="${file}"`,
        'cache-control': 'no-store',
      });
    }),
  );

  // "What would 3CX show for this number": the same lookup and view as the admin API's
  // GET /api/sources/:name/crm/lookup.
  app.get(
    '/console/setup/sources/:name/crm-lookup',
    page(ctx, async (c, session) => {
      const t = crmOf(c.req.param('name')!);
      const number = (c.req.query('number') ?? '').trim();
      if (!number) throw new RelayError('RELAY_ERR_BAD_REQUEST', 'enter a number to look up');
      const view = redact.value(crmProbeView(number, await ctx.opts.crm!.lookup(t.source, number)));
      const title = `3CX lookup on ${t.source}`;
      return render(
        c,
        ctx,
        <Layout ctx={ctx} title={title} nav="setup" session={session}>
          <h1>{title}</h1>
          <CrmProbe view={view} />
          <div class="cards wide">
            <CrmCard source={t.source} hookUrl={t.hookUrl} number={number} />
          </div>
          <p>
            <a href="/console/setup">Back to setup</a>
          </p>
        </Layout>,
      );
    }),
  );

  // Backfill: the count first (a dry run), then a confirmation that queues; the same rule and
  // loop as `callrelay backfill` and the admin API.
  const backfillOf = (c: Context, since: string | undefined) => {
    const name = c.req.param('name')!;
    const target = ctx.opts.targets.find((t) => t.name === name);
    if (!target) throw new RelayError('RELAY_ERR_NOT_FOUND', `no target "${name}" in relay.yaml`);
    if (!since || Number.isNaN(Date.parse(since)))
      throw new RelayError('RELAY_ERR_BAD_REQUEST', 'since must be a date, e.g. 2026-11-01');
    return {
      target: name,
      since: new Date(Date.parse(since)).toISOString(),
      sandboxTarget: target.dryRun,
    };
  };
  app.get(
    '/console/setup/targets/:name/backfill',
    page(ctx, async (c, session) => {
      const q = backfillOf(c, c.req.query('since'));
      const n = await backfillAll(store, { ...q, dryRun: true });
      const title = `Backfill ${q.target}`;
      return render(
        c,
        ctx,
        <Layout ctx={ctx} title={title} nav="setup" session={session}>
          <h1>{title}</h1>
          <p>
            {`${n.matched} call(s) that started since ${q.since.slice(0, 10)} have not been sent to ${q.target} and its routes send them there now`}
            {n.scanned > n.matched
              ? ` (${n.scanned - n.matched} more in that time are not routed there).`
              : '.'}
          </p>
          {n.matched ? (
            <form
              method="post"
              action={`/console/setup/targets/${encodeURIComponent(q.target)}/backfill`}
            >
              <Csrf session={session} />
              <input type="hidden" name="since" value={q.since} />
              <div class="actions">
                <button type="submit" class="primary">
                  {`Queue ${n.matched} call(s)`}
                </button>
                <a class="button" href="/console/setup">
                  Cancel
                </a>
              </div>
            </form>
          ) : (
            <p>
              Nothing to backfill. <a href="/console/setup">Back to setup</a>
            </p>
          )}
        </Layout>,
      );
    }),
  );

  app.post(
    '/console/setup/targets/:name/backfill',
    action(ctx, async (c) => {
      const form = await c.req.parseBody();
      const q = backfillOf(c, typeof form.since === 'string' ? form.since : undefined);
      const n = await backfillAll(store, { ...q, dryRun: false });
      ctx.opts.onDeliveriesDue();
      return done(c, ctx, '/console/setup', 'ok', `Queued ${n.matched} call(s) for ${q.target}.`);
    }),
  );

  // The link is shown on this answer only (never in a flash cookie, never stored): its secret is
  // kept as a hash.
  app.post(
    '/console/setup/agents/:extension/sign-in-link',
    action(ctx, async (c, session) => {
      if (!ctx.opts.agentLink)
        throw new RelayError('RELAY_ERR_NOT_FOUND', 'agent sign-in links are off on this relay');
      const made = await ctx.opts.agentLink(ctx.sessions, c, c.req.param('extension')!);
      const title = `Sign-in link for extension ${made.agent}`;
      return render(
        c,
        ctx,
        <Layout ctx={ctx} title={title} nav="setup" session={session}>
          <h1>{title}</h1>
          <p>
            Send this link to the agent (it is shown only now). It signs them in once, and works
            until <Time iso={made.expiresAt} /> (UTC).
          </p>
          <p>
            <code class="url" id="sign-in-link">
              {made.url}
            </code>
          </p>
          <p>
            <a href="/console/setup">Back to setup</a>
          </p>
        </Layout>,
      );
    }),
  );

  app.post(
    '/console/setup/targets/:name/check',
    action(ctx, async (c) => {
      const name = c.req.param('name');
      const target = ctx.opts.targets.find((t) => t.name === name);
      if (!target) throw new RelayError('RELAY_ERR_NOT_FOUND', `no target "${name}" in relay.yaml`);
      // A sandbox answers a dry run's check as it answers everything: asking it proves nothing.
      if (target.dryRun)
        return done(
          c,
          ctx,
          '/console/setup',
          'ok',
          `${name}: dry run, nothing asked: a sandbox answers every request (set the token and ` +
            'remove dryRun to test the CRM)',
        );
      try {
        const said = await target.check();
        return done(c, ctx, '/console/setup', 'ok', `${name}: ${said}`);
      } catch (err) {
        return done(c, ctx, '/console/setup', 'error', `${name} failed: ${(err as Error).message}`);
      }
    }),
  );
}
