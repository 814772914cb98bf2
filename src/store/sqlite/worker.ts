// The SQLite connection's own thread. It owns the file so that fsyncs and folding never block the
// HTTP event loop, and it schedules by priority: committing received requests (a sender is waiting
// for its 2xx) always goes before folding or reads.

import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { SqliteStore } from './index.js';
import type { Routing } from '../../domain/routing.js';
import type { CredentialStore, NewInbox, Store } from '../types.js';

export interface WorkerInit {
  path: string;
  busyTimeoutMs?: number;
  maxSizeMB?: number;
  routing?: Routing;
  maxEventsPerCall?: number;
}

export interface Call {
  id: number;
  /**
   * A Store method, or insertPacked: insertInbox with [JSON of the batch, all bodies in one
   * buffer], or one of store.credentials' methods.
   */
  method: keyof Store | 'insertPacked' | `credentials.${keyof CredentialStore}`;
  args: unknown[];
}

type PackedItem = Omit<NewInbox, 'req'> & { req: Omit<NewInbox['req'], 'body'> & { body: number } };

function unpack(json: string, bodies: ArrayBuffer): NewInbox[] {
  let at = 0;
  return (JSON.parse(json) as PackedItem[]).map(({ req, result, provider }) => {
    const body = Buffer.from(bodies, at, req.body);
    at += req.body;
    return { req: { ...req, body }, result, provider };
  });
}

export type Reply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; message: string; code?: string };

const port = parentPort!;
const init = workerData as WorkerInit;
let store: SqliteStore;
try {
  store = new SqliteStore(init.path, {
    busyTimeoutMs: init.busyTimeoutMs,
    maxSizeMB: init.maxSizeMB,
    routing: init.routing,
    maxEventsPerCall: init.maxEventsPerCall,
  });
  port.postMessage({ id: 0, ok: true, value: 'ready' } satisfies Reply);
} catch (err) {
  port.postMessage({
    id: 0,
    ok: false,
    message: (err as Error).message,
    code: (err as { code?: string }).code,
  } satisfies Reply);
  // Let the message go out before the thread ends (process.exit here could drop it).
  port.close();
  throw err;
}

const urgent: Call[] = [];
const rest: Call[] = [];
let pumping = false;

port.on('message', (c: Call) => {
  (c.method === 'insertPacked' || c.method === 'insertInbox' ? urgent : rest).push(c);
  if (!pumping) {
    pumping = true;
    setImmediate(() => void pump());
  }
});

/** stats() answers for this thread's heap too, which only this thread can read. */
function withThread(method: Call['method'], value: unknown): unknown {
  if (method !== 'stats') return value;
  const h = getHeapStatistics();
  return {
    ...(value as object),
    thread: { heapUsedBytes: h.used_heap_size, heapTotalBytes: h.total_heap_size },
  };
}

async function run(c: Call): Promise<void> {
  try {
    const [part, method] = c.method.startsWith('credentials.')
      ? [store.credentials, c.method.slice('credentials.'.length)]
      : [store, c.method];
    const value =
      c.method === 'insertPacked'
        ? await store.insertInbox(unpack(c.args[0] as string, c.args[1] as ArrayBuffer))
        : await (part[method as keyof typeof part] as (...a: unknown[]) => Promise<unknown>).apply(
            part,
            c.args,
          );
    port.postMessage({ id: c.id, ok: true, value: withThread(c.method, value) } satisfies Reply);
  } catch (err) {
    port.postMessage({
      id: c.id,
      ok: false,
      message: (err as Error).message,
      code: (err as { code?: string }).code,
    } satisfies Reply);
  }
}

/** One call at a time, inserts first; yields between calls so that new inserts can jump ahead. */
async function pump(): Promise<void> {
  const next = urgent.shift() ?? rest.shift();
  if (next) await run(next);
  if (urgent.length || rest.length) setImmediate(() => void pump());
  else pumping = false;
}
