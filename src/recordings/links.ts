// Recording links, the relay's side: the signed link a target writes into the CRM
// (recordingLinker) and the recording behind one (RecordingLinks), for the link route
// (http/links.ts), the console's player and its "why it will not play" hint. The archived copy
// when there is one, else the PBX, asked with the source's credentials and allowHosts.
// A folder of its own rather than beside targets/kit/recordings.ts: serving reads the archive
// (pipeline/) and answers with the relay's errors and http/'s stream shape, none of which
// targets/ may reach; the kit keeps what targets share (fetching from the PBX, allowHosts).

import { createReadStream } from 'node:fs';
import type { RelayConfig } from '../config/load.js';
import { RelayError } from '../domain/errors.js';
import type { FetchedRecording, LinkOptions } from '../http/links.js';
import { LINK_REQUESTS_PER_MINUTE } from '../http/links.js';
import { KeyedBuckets } from '../lib/buckets.js';
import { linkHash, recordingLinkDays, signLink } from '../lib/links.js';
import { parseRange } from '../lib/range.js';
import { archived } from '../pipeline/archive.js';
import type { DeliveryError } from '../targets/kit/errors.js';
import {
  allowedRecordingUrl,
  fetchRecording,
  RangeNotSatisfiable,
} from '../targets/kit/recordings.js';
import type { RecordingAccess, TargetDeps } from '../targets/types.js';

/**
 * The relay's own link to a call's recording (http/links.ts serves it): signed, with the
 * recording's file extension, since players such as HubSpot's go by it.
 */
export function recordingLinker(
  links: NonNullable<RelayConfig['links']>,
  /** Whether the source archives its recordings (its links then work longer by default). */
  archived: (source: string) => boolean = () => false,
): (source: string, callId: string, url: string) => string {
  return (source, callId, url) => {
    const ext = /\.(mp3|wav|ogg|m4a)(?:\?|$)/i.exec(url)?.[1]?.toLowerCase() ?? 'mp3';
    const days = recordingLinkDays(links.ttlDays, archived(source));
    const token = signLink(links.secret, {
      k: 'r',
      s: source,
      c: callId,
      h: linkHash(url),
      e: Math.floor(Date.now() / 1000 + days * 86400),
    });
    return `${links.publicUrl}/recordings/${token}.${ext}`;
  };
}

/** What targets are given of the sources' recordings: how to fetch them, and links to them. */
export function targetRecordings(
  cfg: Pick<RelayConfig, 'sources' | 'links'>,
): Pick<TargetDeps, 'recordings' | 'recordingLink'> {
  const recordings = Object.fromEntries(cfg.sources.map((s) => [s.name, s.recordings]));
  const archives = new Set(cfg.sources.filter((s) => s.recordings.archive).map((s) => s.name));
  const recordingLink = cfg.links && recordingLinker(cfg.links, (s) => archives.has(s));
  return { recordings, ...(recordingLink ? { recordingLink } : {}) };
}

/** How the archive (pipeline/archive.ts) fetches a recording: from the PBX, as sources allow. */
export const archiveFetch =
  (sources: RelayConfig['sources']) =>
  async (source: string, url: string): Promise<AsyncIterable<Uint8Array>> => {
    const access = sources.find((s) => s.name === source)?.recordings;
    if (!access) throw new Error(`no source "${source}"`);
    return (await fetchRecording(url, access)).body;
  };

/** A recording from the PBX for a signed link; what went wrong as the relay's error. */
async function recordingForLink(
  access: RecordingAccess | undefined,
  source: string,
  url: string,
  range: string | undefined,
  archiveDir: string | undefined,
): Promise<FetchedRecording> {
  const kept = archiveDir ? await archived(archiveDir, source, url) : undefined;
  if (kept) return fromFile(kept.path, kept.size, range);
  if (!access)
    throw new RelayError('RELAY_ERR_RECORDING_GONE', 'the source is no longer in relay.yaml');
  try {
    return await fetchRecording(url, access, 30_000, range);
  } catch (err) {
    // The PBX's address stays out of the answer: the status, or what kind of failure, only.
    const e = err as DeliveryError;
    if (e.status === 404 || e.status === 410) throw new RelayError('RELAY_ERR_RECORDING_GONE');
    // The PBX refused the player's Range itself: the player hears so, with the size if known.
    if (err instanceof RangeNotSatisfiable)
      throw new RelayError('RELAY_ERR_RANGE_NOT_SATISFIABLE', undefined, {
        ...(err.size !== undefined ? { headers: { 'content-range': `bytes */${err.size}` } } : {}),
      });
    throw new RelayError(
      'RELAY_ERR_RECORDING_UNAVAILABLE',
      `the PBX did not give the recording (${e.status ?? 'no answer'}); try again later`,
    );
  }
}

/** An archived recording, the range asked for read from the file itself. */
function fromFile(path: string, size: number, range: string | undefined): FetchedRecording {
  const r = parseRange(range, size);
  const part = r && r !== 'unsatisfiable' ? r : undefined;
  const stream = createReadStream(path, part ?? {});
  return {
    body: stream,
    contentType: /\.wav$/.test(path) ? 'audio/wav' : 'audio/mpeg',
    status: part ? 206 : 200,
    length: part ? part.end - part.start + 1 : size,
    contentRange: part ? `bytes ${part.start}-${part.end}/${size}` : undefined,
    close: () => stream.destroy(),
  };
}

/** The recordings behind links and the console's player, with the sources of the moment. */
export class RecordingLinks {
  private readonly access = new Map<string, RecordingAccess>();

  constructor(
    sources: RelayConfig['sources'],
    /** Read at each request: archive.dir as relay.yaml sets it now. */
    private readonly archiveDir: () => string | undefined,
  ) {
    this.setSources(sources);
  }

  /** A reload's sources: their credentials and allowHosts from the next request on. */
  setSources(sources: RelayConfig['sources']): void {
    this.access.clear();
    for (const s of sources) this.access.set(s.name, s.recordings);
  }

  /** The recording for a signed link, a player's Range passed on. */
  fetch(source: string, url: string, range: string | undefined): Promise<FetchedRecording> {
    return recordingForLink(this.access.get(source), source, url, range, this.archiveDir());
  }

  /** What http/links.ts needs to serve the links (server.publicUrl set). */
  route(secret: () => string): Omit<LinkOptions, 'store'> {
    return {
      secret,
      perLink: new KeyedBuckets(LINK_REQUESTS_PER_MINUTE),
      fetch: (source, url, range) => this.fetch(source, url, range),
    };
  }

  /** The console's player: the whole recording. */
  async forConsole(
    source: string,
    url: string,
  ): Promise<{ body: FetchedRecording['body']; contentType: string }> {
    // The archived copy when there is one: the PBX is asked once, and may have dropped it.
    const r = await this.fetch(source, url, undefined);
    return { body: r.body, contentType: r.contentType };
  }

  /** Why the relay will not fetch this recording, without fetching it; undefined: it will. */
  async problem(source: string, url: string): Promise<string | undefined> {
    const dir = this.archiveDir();
    if (dir && (await archived(dir, source, url))) return undefined;
    if (!/^https?:\/\//i.test(url)) return 'the phone system sent no web link for it';
    if (!this.access.has(source)) return 'its source is no longer in relay.yaml';
    return allowedRecordingUrl(url, this.access.get(source))
      ? undefined
      : `its host is not in sources[${source}].recordings.allowHosts, so the relay does not ` +
          'fetch it';
  }
}
