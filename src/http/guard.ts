// A source's checks at the webhook edge beyond its token, compiled once at start: the sender's
// address against allowIps (before the token is looked at), a rate limit per source (after it:
// requests without the token must not use up the real sender's allowance), and the signature of
// providers that sign, as each signs (after the body is read, before anything is stored).

import type { Context } from 'hono';
import { RelayError } from '../domain/errors.js';
import { Bucket } from '../lib/buckets.js';
import { addressMatcher, clientAddress } from '../lib/ips.js';
import { signatureProblem, zoomChallenge, type SignatureSettings } from '../lib/signature.js';
import { peerAddress } from './auth.js';

/** A source's settings (relay.yaml sources[].allowIps, rateLimit, signature). */
export interface GuardSettings {
  allowIps?: string[];
  rateLimit?: { perSecond: number; burst?: number };
  signature?: SignatureSettings;
}

interface Compiled {
  allowed?: (address: string) => boolean;
  bucket?: Bucket;
  signature?: SignatureSettings;
}

export class SourceGuards {
  private sources = new Map<string, Compiled>();
  private trusted: (address: string) => boolean = () => false;
  /** Each source's rate limit as configured, so that a reload keeps an unchanged bucket. */
  private limits = new Map<string, string>();

  constructor(
    sources: readonly { name: string; guard: GuardSettings }[],
    trustProxy: readonly string[],
    private readonly now: () => number = Date.now,
  ) {
    this.set(sources, trustProxy);
  }

  /**
   * Guard with these settings from now on (relay.yaml reloaded). A source whose rate limit did
   * not change keeps its bucket: a reload is no way around the limit.
   */
  set(
    sources: readonly { name: string; guard: GuardSettings }[],
    trustProxy: readonly string[],
  ): void {
    const next = new Map<string, Compiled>();
    const limits = new Map<string, string>();
    for (const { name, guard } of sources) {
      const { perSecond, burst } = guard.rateLimit ?? {};
      const limit = JSON.stringify(guard.rateLimit ?? null);
      limits.set(name, limit);
      next.set(name, {
        allowed: guard.allowIps && addressMatcher(guard.allowIps),
        bucket:
          this.limits.get(name) === limit
            ? this.sources.get(name)?.bucket
            : perSecond
              ? new Bucket(perSecond, burst ?? Math.max(1, Math.ceil(perSecond)), this.now())
              : undefined,
        signature: guard.signature,
      });
    }
    this.trusted = addressMatcher(trustProxy);
    this.sources = next;
    this.limits = limits;
  }

  /** The sender's address, through server.trustProxy; '' outside a Node server (app.request). */
  sender(c: Context): string {
    const peer = peerAddress(c);
    return peer ? clientAddress(peer, c.req.header('x-forwarded-for'), this.trusted) : '';
  }

  /** 403 unless the sender may post to this source at all. */
  checkAddress(source: string, c: Context): void {
    const allowed = this.sources.get(source)?.allowed;
    if (!allowed) return;
    // Outside a Node server there is no peer: nothing to let in.
    const client = this.sender(c);
    if (!allowed(client))
      throw new RelayError(
        'RELAY_ERR_FORBIDDEN_ADDRESS',
        `${client || 'an unknown address'} is not in sources[${source}].allowIps; add it there, or ` +
          'list the proxy in front of the relay in server.trustProxy',
      );
  }

  /** 429 (with Retry-After) when the source is over its rate. */
  take(source: string): void {
    const wait = this.sources.get(source)?.bucket?.take(this.now());
    if (wait)
      throw new RelayError(
        'RELAY_ERR_RATE_LIMITED',
        `over sources[${source}].rateLimit; retry in ${Math.ceil(wait / 1000)} s`,
        { headers: { 'retry-after': String(Math.max(1, Math.ceil(wait / 1000))) } },
      );
  }

  /** 401 unless a signing source's signature holds for this body. */
  checkSignature(source: string, c: Context, body: Buffer): void {
    const s = this.sources.get(source)?.signature;
    if (!s) return;
    // The path and query as sent (Twilio signs the URL it called, byte for byte).
    const url = c.req.url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '');
    const problem = signatureProblem(
      s,
      { header: (h) => c.req.header(h), body, url: url.startsWith('/') ? url : `/${url}` },
      this.now(),
    );
    if (problem) throw new RelayError('RELAY_ERR_BAD_SIGNATURE', `bad signature: ${problem}`);
  }

  /**
   * The answer to a provider's endpoint check that came signed (Zoom's URL validation), which is
   * answered and never stored; undefined for a webhook like any other.
   */
  challenge(source: string, body: Buffer): Record<string, string> | undefined {
    const s = this.sources.get(source)?.signature;
    return s && zoomChallenge(s, body);
  }
}
