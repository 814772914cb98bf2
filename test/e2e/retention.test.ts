// Retention as a running relay does it: on its hourly timer (here sped up, with the clock moved
// past store.keepRequestsDays), the raw requests of ended calls go and their records stay; with
// keepRequestsDays 0 nothing goes.

import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay } from '../../src/runtime.js';
import { sourceToken, tempDir, writeRelayYaml } from '../support.js';

const DAY = 86400_000;
const ended = JSON.stringify({
  event: 'incoming',
  id: '261101100000_5-1',
  callerid: '420774852629',
  user: '102',
  finishtype: 'Ok',
  transfer: 'False',
  did: '',
});

describe('retention', () => {
  for (const [keep, gone] of [
    ['    ', true],
    ['  keepRequestsDays: 0\n', false],
  ] as const)
    it(`${gone ? 'deletes' : 'keeps'} the requests of a call ended 91 days ago${gone ? '' : ' with keepRequestsDays 0'}`, async () => {
      const file = writeRelayYaml(tempDir(), { store: `sqlite: ./relay.db\n${keep}` });
      const relay = await startRelay(loadConfig(file, {}), undefined, {
        retention: { now: () => Date.now() + 91 * DAY, everyMs: 25 },
      });
      try {
        const res = await fetch(`http://127.0.0.1:${relay.port}/hooks/3cx/${sourceToken('3cx')}`, {
          method: 'POST',
          body: ended,
        });
        const { id } = (await res.json()) as { id: number };
        await relay.pipeline.drain();
        await new Promise((r) => setTimeout(r, 300));
        expect((await relay.store.getInbox(id)) === undefined).toBe(gone);
        expect((await relay.store.getCalls('261101100000_5'))[0]?.record.outcome).toBe('answered');
      } finally {
        await relay.close();
      }
    });
});
