// How an agent signs in and out. Without a company sign-in (OpenID Connect), the admin sends a
// one-time link (/agent/welcome?t=...): opening it only shows a button, since link previewers and
// mail scanners open whatever they see; the button's POST uses the link up (on every instance)
// and starts the agent's session.

import type { Context, Hono } from 'hono';
import type { Child } from 'hono/jsx';
import { RelayError } from '../domain/errors.js';
import { render } from '../http/console/kit.js';
import { sameOrigin } from '../http/origin.js';
import {
  AgentLayout,
  agentAction,
  agentBack,
  agentError,
  signedIn,
  type AgentContext,
} from './kit.js';

function SignInPage(props: { ctx: AgentContext; next: string; error?: string }): Child {
  return (
    <AgentLayout ctx={props.ctx} title="Sign in">
      <div class="signin">
        <h1>Sign in to your phone page</h1>
        {props.error && (
          <p class="notice error" role="alert">
            {props.error}
          </p>
        )}
        <p>Ask your administrator for a sign-in link: it opens this page signed in as you, once.</p>
      </div>
    </AgentLayout>
  );
}

function WelcomePage(props: { ctx: AgentContext; token: string }): Child {
  return (
    <AgentLayout ctx={props.ctx} title="Sign in">
      <div class="signin">
        <h1>Sign in to your phone page</h1>
        <p>This link signs you in once. It stops working when you use it.</p>
        <form method="post" action="/agent/welcome">
          <input type="hidden" name="t" value={props.token} />
          <button type="submit" class="primary" autofocus>
            Sign in
          </button>
        </form>
      </div>
    </AgentLayout>
  );
}

const LINK_USED =
  'This sign-in link does not work: it was used already, has expired, or was made before the ' +
  'relay got a new admin token. Ask your administrator for a new one.';

export function mountAgentSignIn(app: Hono, ctx: AgentContext): void {
  const signInPage = (c: Context, error?: RelayError): Promise<Response> =>
    render(
      c,
      ctx.console,
      <SignInPage ctx={ctx} next={agentBack(c.req.query('next'))} error={error?.message} />,
      error?.status ?? 200,
    );

  app.get('/agent/sign-in', async (c) => {
    if (await signedIn(ctx, c)) return c.redirect(agentBack(c.req.query('next')), 303);
    return signInPage(c);
  });

  app.get('/agent/welcome', (c) => {
    const token = c.req.query('t') ?? '';
    return render(c, ctx.console, <WelcomePage ctx={ctx} token={token} />);
  });

  app.post('/agent/welcome', async (c) => {
    try {
      // Signing someone in from another site would be a CSRF of its own.
      sameOrigin(c);
      const form = await c.req.parseBody();
      const extension = await ctx.console.sessions.takeSignInLink(
        typeof form.t === 'string' ? form.t : '',
      );
      const agent = extension && ctx.opts.directory().find((a) => a.extension === extension);
      if (!agent) throw new RelayError('RELAY_ERR_UNAUTHORIZED', LINK_USED);
      await ctx.console.sessions.start(c, agent.extension);
      ctx.console.opts.log?.info({ agent: agent.extension }, 'agent signed in with a link');
    } catch (err) {
      return agentError(c, ctx, err, undefined);
    }
    return c.redirect('/agent', 303);
  });

  app.post(
    '/agent/sign-out',
    agentAction(ctx, async (c) => {
      await ctx.console.sessions.end(c);
      return c.redirect('/agent/sign-in', 303);
    }),
  );
}
