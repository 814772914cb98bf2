// The agent's live stream (GET /agent/events, SSE): their ringing cards as JSON ("view" events),
// sent when their view changed (desk.ts feeds every stream from one store query). Limited per
// session as the console's, kept open with heartbeats, and ended on sign-out (at once for this
// process's streams; the others' sessions looked at by one timer every few seconds, without
// counting as activity), on shutdown and now and then for proxies.

import type { Context, Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { RelayError } from '../domain/errors.js';
import { SESSION_CHECK_MS, STREAMS_PER_SESSION } from '../http/console/live.js';
import { Desk, type DeskView } from './desk.js';
import { agentError, signedIn, type AgentContext } from './kit.js';

/** Comments keep proxies from closing a quiet stream. */
const HEARTBEAT_MS = 20_000;
/** Without a shutdown signal a stream ends after this, so that a shutdown never waits longer. */
const LIFETIME_MS = 60_000;
/** With one, streams are still renewed now and then. */
const RECYCLE_MS = 10 * 60_000;

/** An open stream as the session watch knows it. */
interface Watched {
  session: string;
  /** The request that opened it: its cookie is the session's. */
  c: Context;
  end(): void;
}

/** Every process's session watches, told at once of a sign-out here (sessions ids are unique). */
const watches = new Set<SessionWatch>();

/**
 * The agent's session ended here (POST /agent/sign-out): their open streams in this process end
 * now, without waiting for the next look.
 */
export function agentSignedOut(session: string): void {
  for (const w of watches) w.ended(session);
}

/**
 * One timer for all of this relay's open streams: every SESSION_CHECK_MS it asks once per
 * distinct session (a session's tabs share one look) whether its agent is still signed in, and
 * ends the streams of those who are not. The timer runs only while a stream is open.
 */
export class SessionWatch {
  private readonly open = new Set<Watched>();
  private timer: NodeJS.Timeout | undefined;
  /** Session looks made (tests: one per session per interval, whatever its tabs). */
  looks = 0;

  constructor(
    private readonly ctx: AgentContext,
    private readonly everyMs = SESSION_CHECK_MS,
  ) {}

  add(w: Watched): () => void {
    this.open.add(w);
    if (this.open.size === 1) {
      watches.add(this);
      this.timer = setInterval(() => void this.check(), this.everyMs);
      this.timer.unref();
    }
    return () => {
      this.open.delete(w);
      if (this.open.size === 0) {
        watches.delete(this);
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  ended(session: string): void {
    for (const w of [...this.open]) if (w.session === session) w.end();
  }

  private async check(): Promise<void> {
    const bySession = new Map<string, Watched>();
    for (const w of this.open) if (!bySession.has(w.session)) bySession.set(w.session, w);
    await Promise.all(
      [...bySession].map(async ([session, w]) => {
        this.looks++;
        try {
          const still = await signedIn(this.ctx, w.c, { touch: false });
          if (!still || still.session.id !== session) this.ended(session);
        } catch {
          // The store is briefly unavailable: the next look tells.
        }
      }),
    );
  }
}

export function mountAgentLive(app: Hono, ctx: AgentContext): Desk {
  const desk = new Desk(ctx.console.opts.pipeline.store, ctx.opts);
  const { signal, redact } = ctx.console.opts;
  const open = new Map<string, number>();
  const watch = new SessionWatch(ctx);

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
      // Ended before the wait below began (a sign-out during the first write): it ends at once.
      let over = false;
      let endNow: () => void = () => {
        over = true;
      };
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
      const unwatch = watch.add({ session: key, c, end: () => endNow() });
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
          if (signal?.aborted || over) resolve();
        });
      } finally {
        release();
        stop();
        unsubscribe();
        clearInterval(heartbeat);
        unwatch();
      }
    });
  });
  return desk;
}
