// Baseline for `npm run bench`: a bare Hono handler on @hono/node-server that reads the body and
// answers 200 with a small JSON, same route shape as the relay's webhook.
import { serve } from '@hono/node-server';
import { Hono } from 'hono';

const app = new Hono();
// As on the relay, so that the bench waits for both servers the same way.
app.get('/healthz', (c) => c.json({ status: 'ok' }));
app.on(['GET', 'POST'], '/hooks/:source/:token', async (c) => {
  await c.req.json();
  return c.json({ ok: true, id: 1, status: 'mapped' });
});
serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: '127.0.0.1' });
