// The "relay killed mid-delivery, restarted on its store" procedure the recipe suites share:
// a relay process takes N 3CX calls, is SIGKILLed while creates are in the CRM fake's hands, and
// comes back on the same store. Each suite keeps its own CRM-specific assertions.

import type { ChildProcess } from 'node:child_process';
import { expect } from 'vitest';
import { spawnRelay, TOKENS } from '../support.js';

/** A 3CX "incoming, answered" webhook body for call `id` (its `-1` leg) lasting `duration`. */
export function threecxCall(id: string, duration = '00:08'): string {
  return `{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"${duration}","Id":"${id}-1"}`;
}

/** Polls `done` until it holds or `timeoutMs` passes, then asserts it holds. */
export async function waitUntil(
  done: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
  stepMs = 5,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await done()) && Date.now() < end) await new Promise((r) => setTimeout(r, stepMs));
  expect(await done()).toBe(true);
}

export interface KillMidDelivery {
  config: string;
  port: number;
  /** How many calls to post. */
  calls: number;
  /** The 3CX webhook body of call `i`. */
  body: (i: number) => string;
  /** True once enough creates are made and one is in the fake's hands, unanswered. */
  killWhen: () => boolean;
  /** Where the spawned process goes so the suite's cleanup kills it if the test fails early. */
  children: { push(c: ChildProcess): unknown };
}

/** Spawns a relay, posts the calls, SIGKILLs it once `killWhen` holds and waits for its exit. */
export async function killMidDelivery(o: KillMidDelivery): Promise<void> {
  const first = await spawnRelay(o.config, o.port);
  o.children.push(first);
  const url = `http://127.0.0.1:${o.port}/hooks/3cx/${TOKENS.threecx}`;
  for (let i = 0; i < o.calls; i++) {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: o.body(i),
    });
    expect(res.status).toBe(200);
  }
  await waitUntil(o.killWhen);
  first.kill('SIGKILL');
  await new Promise((r) => first.once('exit', r));
}

/** Spawns the relay again on its store; resolves once its admin API says `calls` are done. */
export async function restartUntilDone(
  o: Pick<KillMidDelivery, 'config' | 'port' | 'calls' | 'children'>,
): Promise<void> {
  o.children.push(await spawnRelay(o.config, o.port));
  const done = async (): Promise<number> => {
    const res = await fetch(`http://127.0.0.1:${o.port}/api/deliveries?state=done&limit=100`, {
      headers: { authorization: `Bearer ${TOKENS.admin}` },
    });
    return ((await res.json()) as { deliveries: unknown[] }).deliveries.length;
  };
  await waitUntil(async () => (await done()) >= o.calls, 15_000, 25);
  expect(await done()).toBe(o.calls);
}
