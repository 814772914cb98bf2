// Click-to-call for agents, and the target of the browser's tel: handler: GET /agent/dial?number=
// shows the number as it will be dialled and the agent's own extension, and places nothing (link
// previewers and prefetchers GET whatever they see); its button POSTs /agent/dial with the
// session's CSRF token from a page of this origin, and only that places the call, always from the
// session's own extension, never one a form names. Refusals are pages saying what to do.

import type { Context, Hono } from 'hono';
import type { Child } from 'hono/jsx';
import { RelayError, type ErrorCode } from '../domain/errors.js';
import { Csrf, render } from '../http/console/kit.js';
import { AgentLayout, agentAction, agentPage, type AgentContext, type SignedIn } from './kit.js';
import { telNumber } from './tel.js';

/** What the agent can do about a refusal. */
const NEXT: Partial<Record<ErrorCode, string>> = {
  RELAY_ERR_DIAL_REFUSED:
    'Dial it from your desk phone if you must. Your administrator decides which numbers ' +
    'click-to-call dials (dial.allowTypes, dial.allowCountries in relay.yaml).',
  RELAY_ERR_BAD_REQUEST: 'Check the number: a phone number, with its country code if it is abroad.',
  RELAY_ERR_DIAL_RATE_LIMITED: 'Wait a minute, then press Call again.',
  RELAY_ERR_PBX_FAILED:
    'The phone system did not take the call. Try again in a minute; if it keeps failing, tell ' +
    'your administrator.',
  RELAY_ERR_DIAL_NOT_CONFIGURED:
    'Dial from your desk phone for now, and ask your administrator to set up click-to-call ' +
    '(a source with pbx: in relay.yaml).',
  RELAY_ERR_UNKNOWN_SOURCE:
    'Tell your administrator: relay.yaml names a source for you (agents[].source) that it does ' +
    'not have.',
};

function RefusedPage(props: { ctx: AgentContext; who: SignedIn; err: RelayError }): Child {
  const { err } = props;
  return (
    <AgentLayout ctx={props.ctx} title="Not called" who={props.who}>
      <h1>Not called</h1>
      <p class="notice error" role="alert">
        {err.message}
      </p>
      <p>{NEXT[err.code] ?? 'Try again later; if it keeps failing, tell your administrator.'}</p>
      <p class="muted">
        Error code <code>{err.code}</code>
      </p>
      <p>
        <a href="/agent">Back to your page</a>
      </p>
    </AgentLayout>
  );
}

function ConfirmPage(props: {
  ctx: AgentContext;
  who: SignedIn;
  number: string;
  formatted: string;
  ext?: string | undefined;
}): Child {
  const { who, formatted } = props;
  return (
    <AgentLayout ctx={props.ctx} title={`Call ${formatted}?`} who={who}>
      <h1>Call {formatted}?</h1>
      <p>
        Your phone at extension <b>{who.agent.extension}</b> rings first; when you pick up, the
        phone system dials <b>{formatted}</b>.
      </p>
      {props.ext && (
        <p class="notice">
          The link asks for extension <b>{props.ext}</b> at the other end: key it in when they
          answer.
        </p>
      )}
      <form method="post" action="/agent/dial">
        <Csrf session={who.session} />
        <input type="hidden" name="number" value={props.number} />
        <button type="submit" class="primary" autofocus>
          Call
        </button>
      </form>
      <p class="muted">Nothing is dialled until you press Call.</p>
    </AgentLayout>
  );
}

function PlacedPage(props: { ctx: AgentContext; who: SignedIn; number: string }): Child {
  return (
    <AgentLayout ctx={props.ctx} title={`Calling ${props.number}`} who={props.who}>
      <h1>Calling {props.number}</h1>
      <p role="status">
        Calling <b>{props.number}</b>: pick up at extension {props.who.agent.extension}.
      </p>
      <p>
        <a href="/agent">Back to your page</a>
      </p>
    </AgentLayout>
  );
}

export function mountAgentDial(app: Hono, ctx: AgentContext): void {
  const refused = (c: Context, who: SignedIn, err: unknown): Promise<Response> => {
    if (!(err instanceof RelayError)) throw err;
    for (const [k, v] of Object.entries(err.headers ?? {})) c.header(k, v);
    return render(c, ctx.console, <RefusedPage ctx={ctx} who={who} err={err} />, err.status);
  };

  app.get(
    '/agent/dial',
    agentPage(ctx, async (c, who) => {
      const { number, ext } = telNumber(c.req.query('number') ?? '');
      try {
        if (!number)
          throw new RelayError(
            'RELAY_ERR_BAD_REQUEST',
            'there is no number to call: open a phone link, or /agent/dial?number= and the number',
          );
        const d = ctx.opts.checkDial(who.agent, number);
        return await render(
          c,
          ctx.console,
          <ConfirmPage ctx={ctx} who={who} number={d.number} formatted={d.formatted} ext={ext} />,
        );
      } catch (err) {
        return refused(c, who, err);
      }
    }),
  );

  app.post(
    '/agent/dial',
    agentAction(ctx, async (c, who, form) => {
      // Only the number comes from the form: the extension is the session's, whatever is posted.
      const number = typeof form.number === 'string' ? form.number : '';
      let placed;
      try {
        placed = await ctx.opts.dial(who.agent, number);
      } catch (err) {
        return refused(c, who, err);
      }
      ctx.console.opts.log?.info(
        { agent: who.agent.extension, chid: placed.chid },
        'agent placed a call',
      );
      // A reload of the answer must not dial again.
      return c.redirect(`/agent/dial/placed?number=${encodeURIComponent(placed.number)}`, 303);
    }),
  );

  app.get(
    '/agent/dial/placed',
    agentPage(ctx, (c, who) => {
      // Only ever shown as text: a link that puts something else here dials nothing.
      const number = (c.req.query('number') ?? '').replace(/[^\d+]/g, '').slice(0, 20);
      return render(c, ctx.console, <PlacedPage ctx={ctx} who={who} number={number} />);
    }),
  );
}
