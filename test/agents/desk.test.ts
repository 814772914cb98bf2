// The agent's page over HTTP, on a relay as `start` builds it (real SQLite, a fake HubSpot server
// for contacts, 3CX webhooks): a ringing call reaches its agent's live stream within a second,
// with the caller's contact; other agents get nothing of it; a queue's call reaches every member;
// no answer of the agent pages shows an agent another's calls; the stream ends on sign-out; and
// one store query feeds every open stream.

import { afterEach, describe, expect, it } from 'vitest';
import { Desk, ENDED_CARD_MS, type DeskView } from '../../src/agents/desk.js';
import type { AgentOptions } from '../../src/agents/types.js';
import { loadConfig } from '../../src/config/load.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/types.js';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import { sourceToken, tempDir, writeRelayYaml } from '../support.js';
import { AgentStream as Stream, signInAgent as signIn } from './support.js';

const HS_TOKEN = 'pat-eu1-desk-test-0001';
const PORTAL = '4711';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

const AGENTS = `agents:
  - { extension: "101", name: Alice, email: alice@example.com, groups: ["800"] }
  - { extension: "102", name: Bob, email: bob@example.com, groups: ["800"] }
  - { extension: "103", name: Carl }
`;

interface Started {
  relay: Relay;
  base: string;
  hs: FakeHubspot;
  /** listCalls made on the relay's store so far. */
  listed: () => number;
  /** Each listCalls's query, when it was made. */
  queries: { at: number; q: Parameters<Store['listCalls']>[0] }[];
  /** getSession made on the relay's store so far (the streams' sign-in looks). */
  sessionLooks: () => number;
}

async function start(): Promise<Started> {
  const hs = await new FakeHubspot(HS_TOKEN).start();
  cleanup.push(() => hs.close());
  hs.addContact({
    firstname: 'Jana',
    lastname: 'Nováková',
    company: 'Acme s.r.o.',
    phone: '+420 774 852 629',
  });
  const file = writeRelayYaml(tempDir(), {
    more: `${AGENTS}targets:
  - name: hubspot
    type: hubspot
    token: ${HS_TOKEN}
    baseUrl: ${hs.url}
    portalId: ${PORTAL}
`,
  });
  const cfg = loadConfig(file, {});
  // The relay's own SQLite store, its listCalls counted (the cost of the live cards).
  const real = await openStore(cfg);
  let listed = 0;
  let sessionLooks = 0;
  const queries: Started['queries'] = [];
  const store = new Proxy(real, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (prop === 'listCalls')
        return (...args: Parameters<Store['listCalls']>) => {
          listed++;
          queries.push({ at: Date.now(), q: args[0] });
          return real.listCalls(...args);
        };
      if (prop === 'getSession')
        return (...args: Parameters<Store['getSession']>) => {
          sessionLooks++;
          return real.getSession(...args);
        };
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const relay = await startRelay(cfg, undefined, { store });
  cleanup.push(() => relay.close());
  return {
    relay,
    base: `http://127.0.0.1:${relay.port}`,
    hs,
    listed: () => listed,
    queries,
    sessionLooks: () => sessionLooks,
  };
}

let seq = 0;
/** One 3CX call: its id and the webhooks of its life. */
function threeCx(callerid = '774852629') {
  const id = `261206100000_${++seq}${Math.floor(Math.random() * 1000)}`;
  const post = async (base: string, body: Record<string, string>): Promise<number> => {
    const res = await fetch(`${base}/hooks/3cx/${sourceToken('3cx')}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ Callerid: callerid, Did: '', ...body }),
    });
    await res.arrayBuffer();
    return res.status;
  };
  return {
    id,
    ring: (base: string, user: string, usertype = 'ext') =>
      post(base, { Event: 'ringing', User: user, Usertype: usertype, Id: `${id}-0` }),
    answer: (base: string, user: string) =>
      post(base, { Event: 'incomingcall_started', User: user, Trtype: 'NotDef', Id: `${id}-1` }),
    end: (base: string, user: string) =>
      post(base, {
        Event: 'incoming',
        User: user,
        Finishtype: 'Ok',
        Transfer: 'False',
        Duration: '00:05',
        Id: `${id}-1`,
      }),
  };
}

const cardOf = (s: Stream, callId: string) => s.view()?.cards.find((c) => c.id === `3cx/${callId}`);
const hasCard = (callId: string) => (e: { event: string; data: string }) =>
  e.event === 'view' &&
  (JSON.parse(e.data) as DeskView).cards.some((c) => c.id === `3cx/${callId}`);

describe("the agent's live card", () => {
  it('reaches the ringing agent within a second, with the contact, and no other agent', async () => {
    const { base } = await start();
    const alice = await Stream.open(base, await signIn(base, '101'));
    const carl = await Stream.open(base, await signIn(base, '103'));
    cleanup.push(async () => {
      alice.close();
      carl.close();
    });
    // Each stream's first view: nothing rings yet.
    await alice.until((e) => e.event === 'view');
    await carl.until((e) => e.event === 'view');

    const call = threeCx();
    expect(await call.ring(base, '101')).toBe(200);
    // Within a second of the webhook's answer: the card with its number (the name may follow).
    const answered = Date.now();
    const shown = await alice.until(hasCard(call.id), 5000);
    expect(shown.at - answered).toBeLessThan(1000);
    const first = (JSON.parse(shown.data) as DeskView).cards[0]!;
    expect(first).toMatchObject({ state: 'ringing', number: '+420 774 852 629' });

    // The contact follows (or comes at once), from the same HubSpot as delivery: a CRM round
    // trip more, so a longer wait of its own.
    await alice.until((e) => e.event === 'view' && e.data.includes('Jana Nováková'), 15_000);
    expect(cardOf(alice, call.id)?.contact).toEqual({
      name: 'Jana Nováková',
      company: 'Acme s.r.o.',
      url: expect.stringContaining(`/contacts/${PORTAL}/`),
    });

    await call.answer(base, '101');
    await alice.until((e) => e.event === 'view' && e.data.includes('Answered by Alice'));
    await call.end(base, '101');
    await alice.until((e) => e.event === 'view' && e.data.includes('"state":"ended"'));

    // Carl's stream said nothing of it, ever.
    expect(carl.events.filter((e) => e.event === 'view').length).toBeGreaterThan(0);
    for (const e of carl.events) {
      expect(e.data).not.toContain(call.id);
      expect(e.data).not.toContain('774');
    }
  });

  it('is not held by a slow CRM: the number first, the name when the CRM answers', async () => {
    const { base, hs } = await start();
    const alice = await Stream.open(base, await signIn(base, '101'));
    cleanup.push(async () => alice.close());
    await alice.until((e) => e.event === 'view');
    hs.delayMs = 2000;
    const call = threeCx();
    const sent = Date.now();
    await call.ring(base, '101');
    const answered = Date.now();
    const shown = await alice.until(hasCard(call.id), 5000);
    expect(shown.at - answered).toBeLessThan(1000);
    const card = (JSON.parse(shown.data) as DeskView).cards[0]!;
    expect(card).toMatchObject({ number: '+420 774 852 629', contact: null, looking: true });
    const named = await alice.until((e) => e.event === 'view' && e.data.includes('Nováková'));
    expect(named.at - sent).toBeGreaterThanOrEqual(1900);
  });

  it('reaches every member of a queue that rings, and only them; one store query feeds them all', async () => {
    const { base, listed } = await start();
    const [alice, bob, carl] = await Promise.all(
      ['101', '102', '103'].map(async (ext) => Stream.open(base, await signIn(base, ext))),
    );
    // Two more tabs each: nine streams in all.
    const tabs = await Promise.all(
      ['101', '101', '102', '102', '103', '103'].map(async (ext) =>
        Stream.open(base, await signIn(base, ext)),
      ),
    );
    const all = [alice!, bob!, carl!, ...tabs];
    cleanup.push(async () => all.forEach((s) => s.close()));
    for (const s of all) await s.until((e) => e.event === 'view');

    const call = threeCx('601123456');
    const before = listed();
    await call.ring(base, '800', 'queue');
    await alice!.until(hasCard(call.id), 5000);
    await bob!.until(hasCard(call.id), 5000);
    // One cue, one query of recent calls for the nine streams (the card's history of this
    // number is one more, per number; a delivery's cue might make another): not one per stream.
    expect(listed() - before).toBeLessThanOrEqual(3);
    await call.answer(base, '102');
    await alice!.until((e) => e.event === 'view' && e.data.includes('Answered by Bob'));
    for (const e of carl!.events) expect(e.data).not.toContain(call.id);
  });
});

describe("the cards' store queries", () => {
  it('come of folds only (not deliveries), and read the changes since the last answer', async () => {
    const { relay, base, hs, queries } = await start();
    const alice = await Stream.open(base, await signIn(base, '101'));
    cleanup.push(async () => alice.close());
    await alice.until((e) => e.event === 'view');
    // The recent window's queries (a card's history of a number asks by number).
    const windows = () => queries.filter((x) => x.q.number === undefined && x.q.since);
    const call = threeCx();
    await call.ring(base, '101');
    await alice.until(hasCard(call.id), 5000);
    // A slow HubSpot: the delivery finishes well after the end's fold and its query.
    hs.delayMs = 400;
    await call.answer(base, '101');
    await call.end(base, '101');
    await relay.pipeline.drain();
    await alice.until((e) => e.event === 'view' && e.data.includes('"state":"ended"'));
    const folded = windows().length;
    // Once the ended call is in HubSpot, its delivery has finished: no card changed, no query.
    const deadline = Date.now() + 15_000;
    while (hs.calls.size === 0) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 500));
    expect(windows().length).toBe(folded);
    // The first reads the last two hours; a fold's reads only what changed since (and a moment).
    const [first, ...cued] = windows();
    expect(first!.at - Date.parse(first!.q.since!)).toBeGreaterThan(3600_000);
    expect(cued.length).toBeGreaterThan(0);
    for (const x of cued) expect(x.at - Date.parse(x.q.since!)).toBeLessThan(60_000);
  });
});

describe('a card, whatever its CRM and store say', () => {
  it('is drawn when the lookup or the history fails, and an ended one lasts a minute from its end', async () => {
    const { relay, base } = await start();
    const call = threeCx();
    await call.ring(base, '101');
    await call.answer(base, '101');
    await call.end(base, '101');
    await relay.pipeline.drain();
    // The relay's store, but a number's history fails; the recent calls say the call ended two
    // minutes ago, as one whose recording came in just now.
    let clock = Date.now();
    const ended = new Date(clock - 2 * ENDED_CARD_MS).toISOString();
    const store = new Proxy(relay.store, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (prop === 'listCalls')
          return async (q: Parameters<Store['listCalls']>[0]) => {
            if (q.number !== undefined) throw new Error('the store is away');
            const rows = await target.listCalls(q);
            return rows.map((r) => ({ ...r, record: { ...r.record, endedAt: ended } }));
          };
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const opts = {
      directory: () => [{ extension: '101', name: 'Alice' }],
      onChange: () => () => {},
      lookup: () => Promise.reject(new Error('the CRM is away')),
    } as unknown as AgentOptions;
    // First as if the end were now: the card shows, then says the CRM had nobody.
    clock = Date.parse(ended) + 1000;
    const desk = new Desk(store, opts, () => clock);
    const views: DeskView[] = [];
    const off = desk.subscribe('101', (v) => views.push(v));
    cleanup.push(async () => off());
    const deadline = Date.now() + 5000;
    while (views.at(-1)?.cards[0]?.looking !== false) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(views.at(-1)!.cards[0]).toMatchObject({ contact: null, looking: false, history: [] });
    off();
    // Two minutes after its end (its updatedAt is now): no card.
    clock = Date.now();
    const later = new Desk(store, opts, () => clock);
    const seen: DeskView[] = [];
    const off2 = later.subscribe('101', (v) => seen.push(v));
    cleanup.push(async () => off2());
    while (!seen.length) {
      expect(Date.now()).toBeLessThan(deadline + 5000);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(seen.at(-1)!.cards).toEqual([]);
  });
});

describe("what an agent's answers show", () => {
  it("never another agent's calls, nor any admin page or /api route", async () => {
    const { relay, base } = await start();
    const aliceCookie = await signIn(base, '101');
    const carlCookie = await signIn(base, '103');
    const call = threeCx('777000111');
    await call.ring(base, '101');
    await call.answer(base, '101');
    await call.end(base, '101');
    await relay.pipeline.drain();

    const page = async (cookie: string, path: string) =>
      (await fetch(`${base}${path}`, { headers: { cookie }, redirect: 'manual' })).text();
    // Alice's own list has it, with "call back" to her dial page.
    const mine = await page(aliceCookie, '/agent');
    expect(mine).toContain('+420 777 000 111');
    expect(mine).toContain('href="/agent/dial?number=%2B420777000111"');
    expect(await page(aliceCookie, '/agent/calls')).toContain('+420 777 000 111');
    // Carl's pages and stream never.
    for (const path of [
      '/agent',
      '/agent/calls',
      `/agent?before=${encodeURIComponent('9999-01-01T00:00:00.000Z|3cx|x')}`,
    ]) {
      const html = await page(carlCookie, path);
      expect(html).not.toContain('777 000 111');
      expect(html).not.toContain(call.id);
    }
    const carl = await Stream.open(base, carlCookie);
    cleanup.push(async () => carl.close());
    await carl.until((e) => e.event === 'view');
    expect(carl.events.map((e) => e.data).join()).not.toContain(call.id);
    // No admin page, no /api route.
    const consolePage = await fetch(`${base}/console`, {
      headers: { cookie: carlCookie },
      redirect: 'manual',
    });
    expect(consolePage.status).toBe(303);
    expect((await fetch(`${base}/api/calls`, { headers: { cookie: carlCookie } })).status).toBe(
      401,
    );
    // No stream without an agent session.
    expect((await fetch(`${base}/agent/events`)).status).toBe(401);
  });

  it('My calls pages through the agent’s own calls only, newest first', async () => {
    const { relay, base } = await start();
    const cookie = await signIn(base, '101');
    const numbers: string[] = [];
    for (let i = 0; i < 23; i++) {
      const number = `60100${String(1000 + i)}`;
      numbers.push(number);
      const mine = threeCx(number);
      await mine.ring(base, '101');
      await mine.end(base, '101');
      // Carl's calls between hers, which her list skips.
      if (i % 4 === 0) await threeCx(`73100${String(1000 + i)}`).ring(base, '103');
      // Each folded before the next: no two share a time.
      await relay.pipeline.drain();
    }
    await relay.pipeline.drain();
    const shown = (html: string): string[] =>
      [...html.matchAll(/<td class="num nowrap">\+420 601 00(\d) (\d{3})</g)].map(
        (m) => `60100${m[1]}${m[2]}`,
      );
    const first = await (await fetch(`${base}/agent`, { headers: { cookie } })).text();
    // Newest first.
    expect(shown(first)).toHaveLength(20);
    expect(shown(first)[0]).toBe(numbers[22]);
    expect(first).not.toContain('+420 731');
    const older = /href="(\/agent\?before=[^"]+)"[^>]*rel="next"/.exec(first)![1]!;
    const second = await (
      await fetch(`${base}${older.replace(/&amp;/g, '&')}`, { headers: { cookie } })
    ).text();
    expect(shown(second)).toHaveLength(3);
    expect(shown(second)).toContain(numbers[0]);
    expect(new Set([...shown(first), ...shown(second)])).toEqual(new Set(numbers));
    expect(second).not.toContain('rel="next"');
    expect(second).not.toContain('+420 731');
  });

  it('a queue call a colleague took is "answered by" them, without their recording or CRM record', async () => {
    const { relay, base } = await start();
    const alice = await signIn(base, '101');
    const bob = await signIn(base, '102');
    // Jana's number: HubSpot has her, so a delivered call links to her record.
    const call = threeCx();
    await call.ring(base, '800', 'queue');
    await call.answer(base, '102');
    await call.end(base, '102');
    await relay.pipeline.drain();
    const calls = async (cookie: string): Promise<string> =>
      (await fetch(`${base}/agent/calls`, { headers: { cookie } })).text();
    const rowOf = (html: string): string =>
      /<tr data-call="3cx\/[^"]+">(?:(?!<\/tr>)[\s\S])*774 852 629[\s\S]*?<\/tr>/.exec(html)![0];
    // Bob took it: once delivered, his row opens it in HubSpot.
    const deadline = Date.now() + 15_000;
    while (!rowOf(await calls(bob)).includes('Open in hubspot')) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 100));
    }
    // Alice's row: it rang her queue, Bob answered; nothing of his to open.
    const hers = rowOf(await calls(alice));
    expect(hers).not.toContain('Open in hubspot');
    expect(hers).not.toContain('Listen');
    expect(hers).toContain('answered by Bob');
  });

  it('My calls reads one page of her calls from the store, however many others lie between', async () => {
    const { relay, base, listed } = await start();
    const cookie = await signIn(base, '101');
    const numbers: string[] = [];
    const hers = async (i: number, queue = false): Promise<void> => {
      const number = `60100${String(1000 + i)}`;
      numbers.push(number);
      const call = threeCx(number);
      if (queue) {
        // Her ring group's call, answered by Bob: hers as well.
        await call.ring(base, '800', 'queue');
        await call.answer(base, '102');
        await call.end(base, '102');
      } else {
        await call.ring(base, '101');
        await call.end(base, '101');
      }
      await relay.pipeline.drain();
    };
    for (let i = 0; i < 5; i++) await hers(i, i === 2);
    // 210 of Carl's calls between her older and her newer ones: more than the store used to be
    // read at a time.
    for (let i = 0; i < 210; i += 15) {
      await Promise.all(
        Array.from({ length: 15 }, (_, j) =>
          threeCx(`731${String(100000 + i + j)}`).ring(base, '103'),
        ),
      );
    }
    await relay.pipeline.drain();
    for (let i = 5; i < 22; i++) await hers(i);
    await relay.pipeline.drain();

    const shown = (html: string): string[] =>
      [...html.matchAll(/<td class="num nowrap">\+420 601 00(\d) (\d{3})</g)].map(
        (m) => `60100${m[1]}${m[2]}`,
      );
    const view = async (path: string): Promise<{ html: string; reads: number }> => {
      const before = listed();
      const html = await (await fetch(`${base}${path}`, { headers: { cookie } })).text();
      return { html, reads: listed() - before };
    };
    const first = await view('/agent');
    // The 17 newest, then 3 from beyond Carl's calls: one read of the store.
    expect(shown(first.html)).toEqual(numbers.slice(2).reverse());
    expect(first.html).not.toContain('+420 731');
    expect(first.reads).toBe(1);
    const older = /href="(\/agent\?before=[^"]+)"[^>]*rel="next"/.exec(first.html)![1]!;
    const second = await view(older.replace(/&amp;/g, '&'));
    expect(shown(second.html)).toEqual(numbers.slice(0, 2).reverse());
    expect(second.html).not.toContain('+420 731');
    expect(second.html).not.toContain('rel="next"');
    expect(second.reads).toBe(1);
  });

  it('the stream ends when the agent signs out', async () => {
    const { base } = await start();
    const cookie = await signIn(base, '101');
    const stream = await Stream.open(base, cookie);
    cleanup.push(async () => stream.close());
    const html = await (await fetch(`${base}/agent`, { headers: { cookie } })).text();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
    const out = await fetch(`${base}/agent/sign-out`, {
      method: 'POST',
      redirect: 'manual',
      headers: { origin: base, 'sec-fetch-site': 'same-origin', cookie },
      body: new URLSearchParams({ _csrf: csrf }),
    });
    expect(out.status).toBe(303);
    // At once, not at the next session look (every 5 s): the sign-out tells this process's streams.
    await stream.untilEnded(2500);
    expect((await fetch(`${base}/agent/events`, { headers: { cookie } })).status).toBe(401);
  });

  it('open streams cost one session look per session every few seconds, whatever the tabs', async () => {
    const { base, sessionLooks } = await start();
    const alice = await signIn(base, '101');
    const bob = await signIn(base, '102');
    const tabs = await Promise.all(
      [alice, alice, alice, alice, bob, bob].map((cookie) => Stream.open(base, cookie)),
    );
    cleanup.push(async () => tabs.forEach((t) => t.close()));
    const before = sessionLooks();
    // Six streams, two sessions: one look per session per 5 s, so at most four in 6 s (a stream
    // that looked every 2 s on its own made 18).
    await new Promise((r) => setTimeout(r, 6000));
    expect(sessionLooks() - before).toBeLessThanOrEqual(4);
    expect(tabs.every((t) => !t.ended)).toBe(true);
  });
});
