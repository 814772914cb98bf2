// What signed links open (server.publicUrl, lib/links.ts). GET <publicUrl>/recordings/<token>.mp3
// streams a call's recording from the PBX (recordings/links.ts fetches it with the source's
// credentials and allowHosts), so a CRM's player can play it without the PBX's address or
// credentials; byte ranges get 206 (players seek), from the PBX when it can, else cut here on the
// fly. Dial links (<publicUrl>/dial) are dial/http.ts's.

import type { Context, Hono } from 'hono';
import { RelayError } from '../domain/errors.js';
import { KeyedBuckets } from '../lib/buckets.js';
import { linkHash, verifyLink } from '../lib/links.js';
import { parseRange, slice } from '../lib/range.js';
import { audioType, toWebStream } from '../lib/streams.js';
import type { Store } from '../store/types.js';

export interface FetchedRecording {
  body: AsyncIterable<Uint8Array>;
  contentType: string;
  status: 200 | 206;
  length: number | undefined;
  contentRange: string | undefined;
  close(): void;
}

export interface LinkOptions {
  /** The link secret now (a reload may change it: server.urlSecret, or admin.token's). */
  secret: () => string;
  /** Requests per link, shared by every listener (server.consolePort makes two). */
  perLink?: KeyedBuckets;
  store: Store;
  /** The recording from the PBX, a Range passed on; throws a RelayError (gone, unavailable). */
  fetch(source: string, url: string, range: string | undefined): Promise<FetchedRecording>;
}

/**
 * Requests a minute one recording link may make (burst: the same). A player asks several times
 * for one playing (Range requests as it seeks); a link leaked from a CRM cannot make the relay
 * fetch from the PBX without end.
 */
export const LINK_REQUESTS_PER_MINUTE = 60;

export function mountLinks(app: Hono, o: LinkOptions): void {
  const perLink = o.perLink ?? new KeyedBuckets(LINK_REQUESTS_PER_MINUTE);
  const serve = async (c: Context): Promise<Response> => {
    // The extension is for players that go by it (HubSpot wants .mp3 or .wav); the token is before.
    const token = c.req.param('file')!.replace(/\.[A-Za-z0-9]{1,5}$/, '');
    const v = verifyLink(o.secret(), token);
    if (!v.ok)
      throw new RelayError(
        v.why === 'expired' ? 'RELAY_ERR_LINK_EXPIRED' : 'RELAY_ERR_LINK_INVALID',
      );
    if (v.claims.k !== 'r') throw new RelayError('RELAY_ERR_LINK_INVALID');
    // Counted once the link is known to be ours: forged tokens cannot fill the buckets.
    const wait = perLink.take(token);
    if (wait)
      throw new RelayError('RELAY_ERR_LINK_RATE_LIMITED', undefined, {
        headers: { 'retry-after': String(Math.max(1, Math.ceil(wait / 1000))) },
      });
    const [row] = await o.store.getCalls(v.claims.c, v.claims.s);
    const url = row?.record.recordings.find((u) => linkHash(u) === v.claims.h);
    if (!url) throw new RelayError('RELAY_ERR_RECORDING_GONE');
    const asked = c.req.header('range');
    const rec = await o.fetch(v.claims.s, url, asked);
    const headers: Record<string, string> = {
      'content-type': audioType(rec.contentType),
      'accept-ranges': 'bytes',
      'cache-control': 'private, max-age=3600',
      'x-content-type-options': 'nosniff',
    };
    let status: 200 | 206 = rec.status;
    let body = rec.body;
    if (rec.status === 206) {
      if (rec.contentRange) headers['content-range'] = rec.contentRange;
      if (rec.length !== undefined) headers['content-length'] = String(rec.length);
    } else {
      const r = parseRange(asked, rec.length);
      if (r === 'unsatisfiable') {
        rec.close();
        throw new RelayError('RELAY_ERR_RANGE_NOT_SATISFIABLE', undefined, {
          headers: { 'content-range': `bytes */${rec.length ?? '*'}` },
        });
      }
      if (r) {
        status = 206;
        body = slice(rec.body, r.start, r.end);
        headers['content-range'] = `bytes ${r.start}-${r.end}/${rec.length!}`;
        headers['content-length'] = String(r.end - r.start + 1);
      } else if (rec.length !== undefined) headers['content-length'] = String(rec.length);
    }
    if (c.req.method === 'HEAD') {
      rec.close();
      return new Response(null, { status, headers });
    }
    return new Response(toWebStream(body), { status, headers });
  };
  app.on(['GET', 'HEAD'], '/recordings/:file', serve);
}
