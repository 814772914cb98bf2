// The HTTP face of the relay, built without listening (tests and `start` both use it): /healthz,
// /readyz, webhook ingest (hooks.ts) and the admin API (admin.ts). Every error leaves through
// onError here as `{ error: { code, message } }` from the catalogue.

import { Hono } from 'hono';
import { RelayError } from '../domain/errors.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import { silentLogger, type Logger } from '../telemetry/log.js';
import { mountAdmin } from './admin.js';
import { mountHooks } from './hooks.js';

export interface AppOptions {
  pipeline: Pipeline;
  bodyLimit: number;
  adminToken: string | undefined;
  log?: Logger;
  /** Set while shutting down: new webhooks get 503 so that the sender retries elsewhere. */
  isDraining?: () => boolean;
  /** Deliveries were made due (a retry): look for work now. */
  onDeliveriesDue?: () => void;
}

export function createApp(opts: AppOptions): Hono {
  const log = opts.log ?? silentLogger;
  const store = opts.pipeline.store;
  const app = new Hono();

  app.onError((err, c) => {
    if (err instanceof RelayError) {
      if (err.headers) for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
      return c.json(err.toJSON(), err.status as 400);
    }
    log.error({ err: err.message, path: c.req.path }, 'unexpected error');
    return c.json(new RelayError('RELAY_ERR_INTERNAL').toJSON(), 500);
  });
  app.notFound(() => {
    throw new RelayError('RELAY_ERR_NOT_FOUND');
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

  mountHooks(app, { ...opts, log });
  mountAdmin(app, opts);
  return app;
}
