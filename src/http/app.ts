// The HTTP face of the relay, built without listening (tests and `start` both use it): /healthz,
// /readyz, /metrics, webhook ingest (hooks.ts), the admin API (admin.ts) and the console
// (console/). Every error leaves through onError here as `{ error: { code, message } }` from the
// catalogue.

import { Hono } from 'hono';
import { RelayError } from '../domain/errors.js';
import { Redactor } from '../lib/redact.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import { silentLogger, type Logger } from '../telemetry/log.js';
import type { RelayMetrics } from '../telemetry/metrics.js';
import { mountAdmin, type AdminOptions } from './admin.js';
import { bearer, loggablePath } from './auth.js';
import { mountConsole } from './console/index.js';
import type { ConsoleContext } from './console/kit.js';
import type { ConsoleOptions, ConsoleTarget } from './console/types.js';
import { AuthGate, SESSION_DEFAULTS } from './gate.js';
import type { SourceGuards } from './guard.js';
import { mountHooks } from './hooks.js';
import type { RefusalRecorder } from './refusals.js';
import { mountLinks, type LinkOptions } from './links.js';

export interface AppOptions {
  pipeline: Pipeline;
  bodyLimit: number;
  adminToken: string | undefined;
  log?: Logger;
  /** Set while shutting down: new webhooks get 503 so that the sender retries elsewhere. */
  isDraining?: () => boolean;
  /** Deliveries were made due (a retry): look for work now. */
  onDeliveriesDue?: () => void;
  /** Scrubs configured secrets from everything the admin API answers. */
  redact?: Redactor;
  /** The targets, for CRM links in the admin API. */
  targets?: ConsoleTarget[];
  /** Serve /metrics (behind `token` if set). */
  metrics?: { registry: RelayMetrics; token?: string };
  /** Serve the operator console. */
  console?: ConsoleOptions;
  /** Sources' allowIps, rate limits and signatures. */
  guards?: SourceGuards;
  /** Keeps refused webhooks for Setup and `status` (runtime.ts flushes it at shutdown). */
  refusals?: RefusalRecorder;
  /** Click-to-call for POST /api/dial (sources with pbx: configured). */
  dial?: AdminOptions['dial'];
  /** What 3CX's CRM lookup answers (GET /api/sources/:name/crm/lookup). */
  crmLookup?: AdminOptions['crmLookup'];
  /** Serve recordings behind signed links (server.publicUrl). */
  recordings?: Omit<LinkOptions, 'store'>;
  /**
   * The admin surfaces' tokens and throttle (runtime.ts makes it, to reload it). Unset: one made
   * here from adminToken, metrics.token and trustProxy.
   */
  auth?: AuthGate;
  /** server.trustProxy, for the default `auth`. */
  trustProxy?: readonly string[];
  /** The relay serves TLS itself: every answer tells browsers to keep to HTTPS (HSTS). */
  hsts?: boolean;
  /**
   * With server.consolePort the relay listens twice: `webhooks` (server.port) leaves out the
   * console and the admin API, `console` leaves out webhooks. Default: everything.
   */
  serves?: 'all' | 'webhooks' | 'console';
  /**
   * Routes under /hooks/<source>/... of capabilities outside http/ (3CX's CRM lookups), mounted
   * before the webhooks' catch-all for /hooks/*, which would answer them 404.
   */
  beforeHooks?: (app: Hono) => void;
  /** Pages of capabilities outside http/ that share the console's sessions (the agents' pages). */
  withConsole?: (app: Hono, console: ConsoleContext) => void;
}

export function createApp(opts: AppOptions): Hono {
  const log = opts.log ?? silentLogger;
  const store = opts.pipeline.store;
  const redact = opts.redact ?? new Redactor([]);
  const app = new Hono();
  // One throttle for wrong tokens on every admin surface: guessing on one counts on all.
  const gate =
    opts.auth ??
    new AuthGate(
      {
        adminToken: opts.adminToken,
        metricsToken: opts.metrics?.token,
        trustProxy: opts.trustProxy ?? [],
        ...SESSION_DEFAULTS,
      },
      { metrics: opts.metrics?.registry },
    );

  app.onError((err, c) => {
    if (err instanceof RelayError) {
      if (err.headers) for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
      // Messages may quote what a client sent (a source name from the URL): never a secret.
      return c.json(redact.value(err.toJSON()), err.status as 400);
    }
    log.error(
      { err: redact.text(err.message), path: redact.text(loggablePath(c.req.path)) },
      'unexpected error',
    );
    return c.json(new RelayError('RELAY_ERR_INTERNAL').toJSON(), 500);
  });
  app.notFound(() => {
    throw new RelayError('RELAY_ERR_NOT_FOUND');
  });

  if (opts.hsts)
    app.use('*', async (c, next) => {
      await next();
      try {
        c.res.headers.set('strict-transport-security', 'max-age=31536000');
      } catch {
        // A response with immutable headers (passed through as it came): copied with the header.
        c.res = new Response(c.res.body, c.res);
        c.res.headers.set('strict-transport-security', 'max-age=31536000');
      }
    });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    if (opts.isDraining?.()) throw new RelayError('RELAY_ERR_STORE_UNAVAILABLE', 'shutting down');
    try {
      await store.checkWritable();
    } catch (err) {
      throw new RelayError(
        'RELAY_ERR_STORE_UNAVAILABLE',
        `the store is not writable: ${(err as Error).message}`,
      );
    }
    return c.json({ status: 'ready', store: store.backend });
  });

  app.get('/metrics', async (c) => {
    const m = opts.metrics;
    if (!m) throw new RelayError('RELAY_ERR_METRICS_DISABLED');
    const token = gate.settings.metricsToken;
    if (token && !(await gate.check(c, 'metrics', bearer(c), token)))
      throw new RelayError(
        'RELAY_ERR_UNAUTHORIZED',
        '/metrics needs Authorization: Bearer <metrics.token>',
      );
    try {
      m.registry.observeStore(
        await store.stats(),
        opts.targets?.map((t) => t.name),
      );
      m.registry.storeUp.set(1);
    } catch (err) {
      // The process metrics still tell something; the store's own gauge says it is down.
      m.registry.storeUp.set(0);
      log.warn({ err: (err as Error).message }, 'reading store gauges for /metrics failed');
    }
    const { body, contentType } = await m.registry.scrape();
    return c.body(body, 200, { 'content-type': contentType });
  });

  const serves = opts.serves ?? 'all';
  if (serves === 'console')
    app.all('/hooks/*', () => {
      throw new RelayError('RELAY_ERR_NOT_FOUND', 'webhooks are received on server.port');
    });
  else {
    opts.beforeHooks?.(app);
    mountHooks(app, { ...opts, log, redact, metrics: opts.metrics?.registry });
  }
  if (serves === 'webhooks') {
    const elsewhere = (): never => {
      throw new RelayError(
        'RELAY_ERR_NOT_FOUND',
        'the console and the admin API are on server.consolePort',
      );
    };
    for (const path of ['/', '/console', '/console/*', '/agent', '/agent/*', '/api/*'])
      app.all(path, elsewhere);
  } else {
    mountAdmin(app, {
      ...opts,
      gate,
      redact,
      targets: opts.targets ?? [],
    });
    if (opts.console) {
      const console = mountConsole(app, opts.console, gate);
      opts.withConsole?.(app, console);
    }
  }
  if (opts.recordings) mountLinks(app, { ...opts.recordings, store });
  return app;
}
