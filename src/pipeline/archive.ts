// The recording archive (sources[].recordings.archive): each recording is fetched from the PBX
// once, soon after a call announces it, and kept as a file, so that links keep playing after the
// PBX has dropped it (3CX keeps recordings only for the days set in its ini file) and the PBX is
// asked once, not per play. Written to a temporary name and renamed: a file there is whole.
// Files older than keepDays are deleted. Several instances may share the folder: a second fetch
// of the same recording only replaces the file with the same bytes.

import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline as pump } from 'node:stream/promises';
import type { CallQuery, Store } from '../store/types.js';
import { silentLogger, type Logger } from '../telemetry/log.js';

export interface ArchiveOptions {
  dir: string;
  /** Sources whose recordings are archived. */
  sources: ReadonlySet<string>;
  /** The recording from the PBX (the source's credentials, allowHosts and size cap). */
  fetch(source: string, url: string): Promise<AsyncIterable<Uint8Array>>;
  /** Delete files older than this; 0 keeps them. */
  keepMs: number;
  everyMs?: number;
  log?: Logger;
}

/** Where a recording is (or would be) archived: by source and a hash of its URL. */
export function archivePath(dir: string, source: string, url: string): string {
  const ext = /\.(mp3|wav|ogg|m4a)(?:\?|$)/i.exec(url)?.[1]?.toLowerCase() ?? 'mp3';
  const name = createHash('sha256').update(url).digest('hex').slice(0, 32);
  return join(dir, source.replace(/[^\w-]/g, '_'), `${name}.${ext}`);
}

/** The archived file of a recording, if there is one. */
export async function archived(
  dir: string,
  source: string,
  url: string,
): Promise<{ path: string; size: number } | undefined> {
  const path = archivePath(dir, source, url);
  try {
    const s = await stat(path);
    return { path, size: s.size };
  } catch {
    return undefined;
  }
}

/** Tries per recording, a minute more apart each time, before its link relies on the PBX. */
const MAX_TRIES = 5;

export class RecordingArchive {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private again = false;
  private stopped = false;
  /** Calls changed since this time are looked at next (ISO); the first run looks a day back. */
  private since = new Date(Date.now() - 86400_000).toISOString();
  private lastPrune = 0;
  /** Recordings that failed: tried again from here (a PBX briefly down), at most MAX_TRIES. */
  private readonly failed = new Map<string, { source: string; at: number; tries: number }>();

  constructor(
    private readonly store: Store,
    private readonly o: ArchiveOptions,
  ) {}

  start(): void {
    if (!this.o.sources.size) return;
    this.timer = setInterval(() => this.kick(), this.o.everyMs ?? 5000);
    this.timer.unref();
    this.kick();
  }

  /** Calls may have new recordings (a fold committed): look soon. */
  kick(): void {
    if (this.stopped || !this.o.sources.size) return;
    if (this.running) {
      this.again = true;
      return;
    }
    void this.run();
  }

  /** Archive what is new; resolves with how many files were written (tests wait on it). */
  run(): Promise<number> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
      if (this.again && !this.stopped) {
        this.again = false;
        this.kick();
      }
    });
    return this.running;
  }

  private async pass(): Promise<number> {
    const log = this.o.log ?? silentLogger;
    let written = 0;
    try {
      const started = new Date().toISOString();
      for (let before: CallQuery['before']; !this.stopped;) {
        const rows = await this.store.listCalls({
          limit: 200,
          since: this.since,
          ...(before ? { before } : {}),
        });
        for (const { record: c } of rows) {
          if (!this.o.sources.has(c.source)) continue;
          for (const url of c.recordings) if (await this.keep(c.source, url)) written++;
        }
        if (rows.length < 200) break;
        const last = rows.at(-1)!;
        before = {
          updatedAt: last.updatedAt,
          source: last.record.source,
          callId: last.record.callId,
        };
      }
      this.since = started;
      for (const [url, f] of this.failed)
        if (f.at <= Date.now() && (await this.keep(f.source, url))) written++;
      await this.prune();
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'archiving recordings failed; trying again soon');
    }
    return written;
  }

  /** Fetch one recording into the archive unless it is there; true if written now. */
  private async keep(source: string, url: string): Promise<boolean> {
    if (await archived(this.o.dir, source, url)) return false;
    const failed = this.failed.get(url);
    if (failed && failed.at > Date.now()) return false;
    const path = archivePath(this.o.dir, source, url);
    const tmp = `${path}.${process.pid}.part`;
    try {
      await mkdir(join(path, '..'), { recursive: true });
      await pump(await this.o.fetch(source, url), createWriteStream(tmp, { mode: 0o600 }));
      await rename(tmp, path);
      this.failed.delete(url);
      return true;
    } catch (err) {
      await rm(tmp, { force: true });
      const tries = (failed?.tries ?? 0) + 1;
      if (tries >= MAX_TRIES) this.failed.delete(url);
      else this.failed.set(url, { source, at: Date.now() + 60_000 * tries, tries });
      (this.o.log ?? silentLogger).warn(
        { source, tries, err: (err as Error).message },
        tries >= MAX_TRIES
          ? 'a recording could not be archived; giving up (its link plays from the PBX)'
          : 'a recording could not be archived; trying again later',
      );
      return false;
    }
  }

  /** Deletes archived files past keepMs, at most hourly. */
  private async prune(): Promise<void> {
    if (!this.o.keepMs || Date.now() - this.lastPrune < 3600_000) return;
    this.lastPrune = Date.now();
    const cutoff = Date.now() - this.o.keepMs;
    for (const source of this.o.sources) {
      const dir = join(this.o.dir, source.replace(/[^\w-]/g, '_'));
      const files = await readdir(dir).catch(() => [] as string[]);
      for (const f of files) {
        const s = await stat(join(dir, f)).catch(() => undefined);
        if (s && s.mtimeMs < cutoff) await rm(join(dir, f), { force: true });
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
