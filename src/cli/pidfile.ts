// The relay's pid file: `callrelay start` writes its process id there once it listens, and
// removes it at exit, so that `callrelay reload` (or `kill -HUP $(cat FILE)`) signals the relay
// itself. Signalling a wrapper instead (npm start, a shell) kills the wrapper and leaves the relay
// running unmanaged. The file lies beside the SQLite database, which the relay can always write
// (systemd's unit makes only its state directory writable); with PostgreSQL, beside relay.yaml.
// A file naming a process that is gone, or that is not a relay, is stale and never signalled.

import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import type { RelayConfig } from '../config/load.js';

/** `relay.db.pid` beside the database; with PostgreSQL, `relay.yaml.pid` beside relay.yaml. */
export function pidFilePath(cfg: RelayConfig): string {
  return `${'sqlite' in cfg.store ? cfg.store.sqlite : cfg.file}.pid`;
}

/** Writes this process's id; else the reason it could not, for the log (the relay runs anyway). */
export function writePidFile(file: string): string | undefined {
  try {
    // The first line is the pid alone, as every pid file has it: `kill -HUP $(cat FILE)` works.
    writeFileSync(file, `${process.pid}\n`);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Removes the file if it still names this process: a relay started since keeps its own. */
export function removePidFile(file: string): void {
  try {
    if (readPid(file) === process.pid) unlinkSync(file);
  } catch {
    // Gone already, or not ours to remove.
  }
}

function readPid(file: string): number | undefined {
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0]!.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

export type PidFileState = { live: true; pid: number } | { live: false; why: string; pid?: number };

/** Whether `file` names a running relay that this user may signal, and if not, why not. */
export function relayFromPidFile(file: string): PidFileState {
  let pid: number | undefined;
  try {
    pid = readPid(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      live: false,
      why:
        code === 'ENOENT'
          ? `no pid file ${file}: no relay with this configuration is running (one started ` +
            'with --config FILE or $RELAY_CONFIG needs the same here)'
          : `cannot read ${file}: ${(err as Error).message}`,
    };
  }
  if (pid === undefined) return { live: false, why: `${file} holds no process id` };
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
      ? {
          live: false,
          pid,
          why: `process ${pid} (${file}) belongs to another user: run this as that user (systemd: systemctl reload callrelay)`,
        }
      : {
          live: false,
          pid,
          why: `${file} is stale: process ${pid} is gone (the relay stopped without removing it)`,
        };
  }
  const cmd = commandLine(pid);
  if (cmd && !isRelay(cmd))
    return {
      live: false,
      pid,
      why: `${file} is stale: process ${pid} is not a relay now (${cmd.join(' ').slice(0, 80)})`,
    };
  return { live: true, pid };
}

/** The process's arguments, where the system shows them (Linux's /proc); else undefined. */
function commandLine(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
}

/** `node …/main.js start …` or `callrelay start …` (npx, a global install, the image). */
function isRelay(cmd: string[]): boolean {
  const entry = cmd.findIndex((a) => /(^|\/)(main\.js|callrelay)$/.test(a));
  return entry >= 0 && cmd.slice(entry + 1).includes('start');
}
