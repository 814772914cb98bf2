// A lost SQLite file must be noticed, not silently replaced by an empty one. The first run leaves a
// marker beside the database (and beside relay.yaml, when that is another folder: a data volume
// that is not mounted takes the first marker with it). On a later start, a missing database whose
// marker is still there is refused unless the operator says to begin anew (`start --init`).

import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

interface Marker {
  database: string;
  createdAt: string;
}

const MARKER_NOTE =
  'callrelay: a relay keeps its database at "database". While this file exists, a start that ' +
  'finds no database there refuses to create an empty one (start --init does).';

/** Where the markers of a database live: beside it, and beside relay.yaml. */
function markerPaths(dbPath: string, configFile: string | undefined): string[] {
  const name = `${basename(dbPath)}.marker`;
  const dirs = new Set([dirname(resolve(dbPath))]);
  if (configFile) dirs.add(dirname(resolve(configFile)));
  return [...dirs].map((d) => join(d, name));
}

function readMarker(path: string): Marker | undefined {
  try {
    const m = JSON.parse(readFileSync(path, 'utf8')) as Partial<Marker>;
    return typeof m.database === 'string' && typeof m.createdAt === 'string'
      ? { database: m.database, createdAt: m.createdAt }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Copies the relay wrote when it found its file gone while running (SqliteStore.rescue). */
export function rescuedCopies(dbPath: string): string[] {
  const dir = dirname(resolve(dbPath));
  const prefix = `${basename(dbPath)}.rescued-`;
  try {
    return readdirSync(dir)
      .filter((f) => f.startsWith(prefix))
      .sort()
      .map((f) => join(dir, f));
  } catch {
    return [];
  }
}

export class LostDatabaseError extends Error {
  readonly code = 'RELAY_STORE_FILE_LOST';
}

/**
 * Call before opening `dbPath`: throws when the database is gone but a marker says a relay used
 * it (unless `init`). After the open succeeded, `markDatabase` writes the markers.
 */
export function checkDatabaseMarker(
  dbPath: string,
  opts: { configFile?: string; init?: boolean } = {},
): void {
  if (dbPath === ':memory:' || opts.init || existsSync(dbPath)) return;
  const abs = resolve(dbPath);
  for (const path of markerPaths(dbPath, opts.configFile)) {
    const m = readMarker(path);
    if (m?.database !== abs) continue;
    const rescued = rescuedCopies(dbPath);
    throw new LostDatabaseError(
      `the SQLite database ${abs} is gone, but a relay has used it since ${m.createdAt} ` +
        `(${path}). If its volume is not mounted or the file was moved, put it back` +
        (rescued.length
          ? `; the relay saved a copy when the file vanished while it was running: ` +
            `${rescued.at(-1)} (move it to ${abs})`
          : '') +
        `. To begin with an empty database instead, start once with --init.`,
    );
  }
}

/** Leave the markers of an open database (best effort: a read-only config folder gets none). */
export function markDatabase(dbPath: string, configFile?: string): void {
  if (dbPath === ':memory:') return;
  const abs = resolve(dbPath);
  for (const path of markerPaths(dbPath, configFile)) {
    if (readMarker(path)?.database === abs) continue;
    const marker = { database: abs, createdAt: new Date().toISOString(), note: MARKER_NOTE };
    try {
      writeFileSync(path, `${JSON.stringify(marker, null, 2)}\n`);
    } catch {
      // Not writable (a read-only config mount): the other marker still guards the file.
    }
  }
}
