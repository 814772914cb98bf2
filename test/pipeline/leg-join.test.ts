// A recording webhook that names only the leg it was made on (Twilio starts a recording on the
// dialed child leg and sends that leg's id, not the parent call's) joins its call through the
// leg: through a YAML adapter and the real pipeline into a SQLite store (flows.ts runFlow), in
// every order of arrival, and a recording whose leg never shows up makes no call at all.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFlow, type Flow } from '../../src/flows.js';
import { loadAdapter } from '../../src/ingest/adapter.js';
import { tempDir } from '../support.js';

const ADAPTER = [
  'adapter: legs',
  'version: 1',
  'fields:',
  '  callId: call',
  '  legId: leg',
  'events:',
  '  - name: ringing',
  "    when: event = 'ringing'",
  '    type: ringing',
  '    fields: { agent: agent, direction: "\'inbound\'" }',
  '  - name: answered',
  "    when: event = 'answered'",
  '    type: answered',
  '    fields: { agent: agent }',
  '  - name: ended',
  "    when: event = 'ended'",
  '    type: ended',
  '  - name: recording',
  "    when: event = 'recording'",
  '    type: recording',
  '    fields: { recordings: url }',
  '',
].join('\n');

function adapter(): ReturnType<typeof loadAdapter> {
  const file = join(tempDir(), 'legs.yaml');
  writeFileSync(file, ADAPTER);
  return loadAdapter(file);
}

const post = (body: object): Flow['requests'][number] => ({
  method: 'POST',
  contentType: 'application/json',
  body: JSON.stringify(body),
});

// The parent call c1 rings; its child leg c1-child is answered and ends. The recording knows
// only the child leg.
const CALL = [
  post({ event: 'ringing', call: 'c1', leg: 'c1-parent', agent: '100' }),
  post({ event: 'answered', call: 'c1', leg: 'c1-child', agent: '101' }),
  post({ event: 'ended', call: 'c1', leg: 'c1-child' }),
];
const RECORDING = post({ event: 'recording', leg: 'c1-child', url: 'https://rec.example/1.wav' });

function orders<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) =>
    orders([...xs.slice(0, i), ...xs.slice(i + 1)]).map((r) => [x, ...r]),
  );
}

describe('a recording that names only its leg', () => {
  const a = adapter();

  it('joins its call through the leg, in every order of arrival', async () => {
    const seen = new Set<string>();
    for (const requests of orders([...CALL, RECORDING])) {
      const { calls } = await runFlow({ name: 'leg join', requests }, a);
      expect(calls).toHaveLength(1);
      expect(calls[0]).toMatchObject({
        callId: 'c1',
        status: 'ended',
        outcome: 'answered',
        agent: '101',
        recordings: ['https://rec.example/1.wav'],
      });
      const { events: _, startedAt: __, endedAt: ___, answeredAt: ____, ...rest } = calls[0]!;
      seen.add(JSON.stringify(rest));
    }
    // Apart from arrival times, every order gives the same record.
    expect(seen.size).toBe(1);
  });

  it('makes no call of a recording whose leg no call has', async () => {
    const { steps, calls } = await runFlow({ name: 'lone recording', requests: [RECORDING] }, a);
    expect(steps[0]!.result).toMatchObject({ status: 'mapped' });
    expect(calls).toEqual([]);
  });
});
