// What the agents' tests share: signing an agent in through their one-time link, and reading
// their live stream (/agent/events) as a browser's EventSource would.

import { expect } from 'vitest';
import type { DeskView } from '../../src/agents/desk.js';
import { TOKENS } from '../support.js';

/** Signs an agent in through their one-time link, as a browser would; their session cookie. */
export async function signInAgent(base: string, extension: string): Promise<string> {
  const made = await fetch(`${base}/api/agents/${extension}/sign-in-link`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKENS.admin}` },
  });
  expect(made.status).toBe(201);
  const { url } = (await made.json()) as { url: string };
  const res = await fetch(`${base}/agent/welcome`, {
    method: 'POST',
    redirect: 'manual',
    headers: { origin: base, 'sec-fetch-site': 'same-origin' },
    body: new URLSearchParams({ t: new URL(url).searchParams.get('t')! }),
  });
  expect(res.status).toBe(303);
  return res.headers.get('set-cookie')!.split(';')[0]!;
}

/** An open /agent/events stream: every event kept, and a way to wait for one. */
export class AgentStream {
  readonly events: { event: string; data: string; at: number }[] = [];
  ended = false;
  private waiters: (() => void)[] = [];
  private constructor(private readonly abort: AbortController) {}

  static async open(base: string, cookie: string): Promise<AgentStream> {
    const abort = new AbortController();
    const res = await fetch(`${base}/agent/events`, {
      headers: { cookie, accept: 'text/event-stream' },
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    const s = new AgentStream(abort);
    void s.read(res.body!);
    await s.until((e) => e.event === 'ready');
    return s;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buf = '';
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
          }
          if (block.startsWith(':')) continue;
          this.events.push({ event, data: data.join('\n'), at: Date.now() });
          this.wake();
        }
      }
    } catch {
      // Aborted by the test.
    }
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The latest view received. */
  view(): DeskView | undefined {
    const last = this.events.filter((e) => e.event === 'view').at(-1);
    return last && (JSON.parse(last.data) as DeskView);
  }

  /** Waits for an event (or the end, pred of undefined) within `ms`. */
  async until(
    pred: (e: { event: string; data: string; at: number }) => boolean,
    ms = 10_000,
  ): Promise<{ event: string; data: string; at: number }> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.events.find(pred);
      if (found) return found;
      if (this.ended) throw new Error('the stream ended');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no such event within ${ms} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async untilEnded(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error(`the stream did not end within ${ms} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, deadline - Date.now());
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  close(): void {
    this.abort.abort();
  }
}
