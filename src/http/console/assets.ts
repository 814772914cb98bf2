// The console's static files (console/ at the package root: one script, one stylesheet, an icon),
// read once at start and served from memory under a content hash, so that browsers may cache them
// for good and a new release is fetched at once.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Hono } from 'hono';

// src/http/console/ and dist/http/console/ are at the same depth below the package root.
const DIR = new URL('../../../console/', import.meta.url);

const TYPES: Record<string, string> = {
  'console.js': 'text/javascript; charset=utf-8',
  'agent-dial.js': 'text/javascript; charset=utf-8',
  'agent.js': 'text/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
  'icon.svg': 'image/svg+xml',
};

export interface Assets {
  /** The URL of a file, with its content hash (for long caching). */
  url(name: keyof typeof TYPES): string;
}

export function mountAssets(app: Hono): Assets {
  const files = new Map<string, { body: Buffer; type: string; hash: string }>();
  for (const [name, type] of Object.entries(TYPES)) {
    const body = readFileSync(new URL(name, DIR));
    files.set(name, {
      body,
      type,
      hash: createHash('sha256').update(body).digest('hex').slice(0, 12),
    });
  }
  app.get('/console/assets/:name', (c) => {
    const f = files.get(c.req.param('name'));
    if (!f) return c.notFound();
    const current = c.req.query('v') === f.hash;
    return c.body(new Uint8Array(f.body), 200, {
      'content-type': f.type,
      // A hashed URL never changes; an unhashed one is checked again each time.
      'cache-control': current ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
  });
  return { url: (name) => `/console/assets/${name}?v=${files.get(name)!.hash}` };
}
