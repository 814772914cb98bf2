// Graceful shutdown: on SIGTERM the relay stops taking work, finishes the deliveries under way,
// gives back its leases and exits 0; what was not started stays due for the next start.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { WebhookReceiver } from '../../src/targets/http/fake.js';
import { freePort, spawnRelay, tempDir, TOKENS, writeRelayYaml } from '../support.js';

describe('graceful shutdown', () => {
  it('finishes what is in flight, leaves the rest due, exits 0', async () => {
    const receiver = await new WebhookReceiver().start();
    receiver.delayMs = 800;
    const dir = tempDir();
    const port = await freePort();
    const config = writeRelayYaml(dir, {
      port,
      more: `targets:\n  - name: hook\n    type: http\n    url: ${receiver.url}\n    deliverOn: ended\n    concurrency: 1\n`,
    });
    const relay = await spawnRelay(config, port);
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/hooks/3cx/${TOKENS.threecx}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:03","Id":"261001100000_${i}-1"}`,
      });
      expect(res.status).toBe(200);
    }
    await receiver.waitFor(() => receiver.received.length >= 1);
    relay.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => relay.once('exit', r));
    expect(code).toBe(0);

    const store = new SqliteStore(join(dir, 'relay.db'));
    const rows = await store.listDeliveries({ limit: 10 });
    expect(rows.filter((d) => d.state === 'done')).toHaveLength(1); // the one under way was finished
    expect(rows.filter((d) => d.state === 'due')).toHaveLength(2); // the rest waits for the next start
    expect(await store.countInbox()).toMatchObject({ pending: 0, applied: 3 });
    await store.close();
    await receiver.close();
  }, 30_000);
});
