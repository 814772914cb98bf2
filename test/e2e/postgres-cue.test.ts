// Two relays on one PostgreSQL database: a webhook that relay A receives and folds reaches relay B,
// which folds and delivers nothing itself, through the fold's NOTIFY rather than B's next look at
// the store: B's store watch hears it, and an agent signed in on B gets the ringing card within a
// second. And B's LISTEN connection, should it die without a word, is found and replaced.

import { createServer, Socket, type Server } from 'node:net';
import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { DeskView } from '../../src/agents/desk.js';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { CALLS_CHANNEL, CallWatch } from '../../src/store/postgres/watch.js';
import { AgentStream, signInAgent } from '../agents/support.js';
import {
  freshPostgresDatabase,
  goldenCases,
  sendFlowRequest,
  sourceToken,
  tempDir,
  writeRelayYaml,
} from '../support.js';

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** Wait for a condition (never a fixed sleep), or fail saying what. */
async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  ms = 15_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A client of the test database, closed after the test. */
async function client(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  cleanup.push(() => c.end());
  return c;
}

/** How many connections LISTEN as the relay's watch (the server's own view). */
const listening = async (c: pg.Client): Promise<number> =>
  (
    await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND application_name = 'callrelay listen'
         AND query LIKE 'LISTEN %'`,
    )
  ).rows[0]!.n;

/**
 * Relays A and B on one fresh database, with an agent directory. B folds and delivers nothing:
 * whatever reaches it comes from A's folds.
 */
async function twoRelays(): Promise<{ a: Relay; b: Relay; url: string }> {
  const url = await freshPostgresDatabase(inject('pgUrl'));
  const relays: Relay[] = [];
  for (let i = 0; i < 2; i++) {
    const cfg = loadConfig(
      writeRelayYaml(tempDir(), {
        more: `agents:
  - { extension: "101", name: Alice }
  - { extension: "103", name: Carl }
`,
      }),
      {},
    );
    const relay = await startRelay({
      ...cfg,
      store: { postgres: url, maxEventsPerCall: cfg.store.maxEventsPerCall, keepRequestsDays: 90 },
    });
    cleanup.push(() => relay.close());
    relays.push(relay);
  }
  const [a, b] = relays as [Relay, Relay];
  await b.pipeline.stop();
  await b.delivery.stop();
  return { a, b, url };
}

describe('the live cue across instances on PostgreSQL', () => {
  it("reaches relay B's store watch when relay A folds a call, and stops when B's listener leaves", async () => {
    const { a, b, url } = await twoRelays();
    // The store's watch alone: other instances' folds, nothing of B's own.
    let heard = 0;
    const unsubscribe = b.store.watchCalls!(() => heard++);
    const c = await client(url);
    await until('B listens', async () => (await listening(c)) === 1);

    const flow = goldenCases().find((x) => x.flow.name === '3cx-v2-ringgroup-missed')!.flow;
    const [first] = flow.requests;
    await sendFlowRequest(a.port, '3cx', first!);
    await a.pipeline.drain();
    await until("B's store watch hears A's fold", () => heard > 0);
    const callId = (flow.expect!.calls[0] as { callId: string }).callId;
    expect((await b.store.getCalls(callId, '3cx')).length).toBe(1);

    // Nobody on B listens any more: its LISTEN connection goes.
    unsubscribe();
    await until('B stops listening', async () => (await listening(c)) === 0);
  }, 60_000);

  it('brings the ringing card of a webhook sent to relay A to an agent signed in on relay B within a second', async () => {
    const { a, b, url } = await twoRelays();
    const bBase = `http://127.0.0.1:${b.port}`;
    // Alice signs in on B (her one-time link made by B's API).
    const stream = await AgentStream.open(bBase, await signInAgent(bBase, '101'));
    cleanup.push(() => stream.close());
    // Her first view (nothing rings), and B's LISTEN connection up: what follows is the cue's.
    await until('the first view', () => stream.view() !== undefined);
    const c = await client(url);
    await until('B listens', async () => (await listening(c)) === 1);

    const id = `261206120000_${Math.floor(Math.random() * 1e6)}`;
    const hook = await fetch(`http://127.0.0.1:${a.port}/hooks/3cx/${sourceToken('3cx')}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        Event: 'ringing',
        User: '101',
        Usertype: 'ext',
        Callerid: '774852629',
        Did: '',
        Id: `${id}-0`,
      }),
    });
    // A's 200: the request is stored; the clock starts.
    const answered = Date.now();
    await hook.arrayBuffer();
    expect(hook.status).toBe(200);
    const card = (v: DeskView) => v.cards.find((x) => x.id === `3cx/${id}`);
    // The card reaches Alice on B.
    const shown = await stream.until(
      (e) => e.event === 'view' && !!card(JSON.parse(e.data) as DeskView),
      10_000,
    );
    expect(shown.at - answered).toBeLessThan(1000);
    expect(card(JSON.parse(shown.data) as DeskView)).toMatchObject({
      state: 'ringing',
      number: '+420 774 852 629',
    });
  }, 60_000);
});

/**
 * A TCP relay to PostgreSQL that can go silent: `blackhole()` stops carrying the open connections'
 * bytes either way without closing anything, as a firewall that forgot them would.
 */
async function silentProxy(to: URL): Promise<{ url: (u: string) => string; blackhole(): void }> {
  const pairs: [Socket, Socket][] = [];
  const all: Socket[] = [];
  const server: Server = createServer((inbound) => {
    const outbound = new Socket();
    outbound.connect(Number(to.port), to.hostname);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
    const quiet = (): void => {};
    inbound.on('error', quiet);
    outbound.on('error', quiet);
    pairs.push([inbound, outbound]);
    all.push(inbound, outbound);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(
    () =>
      new Promise<void>((r) => {
        for (const x of all) x.destroy();
        server.close(() => r());
      }),
  );
  const port = (server.address() as { port: number }).port;
  return {
    url: (u) => {
      const x = new URL(u);
      x.hostname = '127.0.0.1';
      x.port = String(port);
      return x.toString();
    },
    blackhole() {
      for (const [inbound, outbound] of pairs.splice(0)) {
        inbound.unpipe(outbound);
        outbound.unpipe(inbound);
        // Unpiped, a close no longer reaches the other side: the server keeps its end, unknowing.
        inbound.pause();
        outbound.pause();
      }
    },
  };
}

describe("the LISTEN connection's health", () => {
  it('is replaced when it dies without a word, and hears other instances again', async () => {
    const url = await freshPostgresDatabase(inject('pgUrl'));
    const proxy = await silentProxy(new URL(url));
    // Quick pings for the test; the relay's own are seconds apart (docs/scaling.md).
    const watch = new CallWatch(proxy.url(url), 'b', { pingMs: 300, pingAnswerMs: 2000 });
    cleanup.push(() => watch.close());
    let heard = 0;
    watch.watch(() => heard++);
    const c = await client(url);
    await until('B listens', async () => (await listening(c)) === 1);
    const notify = () => c.query('SELECT pg_notify($1, $2)', [CALLS_CHANNEL, 'a']);
    await notify();
    await until('B hears A', () => heard > 0);

    // The path goes silent: no error, no close, on either side.
    proxy.blackhole();
    const before = heard;
    // Found by its unanswered ping and replaced (the server still holds the old one, unknowing);
    // the new connection says something may have changed meanwhile.
    await until('B listens again', async () => (await listening(c)) >= 2, 10_000);
    await until('B hears that it may have missed something', () => heard > before, 10_000);
    const again = heard;
    await notify();
    await until('B hears A on the new connection', () => heard > again);
  }, 60_000);
});
