// The relay's logger: pino, JSON lines on stdout (or pino-pretty's readable lines on a terminal),
// with the places a secret could sit redacted.

import pino from 'pino';
import pretty from 'pino-pretty';

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
    destination ?? pino.destination({ sync: false }),
  );
}

/**
 * Where log lines go: JSON on stdout, or readable lines when asked or (auto) when stdout is a
 * terminal. pino-pretty runs in this thread, after the scrub, on the JSON pino wrote.
 */
export function logDestination(
  format: 'auto' | 'json' | 'pretty',
  isTTY = !!process.stdout.isTTY,
): pino.DestinationStream {
  if (format === 'json' || (format === 'auto' && !isTTY)) return pino.destination({ sync: false });
  return pretty({
    colorize: isTTY,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service',
    singleLine: true,
    sync: true,
  });
}

export const silentLogger: Logger = pino({ level: 'silent' });
