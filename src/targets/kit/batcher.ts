// Gathering requests of the same kind into a CRM's batch endpoint while they wait for the rate
// limiter. Without a backlog a request finds a free slot at once and goes alone, exactly as it
// would without this; with a backlog every request that queues while the previous slot is awaited
// rides in the next request, up to the batch size, so requests per call fall below one exactly
// when the CRM's window is the bottleneck. Each delivery's trace gets the batch request (with its
// own wait), and each waiter gets its own result or error.

import { DeliveryError } from './errors.js';
import { MAX_WAIT_MS, type Paced, type Release, type WindowLimiter } from './limiter.js';
import { currentTrace, traceRequests, type TraceSink } from './trace.js';

/** How the batch went for one item: its result, or why it failed (it alone). */
export type ItemOutcome<R> = { ok: true; value: R } | { ok: false; error: DeliveryError };

export interface BatcherOptions<I, R> {
  /** The limiter every request of the target goes through. */
  limiter: WindowLimiter;
  /** The CRM's batch size (HubSpot: 100 inputs). */
  max: number;
  /** The longest an item waits for a slot, counted from when it was submitted (default 60 s). */
  maxWaitMs?: number;
  /**
   * One item alone, through the single-object endpoint. `paced` is set when the slot is taken
   * already (pass it to the client as it is); unset, the request waits its turn as usual.
   */
  one(item: I, paced?: Paced): Promise<R>;
  /** Several items in one request (slot taken: `paced`): an outcome per item, in their order. */
  many(items: I[], paced: Paced): Promise<ItemOutcome<R>[]>;
}

interface Waiting<I, R> {
  item: I;
  since: number;
  trace: TraceSink | undefined;
  resolve(r: R): void;
  reject(e: unknown): void;
}

export class Batcher<I, R> {
  private readonly queue: Waiting<I, R>[] = [];
  private taking = false;

  constructor(private readonly o: BatcherOptions<I, R>) {}

  /** The item's result, sent alone or in a batch with others that were waiting. */
  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, since: performance.now(), trace: currentTrace(), resolve, reject });
      if (!this.taking) void this.take();
    });
  }

  /** One slot at a time: whatever waits when it comes goes in the request it pays for. */
  private async take(): Promise<void> {
    this.taking = true;
    try {
      while (this.queue.length) {
        let release: Release;
        try {
          // The longest wait counts from when the oldest item began to wait, not from this turn.
          const waited = performance.now() - this.queue[0]!.since;
          release = await this.o.limiter.acquire(
            Math.max(0, (this.o.maxWaitMs ?? MAX_WAIT_MS) - waited),
          );
        } catch (err) {
          // A long hold-off: every waiting item goes back to the store, due when it ends.
          for (const w of this.queue.splice(0)) w.reject(err);
          break;
        }
        const batch = this.queue.splice(0, this.o.max);
        // The client hands the slot back with the answer; here only if it never got that far.
        void this.send(batch, release).finally(release);
      }
    } finally {
      this.taking = false;
    }
  }

  private async send(batch: Waiting<I, R>[], answered: Release): Promise<void> {
    const paced = { since: batch[0]!.since, answered };
    if (batch.length === 1) {
      const w = batch[0]!;
      await this.alone(w, paced);
      return;
    }
    let outcomes: ItemOutcome<R>[];
    try {
      outcomes = await traceRequests(fanOut(batch), () =>
        this.o.many(
          batch.map((w) => w.item),
          paced,
        ),
      );
    } catch (err) {
      // A batch refused for good (a 400 naming one bad input, say) must not dead-letter the
      // others with it: each tries again alone. Anything else (429, 5xx, a lost answer) is the
      // same for every item, and each delivery's own retry logic takes it from there.
      // A 401 or 403 (token, scope) would refuse each one alike: no use asking 100 more times.
      if (
        err instanceof DeliveryError &&
        !err.retryable &&
        (err.status === 400 || err.status === 422)
      ) {
        await Promise.all(batch.map((w) => this.alone(w)));
        return;
      }
      for (const w of batch) w.reject(err);
      return;
    }
    batch.forEach((w, i) => {
      const o = outcomes[i];
      if (o?.ok) w.resolve(o.value);
      else
        w.reject(
          o?.error ??
            new DeliveryError('the batch answer said nothing about this item', {
              retryable: true,
              ambiguous: true,
            }),
        );
    });
  }

  private async alone(w: Waiting<I, R>, paced?: Paced): Promise<void> {
    try {
      // Always its own trace, or none: this runs in the context of whoever started take().
      w.resolve(await traceRequests(w.trace ?? UNTRACED, () => this.o.one(w.item, paced)));
    } catch (err) {
      w.reject(err);
    }
  }
}

const UNTRACED: TraceSink = { push: () => undefined };

/**
 * One batch request in every waiting delivery's trace, each with the time it waited itself; all
 * but the first copy are marked as copies, so that the request is counted once.
 */
function fanOut<I, R>(batch: Waiting<I, R>[]): TraceSink {
  const first = batch[0]!.since;
  return {
    push: (t) => {
      let counted = false;
      for (const w of batch) {
        if (!w.trace) continue;
        const waitedMs = Math.max(0, Math.round(t.waitedMs - (w.since - first)));
        w.trace.push(counted ? { ...t, waitedMs, copy: true } : { ...t, waitedMs });
        counted = true;
      }
    },
  };
}
