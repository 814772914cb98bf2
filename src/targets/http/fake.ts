// A fake webhook endpoint on 127.0.0.1 for the generic HTTP target: records what arrives, checks
// the Standard Webhooks signature, and answers as the test scripts it (status, delay, reset).

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LocalServer } from '../../../test/fakes/local-server.js';

export interface Received {
  headers: Record<string, string>;
  body: string;
  json: Record<string, any>;
  signatureOk: boolean | null;
}

export type Script =
  | { status: number; headers?: Record<string, string>; body?: string }
  | { hang: true }
  | { reset: true };

export class WebhookReceiver extends LocalServer {
  readonly received: Received[] = [];
  /** Answers to give, in order; then 200. */
  readonly script: Script[] = [];
  /** Answer every request this late (keeps deliveries in flight). */
  delayMs = 0;

  protected override readonly path = '/events';

  constructor(private readonly secret?: string) {
    super();
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString();
    const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
    this.received.push({
      headers,
      body,
      json: JSON.parse(body) as Record<string, any>,
      signatureOk: this.verify(headers, body),
    });
    const s = this.script.shift() ?? { status: 200 };
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if ('hang' in s) return; // never answers
    if ('reset' in s) {
      req.socket.destroy(); // received, then the connection drops: the sender cannot know
      return;
    }
    res.writeHead(s.status, { 'content-type': 'application/json', ...s.headers });
    res.end(s.body ?? '{"ok":true}');
  }

  private verify(h: Record<string, string>, body: string): boolean | null {
    if (!this.secret) return null;
    const id = h['webhook-id'];
    const ts = h['webhook-timestamp'];
    const sig = h['webhook-signature'];
    if (!id || !ts || !sig) return false;
    const key = this.secret.startsWith('whsec_')
      ? Buffer.from(this.secret.slice(6), 'base64')
      : Buffer.from(this.secret);
    const want = Buffer.from(
      `v1,${createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64')}`,
    );
    const got = Buffer.from(sig.split(' ')[0]!);
    return (
      want.length === got.length &&
      timingSafeEqual(want, got) &&
      Math.abs(Date.now() / 1000 - Number(ts)) < 300
    );
  }

  /** Distinct events by webhook-id (what a deduplicating receiver keeps). */
  distinct(): Received[] {
    const seen = new Set<string>();
    return this.received.filter((r) => {
      const id = String(r.json.id);
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    });
  }

  async waitFor(pred: () => boolean, timeoutMs = 10_000): Promise<void> {
    const t0 = Date.now();
    while (!pred()) {
      if (Date.now() - t0 > timeoutMs)
        throw new Error(`timed out waiting; received ${this.received.length}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
