// The relay's HTTP listeners as relay.yaml's server section sets them: the webhook port and, when
// server.consolePort is set, the console's own; HTTPS with a certificate watched for renewals;
// request deadlines; connection limits (a reload changes them); and a close that lets requests
// under way finish. What is served on them is http/'s.

import type { Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { RelayConfig } from '../config/load.js';
import {
  limitConnections,
  reserveCount,
  type ConnectionLimiter,
  type ConnectionLimits,
} from '../http/connections.js';
import { reloadOnChange } from '../http/tls.js';
import { readCertificate } from '../lib/certificates.js';
import { addressMatcher } from '../lib/ips.js';
import type { Logger } from '../telemetry/log.js';
import type { RelayMetrics } from '../telemetry/metrics.js';

type Fetch = Parameters<typeof serve>[0]['fetch'];

/** A listener's connection limits as relay.yaml sets them (the console's port keeps no reserve). */
const connectionLimits = (cfg: RelayConfig, consoleListener: boolean): ConnectionLimits => ({
  maxConnections: cfg.server.maxConnections,
  perAddress: cfg.server.maxConnectionsPerAddress,
  trusted: addressMatcher(cfg.server.trustProxy),
  bodyIdleMs: cfg.server.bodyIdleSec * 1000,
  bodyMinRate: cfg.server.bodyMinRate,
  reserve: consoleListener ? 0 : reserveCount(cfg.server.webhookReserve, cfg.server.maxConnections),
});

export interface ListenerOptions {
  metrics: Pick<RelayMetrics, 'connectionsRefused'>;
  log: Logger;
  /** How often server.tls's files are looked at (default 2 s). */
  tlsCheckMs?: number | undefined;
}

export class Listeners {
  private readonly certificate;
  private readonly limiters: { limiter: ConnectionLimiter; console: boolean }[] = [];
  private readonly servers: ServerType[] = [];
  private watching: (() => void)[] = [];

  constructor(
    private readonly cfg: RelayConfig,
    private readonly o: ListenerOptions,
  ) {
    this.certificate = cfg.server.tls && readCertificate(cfg.server.tls);
  }

  /** The webhook port's server. */
  get server(): ServerType {
    return this.servers[0]!;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The console's own port, when server.consolePort is set. */
  get consolePort(): number | undefined {
    const s = this.servers[1];
    return s && (s.address() as AddressInfo).port;
  }

  /**
   * Listens on server.port, then on server.consolePort if set (`console` makes its app); if the
   * second fails, the first is closed again.
   */
  async open(webhooks: Fetch, console: () => Fetch): Promise<void> {
    const { consolePort } = this.cfg.server;
    const server = await this.listen(this.cfg.server.port, webhooks);
    this.servers.push(server);
    // The console and the admin API on a port of their own: connections there, however many and
    // however slow, are not the ones webhooks need.
    if (consolePort !== undefined)
      this.servers.push(
        await this.listen(consolePort, console(), true).catch(async (err: unknown) => {
          await new Promise((r) => server.close(r));
          throw err;
        }),
      );
  }

  /** Puts renewed server.tls files in use on every listener (from now until close). */
  watchCertificate(): void {
    const files = this.cfg.server.tls;
    const { certificate } = this;
    this.watching =
      files && certificate
        ? this.servers.map((l) =>
            reloadOnChange(l as HttpsServer, files, certificate, this.o.log, this.o.tlsCheckMs),
          )
        : [];
  }

  /** A reload's limits: a proxy newly in trustProxy is exempt from the next connection on. */
  setLimits(next: RelayConfig): void {
    for (const l of this.limiters) l.limiter.set(connectionLimits(next, l.console));
  }

  stopWatching(): void {
    this.watching.forEach((stop) => stop());
  }

  /** Stops listening; requests under way finish first. */
  async close(): Promise<void> {
    // server.close() closes the connections idle at that moment; one that finishes its request
    // later (a console stream just ended, a webhook answered) would otherwise stay open until
    // keep-alive runs out. Requests under way are never cut.
    const idle = setInterval(() => {
      for (const l of this.servers) (l as Server).closeIdleConnections();
    }, 25);
    await Promise.all(this.servers.map((l) => new Promise<void>((r) => l.close(() => r()))));
    clearInterval(idle);
  }

  private listen(port: number, fetch: Fetch, isConsole = false): Promise<ServerType> {
    const { cfg, certificate } = this;
    return new Promise<ServerType>((resolve, reject) => {
      const requestTimeout = cfg.server.requestTimeoutSec * 1000;
      const s = serve(
        {
          fetch,
          port,
          hostname: cfg.server.host,
          ...(certificate ? { createServer: createHttpsServer } : {}),
          // Each request has a deadline (checked every second, not Node's default 30 s), so slow
          // or idle clients cannot pile up.
          serverOptions: {
            requestTimeout,
            headersTimeout: Math.min(requestTimeout, 10_000),
            connectionsCheckingInterval: Math.min(1000, requestTimeout),
            ...(certificate ? { cert: certificate.cert, key: certificate.key } : {}),
          },
        },
        () => resolve(s),
      );
      s.once('error', reject);
      // Connections have a ceiling (beyond it a newcomer takes an idle one's place, or is
      // refused), a share per client and a share kept for webhooks; on the console's own port,
      // nothing to keep.
      this.limiters.push({
        limiter: limitConnections(s as Server, connectionLimits(cfg, isConsole), (reason) =>
          this.o.metrics.connectionsRefused.inc({ reason }),
        ),
        console: isConsole,
      });
    });
  }
}
