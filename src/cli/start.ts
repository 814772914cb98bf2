// `callrelay start`: run the relay until SIGTERM or SIGINT, then drain and exit; SIGHUP re-reads
// relay.yaml, .env and the adapter files (runtime.ts reload: a broken file changes nothing).
// The pid file (pidfile.ts) lets `callrelay reload` find this process.
// --init creates the SQLite database where a marker says an earlier one was lost (marker.ts).

import { exposedExampleTokens, exposedWeakSecrets } from '../config/load.js';
import { secretsOf } from '../config/secrets.js';
import { Redactor } from '../lib/redact.js';
import { displayPath } from '../lib/yaml.js';
import { startRelay } from '../runtime.js';
import { createLogger, logDestination } from '../telemetry/log.js';
import { pidFilePath, removePidFile, writePidFile } from './pidfile.js';
import { configFrom, configPath, usingConfig } from './util.js';

/** How long a shutdown may take before the process exits anyway. */
const STOP_TIMEOUT_MS = 10_000;
/** How long the log's last lines may take to reach its reader at the end of a shutdown. */
const LOG_DRAIN_MS = 2000;

export async function cmdStart(o: {
  config?: string;
  init?: boolean;
  insecureExampleTokens?: boolean;
}): Promise<void> {
  const asked = { ...o, 'insecure-example-tokens': o.insecureExampleTokens };
  // A reload reads the file this relay started with: a config/relay.yaml that `init` writes
  // later is another relay's (with a database of its own), never taken over by a SIGHUP.
  const values = { ...asked, config: configPath(asked) };
  const t0 = performance.now();
  const cfg = configFrom(values);
  const redact = new Redactor(secretsOf(cfg));
  const sink = logDestination(cfg.logFormat, undefined, cfg.logBufferLimit);
  const log = createLogger(cfg.logLevel, sink, (line) => redact.text(line));
  sink.onCaughtUp = (dropped) =>
    log.warn({ dropped }, `${dropped} log lines were dropped: the log output was not read in time`);
  log.info({ config: cfg.file }, usingConfig(asked));
  const exposed = exposedExampleTokens(cfg);
  if (exposed && !values['insecure-example-tokens']) throw exposed;
  const weak = exposedWeakSecrets(cfg);
  if (weak) throw weak;
  for (const i of cfg.exampleTokens)
    log.warn(
      { place: `${i.file}:${i.line}:${i.col}` },
      `${i.message}: anybody who read relay.yaml can use it; set the variable before exposing the relay`,
    );
  const relay = await startRelay(cfg, log, {
    init: values.init,
    redact,
    logDropped: () => sink.dropped,
    // A reload reads .env again too: a rotated token in it takes effect.
    reread: () => {
      const next = configFrom(values);
      const unsafe = exposedExampleTokens(next);
      if (unsafe && !values['insecure-example-tokens']) throw unsafe;
      const weakNow = exposedWeakSecrets(next);
      if (weakNow) throw weakNow;
      return next;
    },
  });
  // Written once the relay listens, removed at any exit (process.exit included).
  const pidFile = pidFilePath(cfg);
  const notWritten = writePidFile(pidFile);
  // Only a read-only folder beside relay.yaml (PostgreSQL) stops it, as in the Compose file,
  // where `docker compose kill -s HUP` reloads: worth a line, not a warning.
  if (notWritten)
    log.info(
      { pidFile: displayPath(pidFile), err: notWritten },
      `no pid file, so callrelay reload cannot find this relay: send SIGHUP to process ${process.pid} instead`,
    );
  else process.on('exit', () => removePidFile(pidFile));
  log.info(
    {
      port: relay.port,
      pid: process.pid,
      ...(notWritten ? {} : { pidFile: displayPath(pidFile) }),
      ...(relay.consolePort !== undefined ? { consolePort: relay.consolePort } : {}),
      store: 'sqlite' in cfg.store ? displayPath(cfg.store.sqlite) : 'postgres',
      sources: cfg.sources.map((s) => `${s.name}:${s.adapter.name}`),
      startMs: Math.round(performance.now() - t0),
    },
    `callrelay listening on ${cfg.server.host}:${relay.port}`,
  );
  let stopping = false;
  const stop = (signal: string): void => {
    // A second signal: the operator will not wait for the drain.
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'shutting down');
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    // Nothing at exit waits for the log (sink.ts), so this exit always ends the process.
    const force = setTimeout(() => process.exit(1), STOP_TIMEOUT_MS);
    force.unref();
    relay.close().then(
      async () => {
        // The last lines get a moment to reach a reader that is reading; one that is not is not
        // waited for.
        await sink.drained(Math.min(LOG_DRAIN_MS, Math.max(0, deadline - Date.now() - 500)));
        process.exit(0);
      },
      (err: Error) => {
        log.error({ err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    relay.reload().catch((err: Error) => {
      log.error(
        { errors: err.message.split('\n') },
        'relay.yaml not reloaded: the configuration in use stays as it was',
      );
    });
  });
}
