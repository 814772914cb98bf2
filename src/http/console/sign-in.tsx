// Signing in with the admin token (one field), signing out, and the page shown instead of the
// console when relay.yaml sets no admin.token.

import type { Context, Hono } from 'hono';
import type { Child } from 'hono/jsx';
import { RelayError } from '../../domain/errors.js';
import { asRelayError, backPath, errorPage, Layout, render, type ConsoleContext } from './kit.js';
import { sameOrigin } from '../origin.js';

function SignInPage(props: { ctx: ConsoleContext; next: string; error?: string }): Child {
  return (
    <Layout ctx={props.ctx} title="Sign in">
      <div class="signin">
        <h1>Sign in to callrelay</h1>
        {props.error && (
          <p class="notice error" role="alert" id="sign-in-error">
            {props.error}
          </p>
        )}
        <form method="post" action="/console/sign-in">
          <input type="hidden" name="next" value={props.next} />
          <label for="token">Admin token</label>
          <input
            id="token"
            name="token"
            type="password"
            autocomplete="current-password"
            required
            autofocus
            aria-describedby={props.error ? 'sign-in-error token-help' : 'token-help'}
          />
          <p class="muted" id="token-help">
            The <code>admin.token</code> of this relay&apos;s relay.yaml
            {props.error || !props.ctx.opts.tokenFile ? (
              '.'
            ) : (
              <>
                : <code>callrelay init</code> put it in <code>{props.ctx.opts.tokenFile}</code> as{' '}
                <code>CALLRELAY_ADMIN_TOKEN</code>.
              </>
            )}
          </p>
          <button type="submit" class="primary">
            Sign in
          </button>
        </form>
      </div>
    </Layout>
  );
}

function DisabledPage({ ctx }: { ctx: ConsoleContext }): Child {
  return (
    <Layout ctx={ctx} title="Console off">
      <h1>The console is off</h1>
      <p>
        The console and the admin API need an admin token. Set one in relay.yaml and restart the
        relay:
      </p>
      <pre>
        {`admin:
  token: \${CALLRELAY_ADMIN_TOKEN}`}
      </pre>
      <p>
        Use a long random value (for example <code>openssl rand -hex 32</code>) from the
        environment, then sign in here with it.
      </p>
    </Layout>
  );
}

/** Every console URL, when relay.yaml has no admin.token. */
export const disabledPage = (c: Context, ctx: ConsoleContext): Promise<Response> =>
  render(c, ctx, <DisabledPage ctx={ctx} />, 403);

export function mountSignIn(app: Hono, ctx: ConsoleContext): void {
  const next = (v: unknown): string => backPath(v, '/console');

  app.get('/console/sign-in', async (c) => {
    if (await ctx.sessions.current(c)) return c.redirect(next(c.req.query('next')), 303);
    return render(c, ctx, <SignInPage ctx={ctx} next={next(c.req.query('next'))} />);
  });

  app.post('/console/sign-in', async (c) => {
    const form = await c.req.parseBody();
    const to = next(form.next);
    try {
      // Signing someone in from another site would be a CSRF of its own.
      sameOrigin(c);
      const token = typeof form.token === 'string' ? form.token.trim() : undefined;
      const expected = ctx.gate.settings.adminToken;
      // The right token always gets in; wrong ones are counted, slowed, then refused for a while.
      if (!expected || !(await ctx.gate.check(c, 'console', token, expected)))
        throw new RelayError(
          'RELAY_ERR_UNAUTHORIZED',
          ctx.opts.tokenFile
            ? `That is not the admin token of this relay. callrelay init put it in ${ctx.opts.tokenFile}, as ` +
                'CALLRELAY_ADMIN_TOKEN=...; a relay started by a service manager may take it from ' +
                'the environment instead (admin.token in relay.yaml names the variable).'
            : 'That is not the admin token of this relay: admin.token in its relay.yaml (or the ' +
                'environment variable it names).',
        );
      await ctx.sessions.start(c);
    } catch (err) {
      const e = asRelayError(ctx, c, err);
      if (e.headers) for (const [k, v] of Object.entries(e.headers)) c.header(k, v);
      return render(c, ctx, <SignInPage ctx={ctx} next={to} error={e.message} />, e.status);
    }
    return c.redirect(to, 303);
  });

  app.post('/console/sign-out', async (c) => {
    const session = await ctx.sessions.current(c);
    const form = await c.req.parseBody();
    // Signing out is harmless, yet a foreign site must not do it either.
    try {
      ctx.sessions.checkPost(c, session, form);
      await ctx.sessions.end(c);
    } catch (err) {
      return errorPage(c, ctx, err, session);
    }
    return c.redirect('/console/sign-in', 303);
  });
}
