// What every agent page shares: the layout (who is signed in, sign-out) and the wrapper that lets
// only a signed-in agent who is still in the directory through. Scrubbed and styled as the console.

import type { Context } from 'hono';
import type { Child } from 'hono/jsx';
import { RelayError } from '../domain/errors.js';
import { asRelayError, backPath, Csrf, render, type ConsoleContext } from '../http/console/kit.js';
import { emailKey, type Session } from '../http/console/session.js';
import type { AgentEntry, AgentOptions } from './types.js';

export interface AgentContext {
  console: ConsoleContext;
  opts: AgentOptions;
}

/** A signed-in agent: their session and their directory entry. */
export interface SignedIn {
  session: Session & { agent: string };
  agent: AgentEntry;
}

export const agentLabel = (a: AgentEntry): string =>
  a.name ? `${a.name} (${a.extension})` : `extension ${a.extension}`;

export function AgentLayout(props: {
  ctx: AgentContext;
  title: string;
  who?: SignedIn | undefined;
  children?: Child;
}): Child {
  const { ctx, who } = props;
  const assets = ctx.console.assets;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="robots" content="noindex" />
        <title>{`${props.title} · callrelay`}</title>
        <link rel="stylesheet" href={assets.url('console.css')} />
        <link rel="icon" type="image/svg+xml" href={assets.url('icon.svg')} />
        {who && <meta name="csrf-token" content={who.session.csrf} />}
        <script src={assets.url('console.js')} defer></script>
      </head>
      <body>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header>
          <nav aria-label="Agent">
            <a class="brand" href="/agent">
              callrelay
            </a>
            {who && <span class="who">{agentLabel(who.agent)}</span>}
            {who && (
              <form method="post" action="/agent/sign-out">
                <Csrf session={who.session} />
                <button type="submit">Sign out</button>
              </form>
            )}
          </nav>
        </header>
        <main id="main">{props.children}</main>
        <footer>callrelay {ctx.console.opts.version}</footer>
      </body>
    </html>
  );
}

/**
 * The directory's entry for this extension if it is still the same person: the email the session
 * or link was made with (none for none). An extension given to someone else signs the old person
 * out and voids their unused links.
 */
export function samePerson(
  ctx: AgentContext,
  who: { extension: string; email?: string | undefined },
): AgentEntry | undefined {
  const agent = ctx.opts.directory().find((a) => a.extension === who.extension);
  return agent && emailKey(agent.email) === emailKey(who.email) ? agent : undefined;
}

/** The agent of this request: a live agent session whose person is still in the directory. */
export async function signedIn(
  ctx: AgentContext,
  c: Context,
  opts: { touch?: boolean } = {},
): Promise<SignedIn | undefined> {
  const session = await ctx.console.sessions.currentAgent(c, opts);
  if (!session) return undefined;
  const agent = samePerson(ctx, { extension: session.agent, email: session.email });
  return agent && { session, agent };
}

export function AgentErrorPage(props: {
  ctx: AgentContext;
  who: SignedIn | undefined;
  err: RelayError;
}): Child {
  const { err } = props;
  return (
    <AgentLayout ctx={props.ctx} title="Something went wrong" who={props.who}>
      <h1>Something went wrong</h1>
      <p class="notice error" role="alert">
        {err.message}
      </p>
      <p class="muted">
        Error code <code>{err.code}</code>
      </p>
      <p>
        {props.who ? <a href="/agent">Back to your page</a> : <a href="/agent/sign-in">Sign in</a>}
      </p>
    </AgentLayout>
  );
}

export async function agentError(
  c: Context,
  ctx: AgentContext,
  err: unknown,
  who: SignedIn | undefined,
): Promise<Response> {
  const e = asRelayError(ctx.console, c, err);
  for (const [k, v] of Object.entries(e.headers ?? {})) c.header(k, v);
  return render(c, ctx.console, <AgentErrorPage ctx={ctx} who={who} err={e} />, e.status);
}

type Handler = (c: Context, who: SignedIn) => Promise<Response> | Response;
type Action = (
  c: Context,
  who: SignedIn,
  form: Record<string, unknown>,
) => Promise<Response> | Response;

/** The query parameter of a request the same-site page sent on (so that it does so once). */
const ONCE = 'same-site=1';

/** The request's path and query, without the same-site page's marker. */
export function ownUrl(c: Context): string {
  const url = new URL(c.req.url);
  const query = url.search
    .slice(1)
    .split('&')
    .filter((p) => p !== '' && p !== ONCE)
    .join('&');
  return query ? `${url.pathname}?${query}` : url.pathname;
}

/**
 * A page another site opened (a tel: link on the CRM's page, a link in webmail) and not yet sent on
 * by ours: the browser leaves the SameSite=Strict session cookie out of such a navigation, so no
 * session here says nothing yet. Only `cross-site` means that: `same-site` and `none` (typed,
 * a bookmark, another app) carry the cookie, and no header (an old browser) is taken as it comes.
 * A page opened in the tab (`document`), not something another page loads.
 */
export const crossSiteVisit = (c: Context): boolean =>
  c.req.method === 'GET' &&
  c.req.header('sec-fetch-site') === 'cross-site' &&
  c.req.header('sec-fetch-dest') === 'document' &&
  !new URL(c.req.url).searchParams.has(ONCE.split('=')[0]!);

/**
 * The same address again, from a page of this site (no script: the CSP allows none inline), so
 * that the second request carries the session cookie; it bears a marker, and is not sent on again.
 */
function SameSitePage(props: { ctx: AgentContext; href: string }): Child {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="robots" content="noindex" />
        <meta http-equiv="refresh" content={`0;url=${props.href}`} />
        <title>Opening · callrelay</title>
        <link rel="stylesheet" href={props.ctx.console.assets.url('console.css')} />
      </head>
      <body>
        <main id="main">
          <p>
            <a href={props.href}>Continue</a>
          </p>
        </main>
      </body>
    </html>
  );
}

/** Answer a cross-site visit with the page that opens it again from this site. */
export function sameSiteAgain(c: Context, ctx: AgentContext): Promise<Response> {
  const own = ownUrl(c);
  const href = `${own}${own.includes('?') ? '&' : '?'}${ONCE}`;
  return render(c, ctx.console, <SameSitePage ctx={ctx} href={href} />);
}

/**
 * A page for a signed-in agent; anyone else is sent to sign in and comes back. A visit another
 * site opened is first sent on from this one, since it came without the session cookie.
 */
export const agentPage =
  (ctx: AgentContext, handler: Handler) =>
  async (c: Context): Promise<Response> => {
    const who = await signedIn(ctx, c);
    if (!who) {
      if (crossSiteVisit(c)) return sameSiteAgain(c, ctx);
      return c.redirect(`/agent/sign-in?next=${encodeURIComponent(ownUrl(c))}`, 303);
    }
    try {
      return await handler(c, who);
    } catch (err) {
      return agentError(c, ctx, err, who);
    }
  };

/** A POST of a signed-in agent, from a page of this origin with the session's CSRF token. */
export const agentAction =
  (ctx: AgentContext, handler: Action) =>
  async (c: Context): Promise<Response> => {
    const who = await signedIn(ctx, c);
    try {
      if (!who)
        throw new RelayError('RELAY_ERR_UNAUTHORIZED', 'your session has ended: sign in again');
      const form = await c.req.parseBody();
      ctx.console.sessions.checkPost(c, who.session, form);
      return await handler(c, who, form);
    } catch (err) {
      return agentError(c, ctx, err, who);
    }
  };

/** Where to go after signing in: a path of the agent pages, else the agent's page. */
export const agentBack = (v: unknown): string => backPath(v, '/agent', '/agent');
