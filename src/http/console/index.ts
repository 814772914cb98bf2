// The operator console: server-rendered pages under /console (/ redirects there) for calls,
// one call, failures and setup, signed in with the admin token. Every response carries a strict
// Content-Security-Policy; every page is scrubbed of configured secrets; every change is a POST
// with a CSRF token from a page of this origin.

import type { Hono, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { RelayError } from '../../domain/errors.js';
import { pageHeaders } from '../origin.js';
import { mountAssets } from './assets.js';
import { mountCall } from './call.js';
import { mountCalls } from './calls.js';
import { mountFailures } from './failures.js';
import { errorPage, type ConsoleContext } from './kit.js';
import { mountLive } from './live.js';
import type { AuthGate } from '../gate.js';
import { Sessions } from './session.js';
import { mountSetup } from './setup.js';
import { disabledPage, mountSignIn } from './sign-in.js';
import type { ConsoleOptions } from './types.js';

/** Console forms are a few fields; anything bigger is not one of them. */
const MAX_FORM = 64 * 1024;

/** `gate`: the admin token as relay.yaml last set it, and the throttle shared with /api. */
export function mountConsole(app: Hono, opts: ConsoleOptions, gate: AuthGate): ConsoleContext {
  const headers = pageHeaders;
  app.use('/console', headers);
  app.use('/console/*', headers);
  app.use('/', headers);
  app.use(
    '/console/*',
    bodyLimit({
      maxSize: MAX_FORM,
      onError: () => {
        throw new RelayError('RELAY_ERR_BODY_TOO_LARGE', 'a console form is at most 64 KiB');
      },
    }),
  );

  app.get('/', (c) => c.redirect('/console', 302));
  const assets = mountAssets(app);
  const ctx: ConsoleContext = {
    opts,
    sessions: new Sessions(opts.pipeline.store, gate),
    gate,
    assets,
  };

  // Without a token (a reload may take it away or set one) every console URL shows how to set it.
  const off: MiddlewareHandler = async (c, next) =>
    gate.settings.adminToken ? next() : disabledPage(c, ctx);
  app.use('/console', off);
  app.use('/console/*', off);

  mountSignIn(app, ctx);
  mountLive(app, ctx);
  mountCalls(app, ctx);
  mountCall(app, ctx);
  mountFailures(app, ctx);
  mountSetup(app, ctx);
  // Anything else under /console: a page, not the API's JSON.
  app.all('/console/*', async (c) =>
    errorPage(
      c,
      ctx,
      new RelayError('RELAY_ERR_NOT_FOUND', 'There is no such page in the console.'),
      await ctx.sessions.current(c),
    ),
  );
  return ctx;
}
