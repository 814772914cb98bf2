// A relay as a real process, for the tests and the benchmarks alike: `node dist/main.js start`,
// ready once GET /healthz answers 200. One way to wait, so that a relay that cannot start fails
// every caller at once and with its own error output, not after a silent loop or a bare timeout.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/** The built entry point (`npm run build` first). */
export const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

/**
 * Resolves once GET http://127.0.0.1:<port>/healthz answers 200. Rejects after `timeoutMs`, or as
 * soon as `child` (the server's process, if the caller has it) has exited.
 * @param {number} port
 * @param {{ timeoutMs?: number, child?: import('node:child_process').ChildProcess }} [opts]
 * @returns {Promise<void>}
 */
export async function waitHealthy(port, { timeoutMs = 5000, child } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && (child.exitCode !== null || child.signalCode !== null))
      throw new Error(`exited early (${child.exitCode ?? child.signalCode})`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() >= deadline)
      throw new Error(`did not answer GET /healthz on ${port} within ${timeoutMs / 1000} s`);
    // Short steps: the benchmarks time a cold start with this loop.
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * @typedef {object} RelayProcessOptions
 * @property {number} port where the relay listens (relay.yaml's server.port, or PORT in `env`)
 * @property {NodeJS.ProcessEnv} [env] the relay's environment; this process's by default
 * @property {'pipe' | 'inherit'} [stderr] 'pipe' (the default) keeps the relay's log for the
 *   error message; 'inherit' shows it as it comes
 * @property {number} [timeoutMs] how long the relay may take to answer /healthz (default 5 s)
 */

/**
 * Spawn `callrelay start --config <config>`; resolves with the process once /healthz answers 200.
 * On failure the process is killed and the error carries whatever it wrote to stderr (piped).
 * @param {string} config path of relay.yaml
 * @param {RelayProcessOptions} opts
 * @returns {Promise<import('node:child_process').ChildProcess>}
 */
export async function startRelayProcess(config, { port, env, stderr = 'pipe', timeoutMs }) {
  const child = spawn(process.execPath, [MAIN, 'start', '--config', config], {
    env: env ?? process.env,
    stdio: ['ignore', 'ignore', stderr],
  });
  // Read for as long as the relay runs: a full pipe would block its logging.
  let output = '';
  child.stderr?.on('data', (b) => (output += b.toString()));
  try {
    await waitHealthy(port, { child, timeoutMs });
    return child;
  } catch (err) {
    child.kill('SIGKILL');
    // The process may exit before its last words are read: they say why it did.
    if (child.stderr && !child.stderr.destroyed) await once(child.stderr, 'close');
    const why = /** @type {Error} */ (err).message;
    throw new Error(`relay ${why}${output ? `: ${output.trim()}` : ''}`, { cause: err });
  }
}
