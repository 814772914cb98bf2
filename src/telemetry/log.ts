// The relay's logger: pino, JSON lines on stdout (or pino-pretty's readable lines on a terminal),
// with the places a secret could sit redacted.

import pino from 'pino';
import { prettyFactory } from 'pino-pretty';
import { LogSink } from './sink.js';

export type Logger = pino.Logger;

export const REDACT = [
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'config.admin.token',
  'config.sources[*].token',
];

/**
 * `scrub`: applied to every line as written, so that a configured secret in any message (a CRM's
 * echo, a name from a URL) never reaches the log, whatever the code that logged it forgot.
 */
export function createLogger(
  level: string = 'info',
  destination?: pino.DestinationStream,
  scrub?: (line: string) => string,
): Logger {
  return pino(
    {
      level,
      base: { service: 'callrelay' },
      redact: { paths: REDACT, censor: '[redacted]' },
      ...(scrub ? { hooks: { streamWrite: scrub } } : {}),
    },
    // Never pino.destination: its flush at exit can wait for ever on a full pipe (sink.ts).
    destination ?? new LogSink(),
  );
}

/**
 * Where log lines go: JSON on stdout, or readable lines when asked or (auto) when stdout is a
 * terminal, through a LogSink (sink.ts) that never waits for the reader and holds at most
 * `limit` bytes for it. pino-pretty formats in this thread, after the scrub, the JSON pino wrote.
 */
export function logDestination(
  format: 'auto' | 'json' | 'pretty',
  isTTY = !!process.stdout.isTTY,
  limit?: number,
): LogSink {
  if (format === 'json' || (format === 'auto' && !isTTY)) return new LogSink({ limit });
  const pretty = prettyFactory({
    colorize: isTTY,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service',
    singleLine: true,
  });
  return new LogSink({ limit, format: (line) => pretty(line) });
}

export const silentLogger: Logger = pino({ level: 'silent' });
