// The CRM client's budget (a REST recipe's `budget:`) against a real local server: a delivery's
// request waits a few seconds at most for it (a lease is 5 minutes and a delivery sends several),
// and a request refused by the budget hands back the pacing slot its batch took for it.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalServer } from '../../../test/fakes/local-server.js';
import { CrmClient } from './client.js';
import { BudgetSpent } from './errors.js';
import { WindowLimiter } from './limiter.js';

class OkServer extends LocalServer {
  hits = 0;
  protected handle(_req: IncomingMessage, res: ServerResponse): void {
    this.hits++;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  }
}

describe('CrmClient budget', () => {
  const open: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
  });

  async function world(
    budget: WindowLimiter,
    limiter = new WindowLimiter(100, 1000),
  ): Promise<{ srv: OkServer; client: CrmClient }> {
    const srv = await new OkServer().start();
    const client = new CrmClient({
      crm: 'Test CRM',
      baseUrl: srv.url,
      headers: {},
      limiter,
      budget,
      quickRetries: 0,
    });
    open.push(srv, client);
    return { srv, client };
  }
  const get = { method: 'GET', path: '/x', idempotent: true, what: 'reading x' } as const;

  it("a delivery's request waits a few seconds at most: a window freeing later sends it back", async () => {
    // The window frees in 8 s: longer than a delivery may wait, far shorter than MAX_WAIT_MS.
    const { srv, client } = await world(new WindowLimiter(1, 8000));
    await client.call(get);
    const t0 = Date.now();
    const err = await client.call(get).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BudgetSpent);
    expect(err).toMatchObject({ retryable: true });
    expect((err as BudgetSpent).retryAfterMs).toBeGreaterThan(5000);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(srv.hits).toBe(1);
  });

  it('a batched request the budget refuses hands back the pacing slot taken for it', async () => {
    const budget = new WindowLimiter(1, 3_600_000);
    const limiter = new WindowLimiter(1, 3_600_000);
    const { srv, client } = await world(budget, limiter);
    budget.tryAcquire()!(); // the budget is spent for an hour
    const since = performance.now();
    const answered = await limiter.acquire(); // as kit/batcher.ts takes it
    await expect(client.call({ ...get, paced: { since, answered } })).rejects.toBeInstanceOf(
      BudgetSpent,
    );
    // Never sent: the only pacing slot is free again.
    expect(limiter.tryAcquire()).toBeTypeOf('function');
    expect(srv.hits).toBe(0);
  });
});
