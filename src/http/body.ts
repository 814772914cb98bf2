// Reading a webhook's raw body within server.bodyLimit: a declared Content-Length over the limit
// fails before reading, a body that grows over it fails as soon as it does.

import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import { RelayError } from '../domain/errors.js';

export async function readBody(c: Context, limit: number): Promise<Buffer> {
  const declared = Number(c.req.header('content-length'));
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  // On @hono/node-server, read the Node stream itself: touching c.req.raw.body would build a web
  // Request, AbortSignal and ReadableStream per webhook, for nothing.
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (incoming) return readNodeBody(incoming, limit);
  const body = c.req.raw.body;
  if (!body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size);
}

function readNodeBody(incoming: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        // Stop reading but keep the socket, so that the 413 can still be sent.
        cleanup();
        incoming.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    // The sender went away or was cut for going quiet (http/connections.ts): an answer nobody
    // reads, not an unexpected error to log.
    const onError = (): void => {
      cleanup();
      reject(new RelayError('RELAY_ERR_BODY_INCOMPLETE'));
    };
    const cleanup = (): void => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
      incoming.off('close', onError);
    };
    incoming.on('data', onData);
    incoming.on('end', onEnd);
    incoming.on('error', onError);
    incoming.on('close', onError);
  });
}

const tooLarge = (limit: number): RelayError =>
  new RelayError(
    'RELAY_ERR_BODY_TOO_LARGE',
    `request body over the limit of ${limit} bytes (server.bodyLimit)`,
  );
