// Where the relay's log lines leave the process, without ever waiting for whoever reads them. A
// reader that stops reading (a full stdout pipe) or goes away (EPIPE) costs log lines, never the
// relay: at most `limit` bytes wait in memory, later lines are dropped and counted, and once the
// reader has caught up one line says how many were lost. Nothing here writes synchronously to a
// pipe, so neither an exit nor a signal handler can be held by the log (issue 20, item 6).

import type { Writable } from 'node:stream';

/** Bytes of log waiting for a slow reader before lines are dropped (log.bufferLimit). */
export const DEFAULT_LOG_BUFFER = 8 * 1024 * 1024;

export interface LogSinkOptions {
  /** Bytes that may wait for the reader; default DEFAULT_LOG_BUFFER. */
  limit?: number;
  /**
   * Default process.stdout: on Linux Node writes to a pipe or socket without blocking (it queues
   * in memory, which `limit` bounds), to a file synchronously (a file does not stall for ever).
   */
  stream?: Writable;
  /** Turns a JSON line into what is written (pino-pretty's readable line), if set. */
  format?: (line: string) => string;
}

export class LogSink {
  /** Lines dropped since the start (callrelay_log_lines_dropped_total). */
  dropped = 0;
  /** Called with how many lines were dropped, once the reader has taken everything queued. */
  onCaughtUp: (dropped: number) => void = () => {};
  private unreported = 0;
  private broken = false;
  private readonly stream: Writable;
  private readonly limit: number;
  private readonly format: ((line: string) => string) | undefined;

  constructor(opts: LogSinkOptions = {}) {
    this.stream = opts.stream ?? process.stdout;
    this.limit = opts.limit ?? DEFAULT_LOG_BUFFER;
    this.format = opts.format;
    // EPIPE and the like: the reader is gone for good; lines are counted from now on.
    this.stream.on('error', () => {
      this.broken = true;
    });
    this.stream.on('drain', () => {
      if (!this.unreported || this.broken) return;
      const n = this.unreported;
      this.unreported = 0;
      this.onCaughtUp(n);
    });
  }

  /** pino's destination interface: one JSON line, newline included. */
  write(line: string): boolean {
    const out = this.format ? this.format(line) : line;
    if (this.broken || this.stream.writableLength + out.length > this.limit) {
      this.dropped++;
      this.unreported++;
      return true;
    }
    this.stream.write(out);
    return true;
  }

  /** Resolves once everything queued was taken by the reader, or after `ms`, whichever is first. */
  drained(ms: number): Promise<void> {
    if (this.broken || this.stream.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.stream.off('drain', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.stream.on('drain', done);
    });
  }
}
