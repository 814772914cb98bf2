// Closing a call whose end never came (the PBX lost the webhook, the relay was unreachable for
// that one request). After calls.closeAfterMin without events the relay stores a request of its
// own, kind `relay-close`, whose one event (`closed`) the fold reads: the call ends, missed if
// nobody answered, answered with unknown talk time otherwise (domain/fold.ts). Being stored data,
// a refold or a replay keeps the close, and a late real end replaces it.
//
// The event's content is the call id alone, so its content key is the same whichever instance
// closes the call: a second close is a repeat and changes nothing (domain/inbox.ts).

import type { CallEvent } from './model.js';
import type { MapResult, RawRequest } from './request.js';

/** The rule a close request is filed under. */
export const CLOSE_RULE = 'relay-close';

/** An open call with no event since the cutoff, as the store finds it. */
export interface StaleCall {
  source: string;
  callId: string;
  /** The adapter of the call's latest request: the close names the call's provider unchanged. */
  provider: string;
  /** When the call's newest event was received. */
  lastEventAt: string;
}

/** What a close request's body says (JSON): enough to map it again, and why it was made. */
export interface CloseBody {
  callId: string;
  lastEventAt: string;
  closeAfterMin: number;
  reason: string;
}

/** The close event of a call: the same content, and so the same content key, every time. */
export const closeEvent = (callId: string): CallEvent => ({ type: 'closed', callId });

/**
 * The request the relay stores to close `call` at `at` (cutoff `before`), already mapped. Its
 * shape is a store's NewInbox.
 */
export function closeRequest(
  call: StaleCall,
  at: string,
  before: string,
): { req: RawRequest; result: MapResult; provider: string } {
  const closeAfterMin = Math.round((Date.parse(at) - Date.parse(before)) / 600) / 100;
  const body: CloseBody = {
    callId: call.callId,
    lastEventAt: call.lastEventAt,
    closeAfterMin,
    reason: `no event for ${closeAfterMin} min and no end reported: closed by the relay`,
  };
  return {
    req: {
      source: call.source,
      kind: 'relay-close',
      receivedAt: at,
      method: 'RELAY',
      query: '',
      contentType: 'application/json',
      headers: {},
      body: Buffer.from(JSON.stringify(body)),
    },
    result: mapClose(body),
    provider: call.provider,
  };
}

const mapClose = (b: Pick<CloseBody, 'callId'>): MapResult => ({
  status: 'mapped',
  rule: CLOSE_RULE,
  events: [closeEvent(b.callId)],
});

/** Map a stored close request again (a replay): the same event, whatever the adapter says. */
export function mapCloseRequest(body: Buffer): MapResult {
  try {
    const b = JSON.parse(body.toString('utf8')) as Partial<CloseBody> | null;
    if (b && typeof b.callId === 'string' && b.callId) return mapClose({ callId: b.callId });
  } catch {
    // Falls through: reported below.
  }
  return {
    status: 'unmapped',
    rule: CLOSE_RULE,
    code: 'RELAY_ERR_UNPARSEABLE_BODY',
    message: 'a close request of the relay without a call id in its JSON body',
  };
}
