// HTTPS from server.tls: webhooks over TLS, a renewed certificate served to new connections with
// no restart, a broken renewal that keeps the certificate in use, and config errors that name the
// place. Certificates are made for the test with the openssl command (on every machine of ours).

import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { connect } from 'node:tls';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { createLogger } from '../../src/telemetry/log.js';
import { tempDir, TOKENS, writeRelayYaml } from '../support.js';

/** A self-signed certificate for 127.0.0.1 and localhost: cert.pem and key.pem under `dir`. */
function makeCertificate(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.cert.pem`);
  const key = join(dir, `${name}.key.pem`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

/** The fingerprint of the certificate a new TLS connection to `port` is shown. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()!.fingerprint256);
      s.end();
    });
    s.once('error', reject);
  });
}

const fingerprint = (file: string): string =>
  new X509Certificate(readFileSync(file)).fingerprint256;

describe('HTTPS (server.tls)', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
  });

  const start = async (dir: string, more = ''): Promise<{ relay: Relay; lines: string[] }> => {
    const lines: string[] = [];
    const config = writeRelayYaml(dir, {
      server: `  tls:\n    cert: ./live.cert.pem\n    key: ./live.key.pem\n${more}`,
    });
    const log = createLogger('info', { write: (s: string) => void lines.push(s) });
    const relay = await startRelay(loadConfig(config, {}), log, { tlsCheckMs: 50 });
    cleanup.push(() => relay.close());
    return { relay, lines };
  };

  it('takes webhooks over HTTPS and serves a renewed certificate without a restart', async () => {
    const dir = tempDir();
    const first = makeCertificate(dir, 'first');
    const second = makeCertificate(dir, 'second');
    copyFileSync(first.cert, join(dir, 'live.cert.pem'));
    copyFileSync(first.key, join(dir, 'live.key.pem'));
    const { relay, lines } = await start(dir);

    const agent = new Agent({ connect: { ca: readFileSync(first.cert) } });
    cleanup.push(() => agent.close());
    const res = await request(`https://127.0.0.1:${relay.port}/hooks/3cx/${TOKENS.threecx}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:03","Id":"261110100000_1-1"}',
      dispatcher: agent,
    });
    expect(res.statusCode).toBe(200);
    // Served over TLS by the relay itself: browsers are told to keep to HTTPS.
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(await res.body.json()).toMatchObject({ status: 'mapped' });
    expect(await servedFingerprint(relay.port)).toBe(fingerprint(first.cert));
    expect(lines.join('')).toContain('"certificate":"CN=first, valid until');

    // certbot's way: new files in place. New connections get the new certificate.
    copyFileSync(second.key, join(dir, 'live.key.pem'));
    copyFileSync(second.cert, join(dir, 'live.cert.pem'));
    await until(async () => (await servedFingerprint(relay.port)) === fingerprint(second.cert));
    expect(lines.join('')).toContain('"certificate":"CN=second, valid until');

    // A key that is not the certificate's: the one in use stays, and the log says which files.
    copyFileSync(first.key, join(dir, 'live.key.pem'));
    await until(async () => lines.join('').includes('TLS certificate not reloaded'));
    const said = lines.find((l) => l.includes('TLS certificate not reloaded'))!;
    expect(said).toContain(`live.key.pem is not the key of ${join(dir, 'live.cert.pem')}`);
    expect(said).not.toContain('PRIVATE KEY');
    expect(await servedFingerprint(relay.port)).toBe(fingerprint(second.cert));
    const health = await fetch(`https://localhost:${relay.port}/healthz`).catch((e: Error) => e);
    // Untrusted by default (self-signed): the TLS handshake itself works, and says so.
    expect(health).toBeInstanceOf(Error);
  });

  it('with every connection taken, a newcomer takes an idle place, never a TLS request under way', async () => {
    const dir = tempDir();
    const cert = makeCertificate(dir, 'live');
    const { relay } = await start(dir, '  maxConnections: 2\n  webhookReserve: 0\n');
    // A request over TLS whose body is still to come: under way, so its place is not up for grabs
    // (the relay must find its TCP socket behind the TLS one to know that).
    const busy = connect({ host: '127.0.0.1', port: relay.port, ca: readFileSync(cert.cert) });
    let busyClosed = false;
    busy.on('close', () => (busyClosed = true));
    busy.on('error', () => {});
    await new Promise((res) => busy.once('secureConnect', res));
    busy.write(
      `POST /hooks/3cx/${TOKENS.threecx} HTTP/1.1\r\nHost: relay\r\nContent-Length: 100\r\n\r\n{`,
    );
    // A plain TCP connection that sends nothing: it holds a place without a request.
    const idle = netConnect(relay.port, '127.0.0.1');
    let idleClosed = false;
    idle.on('close', () => (idleClosed = true));
    idle.on('error', () => {});
    await new Promise((res) => idle.once('connect', res));
    // Past the second a place may be held without a request (a time the relay sets).
    await new Promise((res) => setTimeout(res, 1500));
    expect(await servedFingerprint(relay.port)).toBe(fingerprint(cert.cert));
    await until(async () => idleClosed);
    expect(busyClosed).toBe(false);
    // Gone before the relay closes, which would wait for the request under way.
    busy.destroy();
  });

  it('names the place in relay.yaml of a missing file or a key that does not match', () => {
    const dir = tempDir();
    const a = makeCertificate(dir, 'a');
    const b = makeCertificate(dir, 'b');
    const config = (cert: string, key: string): string =>
      writeRelayYaml(dir, { server: `  tls:\n    cert: ${cert}\n    key: ${key}\n` });
    expect(() => loadConfig(config('./nope.pem', a.key), {})).toThrow(
      /relay\.yaml:6:11 cannot read the certificate .*nope\.pem: ENOENT/,
    );
    expect(() => loadConfig(config(a.cert, b.key), {})).toThrow(
      /relay\.yaml:7:10 .*b\.key\.pem is not the key of .*a\.cert\.pem/,
    );
    writeFileSync(join(dir, 'garbage.pem'), 'not a certificate');
    expect(() => loadConfig(config('./garbage.pem', a.key), {})).toThrow(
      /relay\.yaml:6:11 .*garbage\.pem is not a PEM certificate/,
    );
    expect(loadConfig(config(a.cert, a.key), {}).server.tls).toEqual({ cert: a.cert, key: a.key });
  });
});

async function until(ok: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  for (const t0 = Date.now(); !(await ok()); await new Promise((r) => setTimeout(r, 50)))
    if (Date.now() - t0 > timeoutMs) throw new Error('timed out');
}
