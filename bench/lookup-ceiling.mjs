// The fair ceiling for the caller-ID bench (callerid.mjs): a bare Hono handler on
// @hono/node-server, as the relay runs, answering 3CX's number lookup on the relay's path with the
// same JSON the relay gives for a known caller, without a store, a cache or a CRM behind it.
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { lookupAnswer } from './callerid.mjs';

const token = process.env.TOKEN ?? '';
const app = new Hono();
app.get('/healthz', (c) => c.json({ status: 'ok' }));
app.get('/hooks/:source/crm/lookup/:number', (c) => {
  const basic = (c.req.header('authorization') ?? '').replace(/^Basic /, '');
  if (Buffer.from(basic, 'base64').toString().split(':')[1] !== token)
    return c.json({ error: 'unauthorized' }, 401);
  return c.json(lookupAnswer(c.req.param('number')));
});
serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: '127.0.0.1' });
