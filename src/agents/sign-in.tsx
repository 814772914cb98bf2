// How an agent signs in and out: with their company account (OpenID Connect, oidc.ts) when
// relay.yaml sets auth.oidc; otherwise, or as well, the admin sends a one-time link
// (/agent/welcome?t=...): opening it only shows a button, since link previewers and mail scanners
// open whatever they see; the button's POST uses the link up (on every instance) and starts the
// agent's session.

import type { Context, Hono, MiddlewareHandler } from 'hono';
import type { Child } from 'hono/jsx';
import { RelayError } from '../domain/errors.js';
import { render } from '../http/console/kit.js';
import { sameOrigin } from '../http/origin.js';
import { Oidc, oidcLabel } from './oidc.js';
import { agentSignedOut } from './live.js';
import {
  AgentLayout,
  agentAction,
  agentBack,
  agentError,
  crossSiteVisit,
  sameSiteAgain,
  samePerson,
  signedIn,
  type AgentContext,
} from './kit.js';

function SignInPage(props: {
  ctx: AgentContext;
  next: string;
  error?: string | undefined;
  company?: string | undefined;
}): Child {
  const oidcHref = `/agent/sign-in/oidc?next=${encodeURIComponent(props.next)}`;
  return (
    <AgentLayout ctx={props.ctx} title="Sign in">
      <div class="signin">
        <h1>Sign in to your phone page</h1>
        {props.error && (
          <p class="notice error" role="alert">
            {props.error}
          </p>
        )}
        {props.company ? (
          <>
            <p>
              <a class="button primary" href={oidcHref} id="oidc-sign-in">
                {`Sign in with ${props.company}`}
              </a>
            </p>
            <p class="muted">
              Use your company account. Or ask your administrator for a sign-in link: it opens this
              page signed in as you, once.
            </p>
          </>
        ) : (
          <p>
            Ask your administrator for a sign-in link: it opens this page signed in as you, once.
          </p>
        )}
      </div>
    </AgentLayout>
  );
}

/** After the provider's redirect: a page of this site moves on, so the session cookie is sent. */
function SignedInPage(props: { ctx: AgentContext; next: string }): Child {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="robots" content="noindex" />
        <meta http-equiv="refresh" content={`0;url=${props.next}`} />
        <title>Signed in · callrelay</title>
        <link rel="stylesheet" href={props.ctx.console.assets.url('console.css')} />
      </head>
      <body>
        <main id="main">
          <p>
            Signed in. <a href={props.next}>Continue to your page</a>
          </p>
        </main>
      </body>
    </html>
  );
}

function OffPage({ ctx }: { ctx: AgentContext }): Child {
  return (
    <AgentLayout ctx={ctx} title="Agent pages off">
      <h1>The agent pages are off</h1>
      <p>
        Agents sign in to this relay only when it has an admin token, which keys every session. Ask
        your administrator to set one in relay.yaml:
      </p>
      <pre>
        {`admin:
  token: \${CALLRELAY_ADMIN_TOKEN}`}
      </pre>
    </AgentLayout>
  );
}

/** Every agent page, when relay.yaml has no admin.token (a reload may set or take it away). */
export const agentsOff =
  (ctx: AgentContext): MiddlewareHandler =>
  async (c, next) =>
    ctx.console.gate.settings.adminToken
      ? next()
      : render(c, ctx.console, <OffPage ctx={ctx} />, 403);

function WelcomePage(props: { ctx: AgentContext; token: string; next: string }): Child {
  return (
    <AgentLayout ctx={props.ctx} title="Sign in">
      <div class="signin">
        <h1>Sign in to your phone page</h1>
        <p>This link signs you in once. It stops working when you use it.</p>
        <form method="post" action="/agent/welcome">
          <input type="hidden" name="t" value={props.token} />
          <input type="hidden" name="next" value={props.next} />
          <button type="submit" class="primary" autofocus>
            Sign in
          </button>
        </form>
      </div>
    </AgentLayout>
  );
}

const LINK_USED =
  'This sign-in link does not work: it was used already, has expired, was made before the ' +
  'relay got a new admin token, or was made for someone the directory no longer lists at that ' +
  'extension. Ask your administrator for a new one.';

export function mountAgentSignIn(app: Hono, ctx: AgentContext): void {
  const oidc = new Oidc(() => ctx.opts.oidc?.(), ctx.console.opts.log);
  const signInPage = (c: Context, error?: RelayError): Promise<Response> => {
    const company = oidc.configured;
    return render(
      c,
      ctx.console,
      <SignInPage
        ctx={ctx}
        next={agentBack(c.req.query('next'))}
        error={error?.message}
        company={company && oidcLabel(company)}
      />,
      error?.status ?? 200,
    );
  };

  app.get('/agent/sign-in', async (c) => {
    if (await signedIn(ctx, c)) return c.redirect(agentBack(c.req.query('next')), 303);
    // Opened from another site: the session cookie may be there on a visit from this one.
    if (crossSiteVisit(c)) return sameSiteAgain(c, ctx);
    return signInPage(c);
  });

  app.get('/agent/sign-in/oidc', async (c) => {
    try {
      return await oidc.begin(c, agentBack(c.req.query('next')));
    } catch (err) {
      return agentError(c, ctx, err, undefined);
    }
  });

  app.get('/agent/oidc/callback', async (c) => {
    try {
      const { agent, next } = await oidc.finish(c, ctx.opts.directory());
      // The entry found by this email: the session is bound to it (kit.tsx samePerson).
      await ctx.console.sessions.start(c, { extension: agent.extension, email: agent.email });
      ctx.console.opts.log?.info({ agent: agent.extension }, 'agent signed in with their company');
      return render(c, ctx.console, <SignedInPage ctx={ctx} next={agentBack(next)} />);
    } catch (err) {
      return agentError(c, ctx, err, undefined);
    }
  });

  app.get('/agent/welcome', (c) => {
    const token = c.req.query('t') ?? '';
    const next = agentBack(c.req.query('next'));
    return render(c, ctx.console, <WelcomePage ctx={ctx} token={token} next={next} />);
  });

  app.post('/agent/welcome', async (c) => {
    let next: string;
    try {
      // Signing someone in from another site would be a CSRF of its own.
      sameOrigin(c);
      const form = await c.req.parseBody();
      next = agentBack(form.next);
      const made = await ctx.console.sessions.takeSignInLink(
        typeof form.t === 'string' ? form.t : '',
      );
      // Made for this extension's person as the directory has them now, not whoever has it since.
      const agent = made && samePerson(ctx, made);
      if (!agent) throw new RelayError('RELAY_ERR_UNAUTHORIZED', LINK_USED);
      await ctx.console.sessions.start(c, { extension: agent.extension, email: agent.email });
      ctx.console.opts.log?.info({ agent: agent.extension }, 'agent signed in with a link');
    } catch (err) {
      return agentError(c, ctx, err, undefined);
    }
    return c.redirect(next, 303);
  });

  app.post(
    '/agent/sign-out',
    agentAction(ctx, async (c, who) => {
      await ctx.console.sessions.end(c);
      agentSignedOut(who.session.id);
      return c.redirect('/agent/sign-in', 303);
    }),
  );
}
