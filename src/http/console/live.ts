// Live views: one SSE stream per open console page, saying "changed" when a fold or delivery
// finished in this process (opts.onChange) or, for work other instances did, when a cheap look at
// the store (newest call, newest attempt) differs from the last. One look per interval whatever
// the number of pages open, and none while no page is.

import type { Context, Hono } from 'hono';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import { RelayError } from '../../domain/errors.js';
import type { Store } from '../../store/types.js';
import { fetched, type ConsoleContext } from './kit.js';

/** How often the store is looked at for other instances' work. */
const POLL_MS = 2000;
/** At most one "changed" per this long per page: a burst of folds is one fetch. */
const THROTTLE_MS = 300;
/** Comments keep proxies from closing a quiet stream. */
const HEARTBEAT_MS = 20_000;
/** How often an open stream looks whether its session still holds (sign-out, idle, new token). */
export const SESSION_CHECK_MS = 5000;
/** Without a shutdown signal a stream ends after this, so that a shutdown never waits longer. */
const LIFETIME_MS = 60_000;
/** With one, streams are still renewed now and then (proxies, long-lived sockets). */
const RECYCLE_MS = 10 * 60_000;
/**
 * Open streams per session: enough for a few tabs; more is refused (429), not the oldest closed,
 * since a closed stream's tab reconnects and would close another in turn.
 */
export const STREAMS_PER_SESSION = 5;

/**
 * Open streams counted per session (the console's, an agent's): `take` answers the release, or
 * throws RELAY_ERR_TOO_MANY_STREAMS (429) with `tooMany`'s words when the session has its fill.
 */
export class StreamSlots {
  private readonly open = new Map<string, number>();

  take(session: string, tooMany: (open: number) => string): () => void {
    const mine = this.open.get(session) ?? 0;
    if (mine >= STREAMS_PER_SESSION)
      throw new RelayError('RELAY_ERR_TOO_MANY_STREAMS', tooMany(mine));
    this.open.set(session, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(session) ?? 1) - 1;
      if (left > 0) this.open.set(session, left);
      else this.open.delete(session);
    };
  }
}

/**
 * A live view's SSE stream, whoever it is for: `open` starts what feeds it (called before the
 * first event; `end` ends the stream, at once if called before it began waiting) and answers what
 * stops that. The stream is kept open with heartbeats, and ends when the browser goes, at the
 * relay's shutdown (`signal`), and after its lifetime (the browser reconnects after 2 s), so that
 * a shutdown never waits on it.
 */
export function liveStream(
  c: Context,
  signal: AbortSignal | undefined,
  open: (stream: SSEStreamingApi, end: () => void) => () => void,
): Response {
  return streamSSE(c, async (stream) => {
    let over = false;
    let endNow: () => void = () => {
      over = true;
    };
    let stop: () => void = () => {};
    const heartbeat = setInterval(
      () => void stream.write(': ping\n\n').catch(() => {}),
      HEARTBEAT_MS,
    );
    let close: () => void = () => {};
    try {
      close = open(stream, () => endNow());
      // The browser reconnects after `retry` ms when the stream ends.
      await stream.writeSSE({ event: 'ready', data: '', retry: 2000 });
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
      stop();
      close();
      clearInterval(heartbeat);
    }
  });
}

type Listener = () => void;

export class ChangeFeed {
  private readonly listeners = new Set<Listener>();
  private timer: NodeJS.Timeout | undefined;
  private last: string | undefined;
  private unsubscribe: (() => void) | undefined;
  private looking = false;

  constructor(
    private readonly store: Store,
    private readonly onChange: (l: () => void) => () => void,
    private readonly pollMs = POLL_MS,
  ) {}

  /** What changes when calls or deliveries change anywhere (index seeks, not scans). */
  private async fingerprint(): Promise<string> {
    const [call] = await this.store.listCalls({ limit: 1 });
    const [attempt] = await this.store.listAttempts({ limit: 1 });
    return `${call?.updatedAt}|${call?.record.source}|${call?.record.callId}|${call?.revision}|${attempt?.id}`;
  }

  private async look(): Promise<void> {
    if (this.looking) return;
    this.looking = true;
    try {
      const now = await this.fingerprint();
      if (this.last !== undefined && now !== this.last) this.emit();
      this.last = now;
    } catch {
      // The store is briefly unavailable: the next look tells.
    } finally {
      this.looking = false;
    }
  }

  private emit(): void {
    for (const l of this.listeners) l();
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    if (this.listeners.size === 1) {
      this.unsubscribe = this.onChange(() => this.emit());
      this.last = undefined;
      void this.look();
      this.timer = setInterval(() => void this.look(), this.pollMs);
      this.timer.unref();
    }
    return () => {
      this.listeners.delete(l);
      if (this.listeners.size === 0) {
        clearInterval(this.timer);
        this.unsubscribe?.();
      }
    };
  }
}

export function mountLive(app: Hono, ctx: ConsoleContext): void {
  const feed = new ChangeFeed(ctx.opts.pipeline.store, ctx.opts.onChange);
  const slots = new StreamSlots();

  app.get(
    '/console/events',
    fetched(ctx, (c, session) => {
      const release = slots.take(
        session.id,
        (mine) => `this console session has ${mine} live views open, the most it may; close a tab`,
      );
      return liveStream(c, ctx.opts.signal, (stream, end) => {
        let pending: NodeJS.Timeout | undefined;
        let lastSent = 0;
        const send = (): void => {
          lastSent = Date.now();
          void stream.writeSSE({ event: 'changed', data: String(lastSent) }).catch(() => {});
        };
        const unsubscribe = feed.subscribe(() => {
          if (pending) return;
          const wait = lastSent + THROTTLE_MS - Date.now();
          if (wait <= 0) send();
          else
            pending = setTimeout(() => {
              pending = undefined;
              send();
            }, wait);
        });
        // A stream is no request: without this a sign-out would leave it open until it recycles.
        const sessionCheck = setInterval(() => {
          ctx.sessions.current(c, { touch: false }).then(
            (still) => {
              if (!still) end();
            },
            () => {},
          );
        }, SESSION_CHECK_MS);
        return () => {
          release();
          unsubscribe();
          clearInterval(sessionCheck);
          clearTimeout(pending);
        };
      });
    }),
  );
}
