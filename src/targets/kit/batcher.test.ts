// The batcher (batcher.ts): who rides in a batch request, whose trace shows which request, and
// what a batch refused whole comes to for each item.

import { describe, expect, it } from 'vitest';
import { Batcher, type ItemOutcome } from './batcher.js';
import { DeliveryError } from './errors.js';
import { WindowLimiter } from './limiter.js';
import { recordRequest, traceRequests, type RequestTrace } from './trace.js';

const request = (operation: string, waitedMs = 0): RequestTrace => ({
  operation,
  method: 'POST',
  path: '/x',
  startedAt: new Date().toISOString(),
  durationMs: 1,
  waitedMs,
  status: 200,
  requestId: null,
  error: null,
});

/** A limiter of one request per 40 ms (or `windowMs`) whose first slot is taken: items queue. */
async function busyLimiter(windowMs = 40): Promise<WindowLimiter> {
  const limiter = new WindowLimiter(1, windowMs, Date.now, 0);
  (await limiter.acquire())(); // answered at once: the window runs from now
  return limiter;
}

function batcher(
  limiter: WindowLimiter,
  o: {
    max?: number;
    maxWaitMs?: number;
    many?: (items: string[]) => Promise<ItemOutcome<string>[]>;
  } = {},
) {
  const alone: string[] = [];
  const batches: string[][] = [];
  const b = new Batcher<string, string>({
    limiter,
    max: o.max ?? 100,
    ...(o.maxWaitMs === undefined ? {} : { maxWaitMs: o.maxWaitMs }),
    one: async (item) => {
      alone.push(item);
      recordRequest(request(`one ${item}`));
      return `id-${item}`;
    },
    many: async (items) => {
      batches.push(items);
      recordRequest(request(`many ${items.join(',')}`, 30));
      return o.many
        ? o.many(items)
        : items.map((i) => ({ ok: true, value: `id-${i}` }) as ItemOutcome<string>);
    },
  });
  return { b, alone, batches };
}

describe('batching while the limiter makes requests wait', () => {
  it('puts the shared request in each trace once, counted in one of them', async () => {
    const { b, batches } = batcher(await busyLimiter());
    const traces = [[], [], []] as RequestTrace[][];
    const ids = await Promise.all(
      ['a', 'b', 'c'].map((item, n) => traceRequests(traces[n]!, () => b.submit(item))),
    );
    expect(ids).toEqual(['id-a', 'id-b', 'id-c']);
    expect(batches).toEqual([['a', 'b', 'c']]);
    expect(traces.map((t) => t.map((r) => r.operation))).toEqual(Array(3).fill(['many a,b,c']));
    expect(traces.filter((t) => !t[0]!.copy)).toHaveLength(1);
  });

  it('records an item sent alone in its own trace only, never in the trace that started it', async () => {
    // Items of one per request: the second goes in the loop the first delivery's submit started.
    const { b, alone } = batcher(await busyLimiter(), { max: 1 });
    const first: RequestTrace[] = [];
    await Promise.all([traceRequests(first, () => b.submit('x')), b.submit('y')]);
    expect(alone).toEqual(['x', 'y']);
    expect(first.map((r) => r.operation)).toEqual(['one x']);
  });

  it('sends each item alone after a batch refused as invalid, and none after a 401', async () => {
    const invalid = batcher(await busyLimiter(), {
      many: async () => {
        throw new DeliveryError('400 VALIDATION_ERROR', { retryable: false, status: 400 });
      },
    });
    expect(await Promise.all(['a', 'b'].map((i) => invalid.b.submit(i)))).toEqual(['id-a', 'id-b']);
    expect(invalid.alone.sort()).toEqual(['a', 'b']);

    const refused = batcher(await busyLimiter(), {
      many: async () => {
        throw new DeliveryError('401 INVALID_AUTHENTICATION', { retryable: false, status: 401 });
      },
    });
    const settled = await Promise.allSettled(['a', 'b'].map((i) => refused.b.submit(i)));
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);
    expect(refused.alone).toEqual([]);
  });

  it('fails an item the batch answer says nothing about as perhaps written', async () => {
    const { b } = batcher(await busyLimiter(), {
      // An outcome for the first item only.
      many: async (items) => [{ ok: true, value: `id-${items[0]}` }],
    });
    const [a, c] = await Promise.allSettled([b.submit('a'), b.submit('c')]);
    expect(a).toEqual({ status: 'fulfilled', value: 'id-a' });
    expect(c.status).toBe('rejected');
    const e = (c as PromiseRejectedResult).reason as DeliveryError;
    expect([e.retryable, e.ambiguous]).toEqual([true, true]);
  });

  it('sends items back once they have waited their longest wait in the queue', async () => {
    // One request per 200 ms, one item per request, 300 ms to wait: the first item leaves at
    // 200, the second's slot would come at 400 and the third's at 600, past their 300.
    const { b, alone } = batcher(await busyLimiter(200), { max: 1, maxWaitMs: 300 });
    const [x, y, z] = await Promise.allSettled([b.submit('x'), b.submit('y'), b.submit('z')]);
    expect(x.status).toBe('fulfilled');
    expect([y.status, z.status]).toEqual(['rejected', 'rejected']);
    expect((y as PromiseRejectedResult).reason).toMatchObject({ retryable: true });
    expect(alone).toEqual(['x']);
  });
});
