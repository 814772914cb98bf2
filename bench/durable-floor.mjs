// The durable floor for `npm run bench`: bare-server.mjs's handler that also stores each raw body
// and its headers durably before it answers, the least any server that promises "stored before
// 2xx" must do. SQLite in WAL mode with synchronous=FULL, one table, one thread (the HTTP loop),
// and a 1 ms group commit: the requests that arrive within 1 ms of the first go in one
// transaction, and all of them are answered after its COMMIT. PORT and DB (the file) from the
// environment.
import { serve } from '@hono/node-server';
import Database from 'better-sqlite3';
import { Hono } from 'hono';

const db = new Database(/** @type {string} */ (process.env.DB));
db.pragma('journal_mode = WAL');
db.pragma('synchronous = FULL');
db.exec(
  'CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, received_at TEXT NOT NULL, ' +
    'headers TEXT NOT NULL, body BLOB NOT NULL)',
);
const insert = db.prepare('INSERT INTO requests (received_at, headers, body) VALUES (?, ?, ?)');
const commit = db.transaction((batch) => {
  for (const r of batch) r.id = Number(insert.run(r.receivedAt, r.headers, r.body).lastInsertRowid);
});

/**
 * @typedef {{ receivedAt: string, headers: string, body: Buffer, id: number }} Row
 * @typedef {Row & { done: () => void, fail: (err: unknown) => void }} Waiting
 */
/** @type {Waiting[]} */
let batch = [];
let timer;
function flush() {
  const mine = batch;
  batch = [];
  timer = undefined;
  try {
    commit(mine);
  } catch (err) {
    for (const r of mine) r.fail(err);
    return;
  }
  for (const r of mine) r.done();
}

/** Resolves with the request's row id once it is committed. */
function store(receivedAt, headers, body) {
  return new Promise((resolve, reject) => {
    const r = { receivedAt, headers, body, id: 0, done: () => resolve(r.id), fail: reject };
    batch.push(r);
    timer ??= setTimeout(flush, 1);
  });
}

const app = new Hono();
// As on the relay, so that the bench waits for every server the same way.
app.get('/healthz', (c) => c.json({ status: 'ok' }));
app.on(['GET', 'POST'], '/hooks/:source/:token', async (c) => {
  const body = Buffer.from(await c.req.arrayBuffer());
  JSON.parse(body.toString('utf8')); // as the bare handler does
  const id = await store(new Date().toISOString(), JSON.stringify(c.req.header()), body);
  return c.json({ ok: true, id, status: 'mapped' });
});
serve({ fetch: app.fetch, port: Number(process.env.PORT), hostname: '127.0.0.1' });
