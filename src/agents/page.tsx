// The agent's own page (/agent): who is signed in. The ringing card, their calls and click-to-call
// come next (issue 24).

import type { Hono } from 'hono';
import { render } from '../http/console/kit.js';
import { AgentLayout, agentLabel, agentPage, type AgentContext } from './kit.js';

export function mountAgentPage(app: Hono, ctx: AgentContext): void {
  app.get(
    '/agent',
    agentPage(ctx, (c, who) =>
      render(
        c,
        ctx.console,
        <AgentLayout ctx={ctx} title="Your calls" who={who}>
          <h1>{agentLabel(who.agent)}</h1>
        </AgentLayout>,
      ),
    ),
  );
}
