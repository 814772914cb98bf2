// How this relay is set up: per source the webhook URL to paste into the phone system (its token
// fetched only on a click), the last request seen and the last refused; per target its counts, a
// connection test and a backfill (counted first, then confirmed); the store's health and version.

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
