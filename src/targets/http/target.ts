// Generic HTTP target: each change of a routed call is POSTed as a CloudEvents 1.0 JSON event
// (or a body built by a JSONata template), signed with the Standard Webhooks headers when a
// secret is set. At-least-once: the event id (and webhook-id) is the same for the same revision,
// so receivers deduplicate on it.

import { createHmac } from 'node:crypto';
import { CrmClient } from '../kit/client.js';
import { WindowLimiter } from '../kit/limiter.js';
import { httpSandbox } from './sandbox.js';
import { compileExpr, type CompiledExpr } from '../../lib/expr.js';
import type { DeliveryContext, Target, TargetDeps } from '../types.js';
import { withRecordingLinks, type RecordingLink } from '../kit/recordings.js';
import type { HttpConfig } from './spec.js';

/** The Standard Webhooks signing key: the base64 part of "whsec_...", else the secret's bytes. */
export function signingKey(secret: string): Buffer {
  return secret.startsWith('whsec_')
    ? Buffer.from(secret.slice(6), 'base64')
    : Buffer.from(secret, 'utf8');
}

export function sign(secret: string, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', signingKey(secret)).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

export function cloudEvent(job: DeliveryContext['job'], now = new Date()): Record<string, unknown> {
  const c = job.record;
  return {
    specversion: '1.0',
    id: `${c.source}:${c.callId}:${job.rev}`,
    source: `callrelay/${c.source}`,
    type: `callrelay.call.${c.status}`,
    subject: c.callId,
    time: now.toISOString(),
    datacontenttype: 'application/json',
    callrelayrevision: job.rev,
    data: c,
  };
}

class HttpWebhookTarget implements Target {
  readonly type = 'http';
  readonly name: string;
  private readonly http: CrmClient;
  private readonly template: CompiledExpr | undefined;

  constructor(
    private readonly cfg: HttpConfig,
    private readonly recordingLink?: RecordingLink,
  ) {
    this.name = cfg.name;
    this.http = new CrmClient({
      baseUrl: cfg.url,
      headers: { 'user-agent': 'callrelay', ...cfg.headers },
      limiter: new WindowLimiter(cfg.rateLimit.requests, cfg.rateLimit.perSeconds * 1000),
      timeoutMs: cfg.timeoutSec * 1000,
      ...(cfg.dryRun ? { sandbox: httpSandbox() } : {}),
    });
    this.template = cfg.template ? compileExpr(cfg.template, {}) : undefined;
  }

  async deliver(ctx: DeliveryContext): Promise<Record<string, unknown>> {
    const job = { ...ctx.job, record: withRecordingLinks(ctx.job.record, this.recordingLink) };
    const event = cloudEvent(job);
    const payload = this.template
      ? await this.template.evaluate({ call: job.record, event } as Record<string, unknown>, {})
      : event;
    const body = JSON.stringify(payload);
    const headers: Record<string, string> = {
      'content-type': this.template ? 'application/json' : 'application/cloudevents+json',
    };
    if (this.cfg.secret) {
      const ts = Math.floor(Date.now() / 1000);
      const id = String(event.id);
      Object.assign(headers, {
        'webhook-id': id,
        'webhook-timestamp': String(ts),
        'webhook-signature': sign(this.cfg.secret, id, ts, body),
      });
    }
    await this.http.call({
      method: 'POST',
      path: this.cfg.url,
      headers,
      body,
      idempotent: true,
      what: `posting ${String(event.type)} (revision ${ctx.job.rev})`,
    });
    return { lastRevision: ctx.job.rev, lastEventId: event.id };
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

export function create(config: HttpConfig, deps: TargetDeps): Target {
  return new HttpWebhookTarget(config, deps.recordingLink);
}
