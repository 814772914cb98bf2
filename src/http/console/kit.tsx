// What every console page shares: the layout (navigation, flash message, assets), small views
// (times, durations, delivery badges), and the handler wrappers that check the session and CSRF,
// scrub every page of configured secrets and turn errors into a friendly page.

import type { Context } from 'hono';
import type { Child } from 'hono/jsx';
import { badgeText, deliveryBadge } from '../../domain/delivery.js';
import { RelayError } from '../../domain/errors.js';
import type { DeliveryRow } from '../../store/types.js';
import type { Assets } from './assets.js';
import type { AuthGate } from '../gate.js';
import { type Session, Sessions } from './session.js';
import type { ConsoleOptions } from './types.js';

export interface ConsoleContext {
  opts: ConsoleOptions;
  sessions: Sessions;
  /** The tokens and the throttle for wrong ones, shared with /api and /metrics. */
  gate: AuthGate;
  assets: Assets;
}

export type NavItem = 'calls' | 'failures' | 'setup';

const NAV: [NavItem, string, string][] = [
  ['calls', '/console', 'Calls'],
  ['failures', '/console/failures', 'Failures'],
  ['setup', '/console/setup', 'Setup'],
];

export function Layout(props: {
  ctx: ConsoleContext;
  title: string;
  nav?: NavItem | undefined;
  session?: Session | undefined;
  flash?: { kind: 'ok' | 'error'; text: string } | undefined;
  children?: Child;
}): Child {
  const { ctx, session, flash } = props;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · callrelay`}</title>
        <link rel="stylesheet" href={ctx.assets.url('console.css')} />
        <link rel="icon" type="image/svg+xml" href={ctx.assets.url('icon.svg')} />
        {session && <meta name="csrf-token" content={session.csrf} />}
        <script src={ctx.assets.url('console.js')} defer></script>
      </head>
      <body>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header>
          <nav aria-label="Console">
            <a class="brand" href="/console">
              callrelay
            </a>
            {session && (
              <ul>
                {NAV.map(([id, href, label]) => (
                  <li>
                    <a href={href} aria-current={props.nav === id ? 'page' : undefined}>
                      {label}
                    </a>
                  </li>
                ))}
              </ul>
            )}
            {session && (
              <form method="post" action="/console/sign-out">
                <Csrf session={session} />
                <button type="submit">Sign out</button>
              </form>
            )}
          </nav>
        </header>
        <main id="main">
          {flash && (
            <p class={flash.kind === 'ok' ? 'notice' : 'notice error'} role="status">
              {flash.text}
            </p>
          )}
          {props.children}
        </main>
        <footer>callrelay {ctx.opts.version}</footer>
      </body>
    </html>
  );
}

export const Csrf = ({ session }: { session: Session }): Child => (
  <input type="hidden" name="_csrf" value={session.csrf} />
);

/** A button that posts to `action` (with the CSRF token), optionally after a confirm dialog. */
export function PostButton(props: {
  session: Session;
  action: string;
  label: string;
  back?: string;
  confirm?: string;
  kind?: 'primary' | 'danger';
}): Child {
  return (
    <form class="inline" method="post" action={props.action} data-confirm={props.confirm}>
      <Csrf session={props.session} />
      {props.back && <input type="hidden" name="back" value={props.back} />}
      <button type="submit" class={props.kind}>
        {props.label}
      </button>
    </form>
  );
}

/** An ISO time as "2026-01-01 12:00:05" (UTC, as every time in the console). */
export const timeText = (iso: string): string => iso.replace('T', ' ').slice(0, 19);

export const Time = ({ iso }: { iso: string | null | undefined }): Child =>
  iso ? <time datetime={iso}>{timeText(iso)}</time> : <span class="muted">–</span>;

export function duration(sec: number | null | undefined): string {
  if (sec === null || sec === undefined) return '–';
  const s = Math.round(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${r}` : `${m}:${r}`;
}

export const Direction = ({ dir }: { dir: string | null }): Child =>
  dir === 'inbound' ? (
    <span class="dir">
      <span aria-hidden="true">↙ </span>in
    </span>
  ) : dir === 'outbound' ? (
    <span class="dir">
      <span aria-hidden="true">↗ </span>out
    </span>
  ) : (
    <span class="muted">–</span>
  );

/**
 * A target whose requests a sandbox answers (targets[].dryRun): nothing reaches the CRM. `run`: a
 * delivery a dry run made (kept with the delivery, whatever the target is now).
 */
export const DryRunBadge = ({ run }: { run?: boolean } = {}): Child => (
  <span
    class="badge b-dryrun"
    title={
      run
        ? 'made by a dry run: a sandbox answered, nothing reached the CRM'
        : 'dryRun: true in relay.yaml: requests are built, not sent'
    }
  >
    dry run
  </span>
);

/** How a delivery stands, as one badge: delivered, waiting, retrying (next try), dead. */
export function Badge({ d, withTarget }: { d: DeliveryRow; withTarget?: boolean }): Child {
  const b = deliveryBadge(d);
  const clock = (iso: string): string => timeText(iso).slice(11);
  const label =
    b.kind === 'delivered'
      ? 'delivered'
      : b.kind === 'dead'
        ? 'dead'
        : b.kind === 'waiting'
          ? // Past its time: queued for a free slot, or being sent right now.
            Date.parse(b.at) > Date.now()
            ? `waiting until ${clock(b.at)}`
            : 'waiting'
          : `retrying, next ${clock(b.at)}`;
  return (
    <span class={`badge b-${b.kind}`} title={`${d.target}: ${badgeText(b)}`}>
      {withTarget ? `${d.target}: ${label}` : label}
    </span>
  );
}

/**
 * A path under `under` (the console, the agent pages) to go back to after a POST or a sign-in
 * (never another site). Printable ASCII only: a CR/LF would split the Location header (and fail
 * the answer), and a URL path the relay makes is percent-encoded anyway.
 */
export function backPath(v: unknown, dflt: string, under = '/console'): string {
  return typeof v === 'string' &&
    v.startsWith(under) &&
    /^[/?#]?$/.test(v.charAt(under.length)) &&
    !v.startsWith('//') &&
    /^[\x21-\x7e]*$/.test(v)
    ? v
    : dflt;
}

/** The HTML of a page, scrubbed of every configured secret whatever slipped into the data. */
export async function render(
  c: Context,
  ctx: ConsoleContext,
  page: Child,
  status = 200,
): Promise<Response> {
  const html = `<!doctype html>${String(await page)}`;
  return c.html(ctx.opts.redact.text(html), status as 200);
}

/** A piece of a page for console.js to swap in, scrubbed the same way. */
export async function renderFragment(
  c: Context,
  ctx: ConsoleContext,
  part: Child,
): Promise<Response> {
  return c.html(ctx.opts.redact.text(String(await part)));
}

export function ErrorPage(props: {
  ctx: ConsoleContext;
  session: Session | undefined;
  err: RelayError;
}): Child {
  const { err } = props;
  const signIn = err.code === 'RELAY_ERR_UNAUTHORIZED' || !props.session;
  return (
    <Layout ctx={props.ctx} title="Something went wrong" session={props.session}>
      <h1>Something went wrong</h1>
      <p class="notice error" role="alert">
        {err.message}
      </p>
      <p class="muted">
        Error code <code>{err.code}</code>
      </p>
      <p>
        {signIn ? <a href="/console/sign-in">Sign in</a> : <a href="/console">Back to calls</a>}
      </p>
    </Layout>
  );
}

/** Any error as one of the catalogue (unexpected ones are logged and shown as internal). */
export function asRelayError(ctx: ConsoleContext, c: Context, err: unknown): RelayError {
  if (err instanceof RelayError) return err;
  ctx.opts.log?.error(
    { err: ctx.opts.redact.text((err as Error).message), path: c.req.path },
    'console page failed',
  );
  return new RelayError('RELAY_ERR_INTERNAL');
}

export async function errorPage(
  c: Context,
  ctx: ConsoleContext,
  err: unknown,
  session: Session | undefined,
): Promise<Response> {
  const e = asRelayError(ctx, c, err);
  return render(c, ctx, <ErrorPage ctx={ctx} session={session} err={e} />, e.status);
}

type PageHandler = (c: Context, session: Session) => Promise<Response> | Response;
type ActionHandler = (
  c: Context,
  session: Session,
  form: Record<string, unknown>,
) => Promise<Response> | Response;

/** A page for a signed-in admin; others are sent to sign in and come back. */
export const page =
  (ctx: ConsoleContext, handler: PageHandler) =>
  async (c: Context): Promise<Response> => {
    const session = await ctx.sessions.current(c);
    if (!session) {
      const url = new URL(c.req.url);
      return c.redirect(
        `/console/sign-in?next=${encodeURIComponent(url.pathname + url.search)}`,
        303,
      );
    }
    try {
      return await handler(c, session);
    } catch (err) {
      return errorPage(c, ctx, err, session);
    }
  };

/** A form POST: signed in, CSRF token and origin checked; errors as a page. */
export const action =
  (ctx: ConsoleContext, handler: ActionHandler) =>
  async (c: Context): Promise<Response> => {
    const session = await ctx.sessions.current(c);
    try {
      if (!session)
        throw new RelayError('RELAY_ERR_UNAUTHORIZED', 'your session has ended: sign in again');
      const form = await c.req.parseBody();
      ctx.sessions.checkPost(c, session, form);
      return await handler(c, session, form);
    } catch (err) {
      return errorPage(c, ctx, err, session);
    }
  };

/**
 * A fetch from the console's script (fragment, stream, recording): errors as the catalogue's
 * JSON, scrubbed like pages (a message may quote the URL, and the URL anything).
 */
export const fetched =
  (ctx: ConsoleContext, handler: PageHandler) =>
  async (c: Context): Promise<Response> => {
    try {
      // Fetched by a page on its own (live updates): not a use of the session.
      const session = await ctx.sessions.current(c, { touch: false });
      if (!session)
        throw new RelayError('RELAY_ERR_UNAUTHORIZED', 'the console session has ended: sign in');
      return await handler(c, session);
    } catch (err) {
      throw scrubbed(ctx, c, err);
    }
  };

/** The error, its message scrubbed of every configured secret. */
export function scrubbed(ctx: ConsoleContext, c: Context, err: unknown): RelayError {
  const e = asRelayError(ctx, c, err);
  return new RelayError(e.code, ctx.opts.redact.text(e.message), { headers: e.headers });
}

/** After a POST: say what happened on the next page, and go there. */
export function done(
  c: Context,
  ctx: ConsoleContext,
  back: string,
  kind: 'ok' | 'error',
  text: string,
): Response {
  ctx.sessions.flash(c, kind, ctx.opts.redact.text(text));
  return c.redirect(back, 303);
}
