// Who may use the admin surfaces: the console sign-in, /api and /metrics. It holds the tokens as
// relay.yaml last set them (a reload replaces them at once) and one throttle for wrong ones, per
// client address and shared by all three surfaces, so that guessing on one is no way around the
// others. A right token is compared first and always gets in: the limit only ever slows wrong ones,
// so that nobody can lock the admin out by guessing.

import type { Context } from 'hono';
import { RelayError } from '../domain/errors.js';
import { addressMatcher, clientAddress, clientKey } from '../lib/ips.js';
import type { RelayMetrics } from '../telemetry/metrics.js';
import { peerAddress, tokenMatches } from './auth.js';

export type Surface = 'console' | 'api' | 'metrics';

export interface GateSettings {
  /** admin.token: /api and the console. Unset: both are off. */
  adminToken: string | undefined;
  /** metrics.token: /metrics. Unset: /metrics is open. */
  metricsToken?: string | undefined;
  /** server.trustProxy: whose X-Forwarded-For names the client. */
  trustProxy: readonly string[];
  /** A console session ends after this long unused (admin.sessionIdleMin). */
  sessionIdleMs: number;
  /** ... and this long after sign-in in any case (admin.sessionMaxHours). */
  sessionMaxMs: number;
}

export const SESSION_DEFAULTS = { sessionIdleMs: 60 * 60_000, sessionMaxMs: 12 * 3600_000 };

export interface ThrottleOptions {
  /** Each wrong token costs its sender this long before the answer. */
  delayMs?: number;
  /** Wrong tokens a client may send in `windowMs` before it gets 429 until the window passes. */
  perClient?: number;
  windowMs?: number;
  /** Clients remembered at most (the longest quiet one is forgotten first). */
  maxClients?: number;
  metrics?: RelayMetrics;
  now?: () => number;
}

export class AuthGate {
  private current: GateSettings;
  private trusted: (address: string) => boolean;
  /** Per client, when its recent wrong tokens came (oldest first); map order: quietest first. */
  private readonly failures = new Map<string, number[]>();
  readonly delayMs: number;
  private readonly perClient: number;
  private readonly windowMs: number;
  private readonly maxClients: number;
  private readonly metrics: RelayMetrics | undefined;
  readonly now: () => number;

  constructor(settings: GateSettings, opts: ThrottleOptions = {}) {
    this.current = settings;
    this.trusted = addressMatcher(settings.trustProxy);
    this.delayMs = opts.delayMs ?? 500;
    this.perClient = opts.perClient ?? 10;
    this.windowMs = opts.windowMs ?? 10 * 60_000;
    this.maxClients = opts.maxClients ?? 10_000;
    this.metrics = opts.metrics;
    this.now = opts.now ?? Date.now;
  }

  /** relay.yaml reloaded: new tokens and proxies apply to the next request. */
  set(settings: GateSettings): void {
    this.current = settings;
    this.trusted = addressMatcher(settings.trustProxy);
  }

  get settings(): Readonly<GateSettings> {
    return this.current;
  }

  /**
   * The client's address as the webhook allowlist sees it: the socket's peer, or what trusted
   * proxies report; a header from anyone else is ignored. No peer (app.request in tests): 'local'.
   */
  client(c: Context): string {
    const peer = peerAddress(c);
    return peer ? clientAddress(peer, c.req.header('x-forwarded-for'), this.trusted) : 'local';
  }

  /**
   * Whether `given` is `expected`. A wrong one is counted against the client and answered late;
   * past the limit it throws TOO_MANY_ATTEMPTS (429, Retry-After) instead.
   */
  async check(
    c: Context,
    surface: Surface,
    given: string | undefined,
    expected: string,
  ): Promise<boolean> {
    if (tokenMatches(given, expected)) return true;
    this.metrics?.authFailures.inc({ surface });
    // An IPv6 client by its /64: one host has the whole block to send from.
    const client = clientKey(this.client(c));
    const now = this.now();
    const recent = (this.failures.get(client) ?? []).filter((t) => t > now - this.windowMs);
    if (recent.length >= this.perClient) {
      this.metrics?.authThrottled.inc({ surface });
      const wait = Math.max(1, Math.ceil((recent[0]! + this.windowMs - now) / 1000));
      throw new RelayError(
        'RELAY_ERR_TOO_MANY_ATTEMPTS',
        `too many wrong tokens from ${client}; try again in ${Math.ceil(wait / 60)} min`,
        { headers: { 'retry-after': String(wait) } },
      );
    }
    // Re-inserted, so that the map's order is the quietest client first.
    this.failures.delete(client);
    this.failures.set(client, [...recent, now]);
    if (this.failures.size > this.maxClients)
      this.failures.delete(this.failures.keys().next().value!);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    return false;
  }
}
