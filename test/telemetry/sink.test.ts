// The log's sink (telemetry/sink.ts) against a stream whose reader holds back: bounded memory,
// dropped lines counted and reported once the reader catches up, a broken stream never thrown.

import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LogSink } from '../../src/telemetry/sink.js';

/** A stream that takes nothing until `release()`: a reader that stopped reading. */
function heldStream(): { stream: Writable; taken: string[]; release: () => void } {
  const taken: string[] = [];
  const waiting: (() => void)[] = [];
  let held = true;
  const stream = new Writable({
    highWaterMark: 256,
    write(chunk: Buffer, _enc, done) {
      taken.push(chunk.toString());
      if (held) waiting.push(done);
      else done();
    },
  });
  const release = (): void => {
    held = false;
    for (const done of waiting.splice(0)) done();
  };
  return { stream, taken, release };
}

describe('LogSink', () => {
  it('holds at most its limit, drops the rest and says how many once the reader caught up', async () => {
    const { stream, taken, release } = heldStream();
    const sink = new LogSink({ stream, limit: 1000 });
    const reports: number[] = [];
    sink.onCaughtUp = (n) => reports.push(n);
    const line = `${'x'.repeat(99)}\n`;
    for (let i = 0; i < 50; i++) sink.write(line);
    expect(stream.writableLength).toBeLessThanOrEqual(1000);
    expect(sink.dropped).toBe(40);
    release();
    await sink.drained(5000);
    expect(reports).toEqual([40]);
    expect(taken.join('')).toBe(line.repeat(10));
    // Caught up: lines go through again, and the count stays what it was.
    sink.write(line);
    expect(sink.dropped).toBe(40);
  });

  it('counts lines after the reader went away, and never throws', () => {
    const stream = new Writable({
      write(_chunk, _enc, done) {
        done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const sink = new LogSink({ stream });
    sink.write('{"msg":"first"}\n');
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        expect(() => sink.write('{"msg":"second"}\n')).not.toThrow();
        expect(sink.dropped).toBe(1);
        resolve();
      }),
    );
  });

  it('formats each line when asked (pino-pretty for log.format pretty)', () => {
    const { stream, taken, release } = heldStream();
    release();
    const sink = new LogSink({ stream, format: (l) => l.toUpperCase() });
    sink.write('{"msg":"hi"}\n');
    expect(taken).toEqual(['{"MSG":"HI"}\n']);
  });
});
