// A received request as the relay stores it, byte for byte, and what an adapter made of it.

import type { ErrorCode } from './errors.js';
import type { CallEvent } from './model.js';

/**
 * webhook: sent by a provider; pbx-response: the PBX's answer to a request the relay made;
 * relay-close: made by the relay for a call whose end never came (domain/close.ts).
 */
export type RequestKind = 'webhook' | 'pbx-response' | 'relay-close';

export interface RawRequest {
  source: string;
  kind: RequestKind;
  receivedAt: string;
  method: string;
  /** Query string without the leading `?` and without any `token` parameter. */
  query: string;
  contentType: string | null;
  /** The few headers worth keeping (never Authorization). */
  headers: Record<string, string>;
  body: Buffer;
}

/** What mapping a request gave: events, a rule that says to ignore it, or why it could not. */
export type MapResult =
  | { status: 'mapped'; rule: string; events: CallEvent[] }
  | { status: 'ignored'; rule: string; code?: undefined; message: string }
  | { status: 'unmapped'; rule?: string; code: ErrorCode; message: string };
