// The agents' side of the relay: pages of their own under /agent, beside the console and on its
// port, signed in as an agent of relay.yaml's directory (never the admin's session, and never
// /api). runtime.ts mounts it with the console's context (sessions, assets, scrubbing).

import type { Hono } from 'hono';
import type { ConsoleContext } from '../http/console/kit.js';
import { pageHeaders } from '../http/origin.js';
import { mountAgentDial } from './dial.js';
import { mountSignInLinks } from './links.js';
import { mountAgentPage } from './page.js';
import { agentsOff, mountAgentSignIn } from './sign-in.js';
import type { AgentContext } from './kit.js';
import type { AgentOptions } from './types.js';

export function mountAgents(app: Hono, console: ConsoleContext, opts: AgentOptions): void {
  app.use('/agent', pageHeaders);
  app.use('/agent/*', pageHeaders);
  const ctx: AgentContext = { console, opts };
  app.use('/agent', agentsOff(ctx));
  app.use('/agent/*', agentsOff(ctx));
  mountAgentSignIn(app, ctx);
  mountAgentPage(app, ctx);
  mountSignInLinks(app, ctx);
  mountAgentDial(app, ctx);
}
