// `callrelay reload`: make the running relay read relay.yaml, .env and the adapters again, by
// sending SIGHUP to the process its pid file names (pidfile.ts), never to a wrapper around it.
// Says what it did, or why it did nothing (exit code 1).

import { pidFilePath, relayFromPidFile } from './pidfile.js';
import { configFrom, fail } from './util.js';

export function cmdReload(o: { config?: string }): void {
  // Finding the pid file needs only the store's place: no CRM token has to be set here.
  const file = pidFilePath(configFrom(o, { readOnly: true }));
  const relay = relayFromPidFile(file);
  if (!relay.live) fail(`callrelay reload: nothing sent: ${relay.why}`);
  try {
    process.kill(relay.pid, 'SIGHUP');
  } catch (err) {
    fail(`callrelay reload: could not signal process ${relay.pid}: ${(err as Error).message}`);
  }
  process.stdout.write(
    `sent SIGHUP to the relay, process ${relay.pid} (${file}): it reads relay.yaml, .env and ` +
      'the adapters again; its log says "relay.yaml reloaded", or what is wrong in the file ' +
      '(then the running configuration stays as it was)\n',
  );
}
