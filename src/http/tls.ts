// HTTPS from server.tls: the certificate and key are watched, and a renewal (certbot replacing
// the files, or a symlink swapped) is put in use for new connections without a restart. A pair
// that does not load keeps the one in use and says so in the log, naming the files.

import { unwatchFile, watchFile } from 'node:fs';
import type { Server } from 'node:https';
import { readCertificate, type Certificate, type CertificateFiles } from '../lib/certificates.js';
import type { Logger } from '../telemetry/log.js';

const fingerprint = (c: Certificate): string =>
  `${c.cert.toString('base64')}|${c.key.toString('base64')}`;

/** Starts watching the files of `inUse` (what the server serves now); returns how to stop. */
export function reloadOnChange(
  server: Server,
  files: CertificateFiles,
  inUse: Certificate,
  log: Logger,
  intervalMs = 2000,
): () => void {
  let last = fingerprint(inUse);
  log.info({ cert: files.cert, certificate: inUse.about }, 'TLS certificate in use');
  const check = (): void => {
    try {
      const pair = readCertificate(files);
      const seen = fingerprint(pair);
      if (seen === last) return;
      server.setSecureContext({ cert: pair.cert, key: pair.key });
      last = seen;
      log.info({ cert: files.cert, certificate: pair.about }, 'TLS certificate in use');
    } catch (err) {
      // Mid-renewal (one file written, not the other) this clears up at the next change.
      log.error(
        { cert: files.cert, key: files.key, err: (err as Error).message },
        'TLS certificate not reloaded: the one in use stays',
      );
    }
  };
  // Polling sees a file replaced by a rename as well as one rewritten in place.
  watchFile(files.cert, { interval: intervalMs, persistent: false }, check);
  watchFile(files.key, { interval: intervalMs, persistent: false }, check);
  return () => {
    unwatchFile(files.cert, check);
    unwatchFile(files.key, check);
  };
}
