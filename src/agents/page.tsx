// The agent's own page (/agent): who is signed in. The ringing card, their calls and click-to-call
// come next (issue 24).

import type { Hono } from 'hono';
import type { Child } from 'hono/jsx';
import { render } from '../http/console/kit.js';
import { AgentLayout, agentLabel, agentPage, type AgentContext } from './kit.js';

/**
 * The offer to make the relay the browser's handler for tel: links (console/agent-dial.js): a
 * phone link in any CRM then opens /agent/dial. Shown only where the browser can do it.
 */
function TelHandler(props: { ctx: AgentContext }): Child {
  return (
    <section class="tel-handler" aria-labelledby="tel-handler-title">
      <h2 id="tel-handler-title">Click-to-call from any page</h2>
      <p>
        Phone links in your CRM, or on any web page, can open here: one click on Call and your phone
        rings, then the number is dialled.
      </p>
      <button type="button" id="tel-handler" hidden>
        Make callrelay open phone links
      </button>
      <p id="tel-handler-status" class="muted" role="status"></p>
      <script src={props.ctx.console.assets.url('agent-dial.js')} defer></script>
    </section>
  );
}

export function mountAgentPage(app: Hono, ctx: AgentContext): void {
  app.get(
    '/agent',
    agentPage(ctx, (c, who) =>
      render(
        c,
        ctx.console,
        <AgentLayout ctx={ctx} title="Your calls" who={who}>
          <h1>{agentLabel(who.agent)}</h1>
          <TelHandler ctx={ctx} />
        </AgentLayout>,
      ),
    ),
  );
}
