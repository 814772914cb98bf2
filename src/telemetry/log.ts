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

export function createLogger(level: string = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    { level, base: { service: 'callrelay' }, redact: { paths: REDACT, censor: '[redacted]' } },
    destination ?? pino.destination({ sync: false }),
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });
