// The agent's live stream (GET /agent/events, SSE): their ringing cards as JSON ("view" events),
// sent when their view changed (desk.ts feeds every stream from one store query). Limited per
// session as the console's, kept open with heartbeats, and ended on sign-out (looked at every few
// seconds, without counting as activity), on shutdown and now and then for proxies.

import type { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { RelayError } from '../domain/errors.js';
import { STREAMS_PER_SESSION } from '../http/console/live.js';
import { Desk, type DeskView } from './desk.js';
import { agentError, signedIn, type AgentContext } from './kit.js';

/** Comments keep proxies from closing a quiet stream. */
const HEARTBEAT_MS = 20_000;
/** How often an open stream looks whether its agent is still signed in. */
export const AGENT_SESSION_CHECK_MS = 2000;
/** Without a shutdown signal a stream ends after this, so that a shutdown never waits longer. */
const LIFETIME_MS = 60_000;
/** With one, streams are still renewed now and then. */
const RECYCLE_MS = 10 * 60_000;

export function mountAgentLive(app: Hono, ctx: AgentContext): Desk {
  const desk = new Desk(ctx.console.opts.pipeline.store, ctx.opts);
  const { signal, redact } = ctx.console.opts;
  const open = new Map<string, number>();

  app.get('/agent/events', async (c) => {
    // A stream is no activity of the agent's: it must not keep the session from its idle end.
    const who = await signedIn(ctx, c, { touch: false });
    try {
      if (!who)
        throw new RelayError('RELAY_ERR_UNAUTHORIZED', 'your session has ended: sign in again');
    } catch (err) {
      return agentError(c, ctx, err, undefined);
    }
    const key = who.session.id;
    const mine = open.get(key) ?? 0;
    if (mine >= STREAMS_PER_SESSION)
      return agentError(
        c,
        ctx,
        new RelayError(
          'RELAY_ERR_TOO_MANY_STREAMS',
          `you have ${mine} pages of the relay open, the most you may; close a tab`,
        ),
        who,
      );
    open.set(key, mine + 1);
    const release = (): void => {
      const left = (open.get(key) ?? 1) - 1;
      if (left > 0) open.set(key, left);
      else open.delete(key);
    };
    return streamSSE(c, async (stream) => {
      let endNow: () => void = () => {};
      let stop: () => void = () => {};
      const send = (view: DeskView): void => {
        // Whatever a CRM answered goes through the scrubber as every page does.
        const data = redact.text(JSON.stringify(view));
        void stream.writeSSE({ event: 'view', data }).catch(() => {});
      };
      const heartbeat = setInterval(
        () => void stream.write(': ping\n\n').catch(() => {}),
        HEARTBEAT_MS,
      );
      const sessionCheck = setInterval(() => {
        signedIn(ctx, c, { touch: false }).then(
          (still) => {
            if (!still || still.session.id !== key) endNow();
          },
          () => {},
        );
      }, AGENT_SESSION_CHECK_MS);
      let unsubscribe: () => void = () => {};
      try {
        // The browser reconnects after `retry` ms when the stream ends.
        await stream.writeSSE({ event: 'ready', data: '', retry: 2000 });
        unsubscribe = desk.subscribe(who.agent.extension, send);
        await new Promise<void>((resolved) => {
          const resolve = (): void => resolved();
          endNow = resolve;
          const end = setTimeout(resolve, signal ? RECYCLE_MS : LIFETIME_MS);
          stop = () => {
            clearTimeout(end);
            signal?.removeEventListener('abort', resolve);
          };
          stream.onAbort(resolve);
          signal?.addEventListener('abort', resolve, { once: true });
          if (signal?.aborted) resolve();
        });
      } finally {
        release();
        stop();
        unsubscribe();
        clearInterval(heartbeat);
        clearInterval(sessionCheck);
      }
    });
  });
  return desk;
}
