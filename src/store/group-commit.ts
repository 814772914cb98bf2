// Group commit: requests that arrive while a commit is being written wait for the next one, and
// each commit writes all of them in one transaction (one fsync). Under load a batch grows, so the
// fsync cost is shared; when idle a request is committed on the next turn of the event loop.

import type { NewInbox, Store } from './types.js';

interface Waiter {
  item: NewInbox;
  resolve: (id: number) => void;
  reject: (err: unknown) => void;
}

export class GroupCommitter {
  private queue: Waiter[] = [];
  private scheduled = false;
  private running = false;

  constructor(
    private readonly store: Store,
    private readonly onCommitted: () => void = () => {},
    private readonly maxBatch = 512,
  ) {}

  submit(item: NewInbox): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.scheduled && !this.running) {
        this.scheduled = true;
        setImmediate(() => void this.run());
      }
    });
  }

  private async run(): Promise<void> {
    this.scheduled = false;
    this.running = true;
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          const ids = await this.store.insertInbox(batch.map((w) => w.item));
          batch.forEach((w, i) => w.resolve(ids[i]!));
          // After every commit, not when the queue runs dry: under steady load it never does,
          // and folding (which stops after a short batch) would wait for its timer.
          this.onCommitted();
        } catch (err) {
          for (const w of batch) w.reject(err);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
