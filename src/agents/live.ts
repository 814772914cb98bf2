// The agent's live stream (GET /agent/events, SSE): their ringing cards as JSON ("view" events),
// sent when their view changed (desk.ts feeds every stream from one store query). Limited per
// session as the console's, kept open with heartbeats, and ended on sign-out (at once for this
// process's streams; the others' sessions looked at by one timer every few seconds, without
// counting as activity), on shutdown and now and then for proxies.

import type { Context, Hono } from 'hono';
import { RelayError } from '../domain/errors.js';
import { liveStream, SESSION_CHECK_MS, StreamSlots } from '../http/console/live.js';
import { Desk, type DeskView } from './desk.js';
import { agentError, signedIn, type AgentContext } from './kit.js';

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
  const slots = new StreamSlots();
  const watch = new SessionWatch(ctx);

  app.get('/agent/events', async (c) => {
    // A stream is no activity of the agent's: it must not keep the session from its idle end.
    const who = await signedIn(ctx, c, { touch: false });
    let release: () => void;
    try {
      if (!who)
        throw new RelayError('RELAY_ERR_UNAUTHORIZED', 'your session has ended: sign in again');
      release = slots.take(
        who.session.id,
        (mine) => `you have ${mine} pages of the relay open, the most you may; close a tab`,
      );
    } catch (err) {
      return agentError(c, ctx, err, who);
    }
    return liveStream(c, signal, (stream, end) => {
      const unwatch = watch.add({ session: who.session.id, c, end });
      const unsubscribe = desk.subscribe(who.agent.extension, (view: DeskView) => {
        // Whatever a CRM answered goes through the scrubber as every page does.
        const data = redact.text(JSON.stringify(view));
        void stream.writeSSE({ event: 'view', data }).catch(() => {});
      });
      return () => {
        release();
        unsubscribe();
        unwatch();
      };
    });
  });
  return desk;
}
