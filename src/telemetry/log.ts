// The relay's logger: pino, JSON lines on stdout, with the places a secret could sit redacted.

import pino from 'pino';

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

export const silentLogger: Logger = pino({ level: 'silent' });
