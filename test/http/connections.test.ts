// Slow clients cannot take the relay (issue 20, item 5), against a real relay on 127.0.0.1: one
// address holding more sockets than its share cannot starve a webhook sender, nor can many
// addresses together (webhooks keep a reserve of connections, and a socket dribbling headers
// gives up its place to a newcomer), headers or a body dribbled in are cut, one console session
// cannot open live streams without end, and with server.consolePort an attack on the console
// leaves webhooks alone. Linux lets a client bind any 127.x.y.z, so attackers come from
// 127.0.0.2 and up, the webhook sender from 127.0.0.1.

import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { limitConnections } from '../../src/http/connections.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { sourceToken, tempDir, TOKENS, writeRelayYaml } from '../support.js';

const TOKEN = sourceToken('3cx');

let relay: Relay | undefined;
const sockets: Socket[] = [];
const streams: AbortController[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const a of streams.splice(0)) a.abort();
  await relay?.close();
  relay = undefined;
});

let relayFile = '';
async function open(server: string): Promise<Relay> {
  relayFile = writeRelayYaml(tempDir(), { server });
  relay = await startRelay(loadConfig(relayFile, {}));
  return relay;
}

/** The relay's metric callrelay_http_refused_total for one reason (0 if never counted). */
async function refused(r: Relay, reason: string): Promise<number> {
  // From the registry: /metrics itself would need a connection, and may be refused one.
  const text = await r.metrics.registry.metrics();
  const m = new RegExp(`^callrelay_http_refused_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(
    text,
  );
  return m ? Number(m[1]) : 0;
}

/** Wait for a condition (not for a fixed time): the machine may be busy. */
async function until(what: string, ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  for (const t0 = Date.now(); !ok(); await new Promise((r) => setTimeout(r, 10)))
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
}

/**
 * A slowloris: connects from `from`, sends the start of a request and nothing more. Resolves once
 * connected; `closed` tells whether the relay has let go of it since, `got` what it answered.
 */
function slowClient(
  port: number,
  from: string,
  start = 'POST /console/sign-in HTTP/1.1\r\nHost: relay\r\n',
): Promise<{ socket: Socket; closed: () => boolean; got: () => string }> {
  return new Promise((resolve, reject) => {
    let closed = false;
    let got = '';
    const socket = connect({ port, host: '127.0.0.1', localAddress: from }, () => {
      socket.write(start);
      resolve({ socket, closed: () => closed, got: () => got });
    });
    sockets.push(socket);
    socket.on('data', (b: Buffer) => (got += b.toString()));
    socket.on('error', () => {});
    socket.on('close', () => (closed = true));
    socket.once('error', reject);
  });
}

/** A webhook from 127.0.0.1: its status and how long its answer took. */
async function webhook(port: number, id: string): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(`http://127.0.0.1:${port}/hooks/3cx/${TOKEN}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: `{"Event":"incoming","Callerid":"420774852629","User":"117","Id":"${id}"}`,
  });
  await res.arrayBuffer();
  return { status: res.status, ms: performance.now() - t0 };
}

/** Requests the store holds, folded or not yet. */
async function stored(r: Relay): Promise<number> {
  return Object.values(await r.store.countInbox()).reduce((a, b) => a + b, 0);
}

describe('slow clients', () => {
  it('one address gets its share of connections; a webhook from another is answered at once', async () => {
    const r = await open('  maxConnections: 40\n  maxConnectionsPerAddress: 10\n');
    // More than maxConnections: without a share per address, these alone would take them all.
    const attack = await Promise.all(
      Array.from({ length: 60 }, () => slowClient(r.port, '127.0.0.2')),
    );
    // Let go either way: over the share (50) or, with no share, over maxConnections (20).
    await until(
      'the relay to let go of 20 of the 60',
      () => attack.filter((a) => a.closed()).length >= 20,
    );
    const hook = await webhook(r.port, '2611_slow-1');
    expect(hook.status).toBe(200);
    expect(hook.ms).toBeLessThan(1000);
    expect(await stored(r)).toBe(1);
    await until('50 of the 60 to be let go', () => attack.filter((a) => a.closed()).length >= 50);
    expect(attack.filter((a) => !a.closed())).toHaveLength(10);
    const metrics = await (await fetch(`http://127.0.0.1:${r.port}/metrics`)).text();
    expect(metrics).toMatch(/^callrelay_http_refused_total\{reason="per_address"\} 50$/m);
  });

  it('a proxy in server.trustProxy is exempt: everyone comes through it', async () => {
    const r = await open('  trustProxy: [127.0.0.6]\n  maxConnectionsPerAddress: 3\n');
    const proxy = await Promise.all(
      Array.from({ length: 8 }, () => slowClient(r.port, '127.0.0.6')),
    );
    const other = await Promise.all(
      Array.from({ length: 8 }, () => slowClient(r.port, '127.0.0.7')),
    );
    await until(
      '5 of the other address to be refused',
      () => other.filter((a) => a.closed()).length >= 5,
    );
    expect(other.filter((a) => a.closed())).toHaveLength(5);
    expect(proxy.filter((a) => a.closed())).toHaveLength(0);
  });

  it('headers dribbled in a byte at a time are cut at the headers deadline', async () => {
    // requestTimeoutSec 2: Node's headersTimeout is min(requestTimeout, 10 s).
    const r = await open('  requestTimeoutSec: 2\n');
    const slow = await slowClient(r.port, '127.0.0.3', 'GET /healthz HTTP/1.1\r\n');
    const t0 = Date.now();
    const drip = setInterval(() => slow.socket.write('X'), 200);
    try {
      await until('the relay to cut the dribbling client', slow.closed, 15_000);
    } finally {
      clearInterval(drip);
    }
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(slow.got()).toMatch(/^HTTP\/1\.1 408/);
  });

  it('a body that stops arriving is cut after bodyIdleSec; one that keeps coming is taken', async () => {
    // No minimum rate here: the steady body below is slow on purpose.
    const r = await open('  bodyIdleSec: 2\n  bodyMinRate: 0\n');
    const body = `{"Event":"incoming","Callerid":"420774852629","User":"117","Id":"2611_idle-1"}`;
    const head =
      `POST /hooks/3cx/${TOKEN} HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${body.length}\r\n\r\n`;
    const stalled = await slowClient(r.port, '127.0.0.4', head + body.slice(0, 10));
    const t0 = Date.now();
    await until('the stalled body to be cut', stalled.closed);
    // Well before requestTimeoutSec (30 s).
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(stalled.got()).toMatch(/^HTTP\/1\.1 408/);
    expect(stalled.got()).toContain('RELAY_ERR_BODY_INCOMPLETE');

    // A few bytes every 200 ms, 4 s in all: longer than bodyIdleSec, never idle (by a margin a
    // busy machine keeps), so never cut.
    const steady = await slowClient(r.port, '127.0.0.5', head);
    for (let i = 0; i < body.length; i += 4) {
      steady.socket.write(body.slice(i, i + 4));
      await new Promise((res) => setTimeout(res, 200));
    }
    await until('the steady body to be answered', () => steady.got().includes('\r\n\r\n'));
    expect(steady.got()).toMatch(/^HTTP\/1\.1 200/);
    expect(await stored(r)).toBe(1);
  });
});

describe('many addresses together', () => {
  it('cannot take the connections kept for webhooks; a body at a byte a second is cut', async () => {
    // 40 connections, 10 of them (webhookReserve's default 25%) kept for webhooks.
    const r = await open('  maxConnections: 40\n  maxConnectionsPerAddress: 6\n  bodyIdleSec: 6\n');
    // 8 addresses, 5 sockets each: each within its share, together every connection there is.
    // Each sends its headers at once, then its body a byte a second.
    const head =
      'POST /console/sign-in HTTP/1.1\r\nHost: relay\r\n' +
      'Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n';
    const attack = await Promise.all(
      Array.from({ length: 40 }, (_, i) => slowClient(r.port, `127.0.0.${2 + (i % 8)}`, head)),
    );
    const drip = setInterval(() => {
      for (const a of attack) if (!a.closed()) a.socket.write('x');
    }, 1000);
    try {
      // The 10 beyond the console's 30 are answered 503 as soon as their path is known.
      await until('10 to be refused', () => attack.filter((a) => a.closed()).length >= 10);
      const refusedNow = attack.filter((a) => a.closed());
      expect(refusedNow).toHaveLength(10);
      for (const a of refusedNow) {
        expect(a.got()).toMatch(/^HTTP\/1\.1 503/);
        expect(a.got()).toMatch(/^retry-after: \d+/im);
        expect(a.got()).toContain('RELAY_ERR_BUSY');
      }

      const hook = await webhook(r.port, '2611_reserve-1');
      expect(hook.status).toBe(200);
      expect(hook.ms).toBeLessThan(1000);
      expect(await stored(r)).toBe(1);
      // The webhook found a connection while the 30 still held theirs.
      expect(attack.filter((a) => !a.closed())).toHaveLength(30);

      // A byte a second never lets the body go idle, but is far below bodyMinRate: cut once the
      // grace (bodyIdleSec) is over.
      await until('the dribbled bodies to be cut', () => attack.every((a) => a.closed()), 15_000);
    } finally {
      clearInterval(drip);
    }
    const held = attack.filter((a) => !a.got().startsWith('HTTP/1.1 503'));
    expect(held).toHaveLength(30);
    for (const a of held) expect(a.got()).toMatch(/^HTTP\/1\.1 408/);
    expect(await refused(r, 'reserved')).toBe(10);
    expect(await refused(r, 'body_slow')).toBe(30);
  });

  it('dribbling headers, they hold every connection only until a webhook needs one', async () => {
    const r = await open('  maxConnections: 40\n  maxConnectionsPerAddress: 6\n');
    // Headers never finished: the relay cannot tell what these are, not even the reserve's.
    const attack = await Promise.all(
      Array.from({ length: 40 }, (_, i) => slowClient(r.port, `127.0.0.${2 + (i % 8)}`)),
    );
    const drip = setInterval(() => {
      for (const a of attack) if (!a.closed()) a.socket.write('X-Slow: 1\r\n');
    }, 200);
    try {
      // Past the second a place is held without a request before a newcomer may take it (a
      // time the relay sets, so waited for as such).
      await new Promise((res) => setTimeout(res, 1500));
      expect(attack.filter((a) => a.closed())).toHaveLength(0);
      const hook = await webhook(r.port, '2611_headers-1');
      expect(hook.status).toBe(200);
      expect(hook.ms).toBeLessThan(1000);
      expect(await stored(r)).toBe(1);
    } finally {
      clearInterval(drip);
    }
    // The webhook's connection took an idle place.
    expect(await refused(r, 'evicted')).toBeGreaterThanOrEqual(1);
    expect(attack.filter((a) => a.closed()).length).toBeGreaterThanOrEqual(1);
  });

  it('a webhook of 1 MiB over a slow but honest link is taken with the defaults', async () => {
    const r = await open('');
    const pad = 'x'.repeat(1024 * 1024 - 200);
    const body = `{"Event":"incoming","Callerid":"420774852629","User":"117","Id":"2611_big-1","Note":"${pad}"}`;
    expect(body.length).toBeLessThanOrEqual(1024 * 1024);
    const sender = await slowClient(
      r.port,
      '127.0.0.1',
      `POST /hooks/3cx/${TOKEN} HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\n\r\n`,
    );
    // 64 KiB every 200 ms (about 2.6 Mbit/s), and a stall of 3 s half way, as a mobile link has.
    const chunk = 64 * 1024;
    for (let i = 0; i < body.length; i += chunk) {
      sender.socket.write(body.slice(i, i + chunk));
      await new Promise((res) => setTimeout(res, i === 8 * chunk ? 3000 : 200));
    }
    await until('the big webhook to be answered', () => sender.got().includes('\r\n\r\n'));
    expect(sender.got()).toMatch(/^HTTP\/1\.1 200/);
    expect(await stored(r)).toBe(1);
  });
});

describe('per-address counting', () => {
  it('counts an IPv6 client by its /64, not by each of its addresses', async () => {
    // The loopback interface has one IPv6 address, so the peers' addresses are given to real
    // sockets here, as a dual-stack listener would see them.
    const http = createHttpServer((_req, res) => res.end());
    limitConnections(http, {
      perAddress: 2,
      trusted: () => false,
      bodyIdleMs: 10_000,
      bodyMinRate: 0,
      maxConnections: 100,
      reserve: 0,
    });
    const peers: Socket[] = [];
    const relayEnd = createNetServer((s) => peers.push(s));
    await new Promise<void>((res) => relayEnd.listen(0, '127.0.0.1', res));
    try {
      const port = (relayEnd.address() as { port: number }).port;
      const from = [
        '2001:db8:1:2::1',
        '2001:db8:1:2::2',
        '2001:db8:1:2:ffff::3',
        '2001:db8:1:2::4',
        '2001:db8:1:3::1',
      ];
      for (const address of from) {
        const client = connect({ port, host: '127.0.0.1' });
        sockets.push(client);
        client.on('error', () => {});
        await until('the connection', () => peers.length === sockets.length);
        const peer = peers.at(-1)!;
        Object.defineProperty(peer, 'remoteAddress', { value: address });
        http.emit('connection', peer);
      }
      // Two from 2001:db8:1:2::/64 are its share; the other /64 is someone else.
      await until('two to be refused', () => peers.filter((p) => p.destroyed).length >= 2);
      expect(peers.map((p) => p.destroyed)).toEqual([false, false, true, true, false]);
    } finally {
      for (const p of peers) p.destroy();
      await new Promise((res) => relayEnd.close(res));
    }
  });

  it('a reload that adds a proxy to trustProxy exempts it at once, without a restart', async () => {
    const r = await open('  maxConnectionsPerAddress: 3\n');
    const before = await Promise.all(
      Array.from({ length: 5 }, () => slowClient(r.port, '127.0.0.6')),
    );
    await until('2 to be refused', () => before.filter((a) => a.closed()).length >= 2);
    expect(before.filter((a) => a.closed())).toHaveLength(2);
    for (const a of before) a.socket.destroy();

    writeFileSync(
      relayFile,
      readFileSync(relayFile, 'utf8').replace(
        '  maxConnectionsPerAddress: 3\n',
        '  maxConnectionsPerAddress: 4\n  trustProxy: [127.0.0.6]\n',
      ),
    );
    expect((await r.reload()).restartNeeded).toEqual([]);
    const after = await Promise.all(
      Array.from({ length: 8 }, () => slowClient(r.port, '127.0.0.6')),
    );
    // The new share applies to others at once too.
    const other = await Promise.all(
      Array.from({ length: 5 }, () => slowClient(r.port, '127.0.0.7')),
    );
    await until('1 of the other address to be refused', () => other.some((a) => a.closed()));
    // All the proxy's held: a socket the relay refuses is closed at once, so a webhook (answered
    // after all were accepted) tells that none of them was.
    expect((await webhook(r.port, '2611_reload-1')).status).toBe(200);
    expect(after.filter((a) => a.closed())).toHaveLength(0);
    expect(other.filter((a) => a.closed())).toHaveLength(1);
    expect(await refused(r, 'per_address')).toBe(3);
  });
});

describe('live streams', () => {
  it('one session gets at most 5; the 6th is refused, and a closed one frees its place', async () => {
    const r = await open('');
    const base = `http://127.0.0.1:${r.port}`;
    const signIn = await fetch(`${base}/console/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        origin: base,
        'sec-fetch-site': 'same-origin',
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token: TOKENS.admin, next: '/console' }).toString(),
    });
    expect(signIn.status).toBe(303);
    const cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
    const stream = async (): Promise<Response> => {
      const a = new AbortController();
      streams.push(a);
      return fetch(`${base}/console/events`, { headers: { cookie }, signal: a.signal });
    };
    for (let i = 0; i < 5; i++) expect((await stream()).status).toBe(200);
    const sixth = await stream();
    expect(sixth.status).toBe(429);
    expect(((await sixth.json()) as { error: { code: string } }).error.code).toBe(
      'RELAY_ERR_TOO_MANY_STREAMS',
    );
    // A tab closed: its place is free again once the relay has seen it go.
    streams[0]!.abort();
    let again: Response | undefined;
    for (let tries = 0; tries < 100 && again?.status !== 200; tries++) {
      if (again) await again.arrayBuffer().catch(() => {});
      again = await stream();
      if (again.status !== 200) await new Promise((res) => setTimeout(res, 50));
    }
    expect(again?.status).toBe(200);
  });
});

describe('server.consolePort', () => {
  it('an attack on the console port leaves webhooks on server.port answered', async () => {
    const r = await open('  consolePort: 0\n  maxConnections: 20\n  maxConnectionsPerAddress: 2\n');
    expect(r.consolePort).toBeGreaterThan(0);
    // Many addresses, a few sockets each: per address they are within their share, together
    // they fill the console port's connections.
    const attack = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        slowClient(r.consolePort!, `127.0.1.${1 + (i % 15)}`).catch(() => undefined),
      ),
    );
    // Node refuses the 10 beyond maxConnections at once.
    await until(
      'the console port to be full',
      () => attack.filter((a) => !a || a.closed()).length >= 10,
    );
    expect(attack.filter((a) => a && !a.closed())).toHaveLength(20);

    const hook = await webhook(r.port, '2611_console-1');
    expect(hook.status).toBe(200);
    expect(hook.ms).toBeLessThan(1000);
    expect(await stored(r)).toBe(1);

    // Each port serves its own part only.
    const consoleHere = await fetch(`http://127.0.0.1:${r.port}/console`);
    expect(consoleHere.status).toBe(404);
    expect(await consoleHere.text()).toContain('server.consolePort');
    for (const a of attack) a?.socket.destroy();
    await until('the console port to be free', () => attack.every((a) => !a || a.closed()));
    const hookThere = await fetch(`http://127.0.0.1:${r.consolePort}/hooks/3cx/${TOKEN}`, {
      method: 'POST',
      body: '{}',
    });
    expect(hookThere.status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${r.consolePort}/console/sign-in`)).status).toBe(200);
  });
});
