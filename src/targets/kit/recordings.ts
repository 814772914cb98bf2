// Fetching a call recording from the PBX for a CRM that wants the audio itself (Pipedrive):
// only from hosts the source allows, with the PBX's credentials if configured, streamed, and cut
// off at a size cap, so that a recording URL can never make the relay fetch anything else.

import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { Agent, request } from 'undici';
import {
  isIpLiteral,
  isPrivateAddress,
  parseHostRule,
  urlAllowed,
  type HostRule,
} from '../../lib/hosts.js';
import type { CallRecord } from '../../domain/model.js';
import type { RecordingAccess } from '../types.js';
import { DeliveryError } from './errors.js';
import { recordRequest } from './trace.js';

export interface Recording {
  body: AsyncIterable<Uint8Array>;
  contentType: string;
  filename: string;
  /** Stop reading (a HEAD, a range outside the file): frees the connection to the PBX. */
  close(): void;
  /** 206: the PBX answered the Range asked for (`contentRange` says which part). */
  status: 200 | 206;
  /** Content-Length, when the PBX sent one. */
  length: number | undefined;
  contentRange: string | undefined;
}

/**
 * Whether a URL is one the source allows: scheme, host and port as an allowHosts entry names them,
 * under its path if it names one (lib/hosts.ts). The PBX's credentials go only where this says yes.
 */
export function allowedRecordingUrl(url: string, access: RecordingAccess | undefined): boolean {
  return !!access && !!urlAllowed(url, rulesOf(access));
}

// A few entries, parsed per use: cheaper than keeping a cache of them right.
const rulesOf = (access: RecordingAccess): HostRule[] =>
  access.allowHosts.map(parseHostRule).filter((r): r is HostRule => !!r);

/**
 * The PBX answered a player's Range with 416: the range is outside the recording, which is `size`
 * bytes when the PBX said so (`Content-Range: bytes *\/size`). The player is told the same.
 */
export class RangeNotSatisfiable extends DeliveryError {
  readonly size: number | undefined;
  constructor(size: number | undefined) {
    super('fetching the recording from the PBX: 416 (the range asked for is outside it)', {
      retryable: false,
      status: 416,
    });
    this.size = size;
  }
}

/** The code of a connection refused because its host resolved into the relay's own network. */
const PRIVATE_ADDRESS = 'ERELAY_PRIVATE_ADDRESS';

type Resolve = (
  host: string,
  opts: LookupAllOptions,
  cb: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

/**
 * A `lookup` for the socket that refuses a host resolving to a loopback or private address. It
 * runs when the connection is made, so the address checked is the address used: a name cannot
 * resolve to a public address for a check and to the LAN for the fetch (DNS rebinding).
 */
export function publicOnlyLookup(resolve: Resolve = dnsLookup as Resolve): LookupFunction {
  return (host, options, callback) => {
    resolve(host, { ...options, all: true }, (err, addresses) => {
      const cb = callback as (e: Error | null, a: LookupAddress[] | string, f?: number) => void;
      if (err) return cb(err, []);
      if (!addresses.length)
        return cb(Object.assign(new Error(`${host} does not resolve`), { code: 'ENOTFOUND' }), []);
      const inside = addresses.find((a) => isPrivateAddress(a.address));
      if (inside) {
        const e = new Error(
          `${host} resolves to ${inside.address}, a private or loopback address; name the ` +
            'address in recordings.allowHosts or set recordings.allowPrivateAddresses',
        );
        return cb(Object.assign(e, { code: PRIVATE_ADDRESS }), []);
      }
      if (options.all) cb(null, addresses);
      else cb(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

// Connections for hosts named by DNS, where the address must be public (made once, kept).
let publicOnly: Agent | undefined;
const publicOnlyAgent = (): Agent =>
  (publicOnly ??= new Agent({ connect: { lookup: publicOnlyLookup() } }));

export async function fetchRecording(
  url: string,
  access: RecordingAccess,
  timeoutMs = 30_000,
  /** A Range header to pass on (a player seeking); the PBX may ignore it and answer 200. */
  range?: string,
): Promise<Recording> {
  const rule = urlAllowed(url, rulesOf(access));
  if (!rule)
    throw new DeliveryError(
      `fetching the recording: ${URL.canParse(url) ? new URL(url).origin + new URL(url).pathname : 'a malformed URL'} is not in recordings.allowHosts (scheme, host and port must match an entry, and the path be under its path if it names one)`,
      { retryable: false },
    );
  // Fetched as checked: the parsed URL, dot segments resolved, not the webhook's spelling of it.
  const target = new URL(url).href;
  // An IP entry is its own permission; a DNS name must resolve to a public address.
  const dispatcher =
    access.allowPrivateAddresses || isIpLiteral(rule.host) ? undefined : publicOnlyAgent();
  const headers: Record<string, string> = { 'user-agent': 'callrelay' };
  if (range) headers.range = range;
  if (access.bearer) headers.authorization = `Bearer ${access.bearer}`;
  else if (access.basic)
    headers.authorization = `Basic ${Buffer.from(`${access.basic.user}:${access.basic.password}`).toString('base64')}`;
  const max = access.maxMB * 1024 * 1024;
  const started = { at: new Date().toISOString(), t0: performance.now() };
  // The PBX request shows among the delivery's attempts (the status line, not the audio).
  const trace = (status: number | null, error: string | null): void =>
    recordRequest({
      operation: 'fetching the recording from the PBX',
      method: 'GET',
      path: new URL(url).pathname,
      startedAt: started.at,
      durationMs: Math.round(performance.now() - started.t0),
      waitedMs: 0,
      status,
      requestId: null,
      error,
    });
  let res;
  try {
    // undici follows no redirects by default: a PBX cannot bounce the fetch to another host.
    res = await request(target, {
      method: 'GET',
      headers,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      dispatcher,
    });
  } catch (err) {
    const inside = (err as { code?: string }).code === PRIVATE_ADDRESS;
    const e = new DeliveryError(
      inside
        ? `fetching the recording: ${(err as Error).message}`
        : `fetching the recording from the PBX: ${(err as { code?: string }).code ?? (err as Error).message}`,
      { retryable: !inside, cause: err },
    );
    trace(null, e.message);
    throw e;
  }
  if (range && res.statusCode === 416) {
    await res.body.dump();
    const size = /^bytes \*\/(\d+)$/i.exec(String(res.headers['content-range'] ?? ''))?.[1];
    const e = new RangeNotSatisfiable(size === undefined ? undefined : Number(size));
    trace(416, e.message);
    throw e;
  }
  if (res.statusCode !== 200 && !(range && res.statusCode === 206)) {
    await res.body.dump();
    const e = new DeliveryError(`fetching the recording from the PBX: ${res.statusCode}`, {
      retryable: res.statusCode >= 500 || res.statusCode === 404 || res.statusCode === 429,
      status: res.statusCode,
    });
    trace(res.statusCode, e.message);
    throw e;
  }
  trace(res.statusCode, null);
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) {
    await res.body.dump();
    throw new DeliveryError(`the recording is ${declared} bytes, over recordings.maxMB`, {
      retryable: false,
    });
  }
  const source = res.body;
  async function* capped(): AsyncIterable<Uint8Array> {
    let n = 0;
    for await (const chunk of source) {
      n += (chunk as Uint8Array).byteLength;
      if (n > max)
        throw new DeliveryError('the recording is over recordings.maxMB', { retryable: false });
      yield chunk as Uint8Array;
    }
  }
  const type = String(res.headers['content-type'] ?? 'audio/mpeg')
    .split(';')[0]!
    .trim();
  return {
    body: capped(),
    contentType: /^[\w.+-]+\/[\w.+-]+$/.test(type) ? type : 'application/octet-stream',
    filename: recordingFileName(url),
    // Destroying an unread undici body emits an AbortError; with no listener that is an uncaught
    // exception, which would take the relay down on a HEAD or a refused Range.
    close: () => res.body.on('error', () => {}).destroy(),
    status: res.statusCode === 206 ? 206 : 200,
    length: Number.isFinite(declared) ? declared : undefined,
    contentRange:
      res.statusCode === 206 ? String(res.headers['content-range'] ?? '') || undefined : undefined,
  };
}

/**
 * The file name a recording is uploaded under: the URL's last segment, decoded where it decodes,
 * reduced to letters, digits and `.-_ ` (it goes into a multipart header, where a CR/LF or quote
 * from a webhook would add header lines), at most 100 characters.
 */
export function recordingFileName(url: string): string {
  const last = URL.canParse(url) ? (new URL(url).pathname.split('/').pop() ?? '') : '';
  let decoded = last;
  try {
    decoded = decodeURIComponent(last);
  } catch {
    // A malformed %-sequence stays as written; the filter below makes it harmless.
  }
  const safe = decoded
    .replace(/[^\p{L}\p{N}._ -]+/gu, '_')
    .replace(/^[.\s_]+/, '')
    .slice(0, 100)
    .trim();
  return safe || 'recording.mp3';
}

/** How a target turns a PBX recording URL into the relay's signed link (TargetDeps). */
export type RecordingLink = (source: string, callId: string, url: string) => string;

/**
 * The call as a CRM should see it: with the relay's links in place of the PBX's recording URLs
 * when server.publicUrl is set, so that no CRM ever stores the PBX's address. Fetching (uploads)
 * keeps using the record itself.
 */
export function withRecordingLinks(c: CallRecord, link: RecordingLink | undefined): CallRecord {
  if (!link || !c.recordings.length) return c;
  return { ...c, recordings: c.recordings.map((u) => link(c.source, c.callId, u)) };
}
