// The words every CRM gets for a call, whichever way it went, and where the provider never said
// (a direction-less call): no guessed direction, no gap where it would have been.

import { describe, expect, it } from 'vitest';
import { eventKey, foldCall } from '../../domain/fold.js';
import type { CallEvent, CallRecord } from '../../domain/model.js';
import { taskProperties } from '../hubspot/mapping.js';
import { followUpActivity } from '../pipedrive/mapping.js';
import { callTitle } from './summary.js';

/** A call nobody answered, folded from its events as the relay would. */
function unanswered(more: Partial<CallEvent>): CallRecord {
  const events: CallEvent[] = [
    { type: 'ringing', callId: 'c1', agent: '117', at: '2026-03-01T10:00:00.000Z', ...more },
    { type: 'ended', callId: 'c1', outcome: 'missed', at: '2026-03-01T10:00:20.000Z', ...more },
  ];
  return foldCall(
    events.map((event, i) => ({
      inboxId: i + 1,
      idx: 0,
      receivedAt: '2026-03-01T10:00:30.000Z',
      key: eventKey(event),
      event,
    })),
    { source: 'pbx', provider: 'pbx' },
  );
}

describe('call summaries', () => {
  it.each([
    [null, 'Call with +4930123456 (missed)', 'Missed call with +4930123456'],
    ['inbound', 'Inbound call from +4930123456 (missed)', 'Missed inbound call from +4930123456'],
    ['outbound', 'Outbound call to +4930123456 (missed)', 'Missed outbound call to +4930123456'],
  ] as const)(
    'direction %s: title and follow-ups say it in words',
    (direction, title, followUp) => {
      const c = unanswered({ ...(direction ? { direction } : {}), externalE164: '+4930123456' });
      expect(c.direction).toBe(direction);
      expect(callTitle(c)).toBe(title);
      expect(taskProperties(c).hs_task_body).toBe(
        `${followUp} at 2026-03-01T10:00:00.000Z (callrelay pbx/c1).`,
      );
      expect(followUpActivity(c, {}).note).toBe(`${followUp} (callrelay pbx/c1)`);
    },
  );

  it('an unknown number and an unknown direction read as plain words, with no double space', () => {
    const c = unanswered({ outcome: 'busy' });
    const body = taskProperties(c).hs_task_body!;
    for (const text of [body, callTitle(c), String(followUpActivity(c, {}).note)])
      expect(text).not.toMatch(/\s{2}/);
    expect(body).toBe(
      'Busy call with an unknown number at 2026-03-01T10:00:00.000Z (callrelay pbx/c1).',
    );
    expect(callTitle(c)).toBe('Call with unknown number (busy)');
  });
});
