// The canonical model: one call event (what an adapter makes of one webhook) and one call record
// (what the events of a call fold into). Versioned; config/call-event.schema.json and
// config/call-record.schema.json are generated from these, docs/canonical-model.md explains them.

import { z } from 'zod';

import {
  CLOSED_BY,
  DIRECTIONS,
  END_SCOPES,
  EVENT_TYPES,
  MODEL_VERSION,
  OUTCOMES,
  STATUSES,
  TRANSFER_KINDS,
} from './constants.js';

export * from './constants.js';

const Iso = z.iso.datetime({ offset: true }).meta({ description: 'ISO-8601 time in UTC.' });
const Seconds = z.number().nonnegative();
/** A call of more than a week is a provider's mistake (or 1e308), not a call. */
export const MAX_CALL_SEC = 7 * 86400;
const EventSeconds = Seconds.max(MAX_CALL_SEC, {
  message: `expected at most ${MAX_CALL_SEC} seconds (a week)`,
});

export const AiSchema = z.strictObject({
  summary: z.string().optional(),
  transcription: z.string().optional(),
  sentiment: z.number().optional().meta({ description: 'As the provider scores it (3CX: 1-5).' }),
});

export const CallEventSchema = z
  .strictObject({
    type: z.enum(EVENT_TYPES).meta({
      description:
        'ringing: a phone, queue or IVR rings (inbound). dialing: an agent dials out. answered: a leg is picked up. ' +
        'ended: a leg or the call ends. recording: recording URLs are ready. analysis: AI summary/transcript. ' +
        'report: a complete call report (start, answer, end, totals). originated: the PBX answered a click-to-call request. ' +
        'closed: made by the relay, never by an adapter: no event came for calls.closeAfterMin and no end was reported.',
    }),
    callId: z
      .string()
      .min(1)
      .optional()
      .meta({
        description:
          'Stays the same for the whole call. Required but for `originated` (joined on channelId) ' +
          'and for `recording` and `analysis` events that name only a legId: those join the call ' +
          'that has that leg, whenever its events arrive.',
      }),
    legId: z
      .string()
      .optional()
      .meta({ description: 'One leg (answered segment) of the call; transfers make new legs.' }),
    channelId: z.string().optional(),
    direction: z.enum(DIRECTIONS).optional(),
    at: Iso.optional().meta({
      description: 'When it happened, as the provider says; else the relay uses the receive time.',
    }),
    externalNumber: z.string().optional().meta({ description: 'The outside party, as sent.' }),
    externalE164: z
      .string()
      .optional()
      .meta({ description: "externalNumber in E.164, using the source's default country." }),
    did: z.string().optional(),
    agent: z
      .string()
      .optional()
      .meta({ description: 'Extension, queue, IVR or team member the event is about.' }),
    agentName: z.string().optional(),
    agentType: z
      .string()
      .optional()
      .meta({ description: 'As the provider names it (3CX: ext, queue, other).' }),
    outcome: z.enum(OUTCOMES).optional(),
    providerStatus: z
      .string()
      .optional()
      .meta({ description: "The provider's own status token, kept raw." }),
    transferKind: z
      .enum(TRANSFER_KINDS)
      .optional()
      .meta({ description: 'On `answered`: this leg came from a transfer.' }),
    transferred: z
      .boolean()
      .optional()
      .meta({ description: 'On `ended`: the leg ended by a transfer; the call goes on.' }),
    scope: z
      .enum(END_SCOPES)
      .optional()
      .meta({
        description:
          'On `ended`: call (the default) — the provider says the whole call ended; leg — only ' +
          'this leg (legId) ended: the call ends with it only when no other leg is still open.',
      }),
    durationSec: EventSeconds.optional(),
    talkSec: EventSeconds.optional(),
    startedAt: Iso.optional(),
    answeredAt: Iso.optional(),
    endedAt: Iso.optional(),
    recordings: z.array(z.string()).optional(),
    ai: AiSchema.optional(),
    endReason: z.string().optional(),
    campaign: z.string().optional(),
    originatedBy: z
      .string()
      .optional()
      .meta({ description: "`makecall` when the relay's own click-to-call placed it." }),
  })
  .meta({ title: `callrelay canonical call event v${MODEL_VERSION}` });

export type CallEvent = z.infer<typeof CallEventSchema>;
export type EventType = (typeof EVENT_TYPES)[number];
export type Outcome = (typeof OUTCOMES)[number];

export const LegSchema = z.strictObject({
  legId: z.string(),
  agent: z.string().nullable(),
  durationSec: Seconds.nullable(),
});

export const TransferSchema = z.strictObject({
  kind: z.enum(TRANSFER_KINDS),
  fromAgent: z.string().nullable(),
  toAgent: z.string().nullable(),
});

export const EventRefSchema = z.strictObject({
  type: z.enum(EVENT_TYPES),
  legId: z.string().nullable(),
  inboxId: z.number().int(),
  receivedAt: Iso,
});

export const CallRecordSchema = z
  .strictObject({
    schemaVersion: z.literal(MODEL_VERSION),
    callId: z.string(),
    source: z.string().meta({ description: 'The relay.yaml source it came in through.' }),
    provider: z.string().meta({ description: 'The adapter that mapped it.' }),
    channelId: z.string().nullable(),
    direction: z.enum(DIRECTIONS).nullable(),
    status: z.enum(STATUSES),
    outcome: z
      .enum(OUTCOMES)
      .nullable()
      .meta({ description: 'Set once the call ended (or a leg was answered).' }),
    providerStatus: z.string().nullable(),
    externalNumber: z.string().nullable(),
    externalE164: z.string().nullable(),
    did: z.string().nullable(),
    agent: z.string().nullable().meta({
      description: 'Who handled the call last; for a missed call, who the end event names.',
    }),
    agentName: z.string().nullable(),
    rang: z
      .array(z.string())
      .meta({ description: 'Extensions, queues and IVRs that rang, in order of arrival.' }),
    legs: z.array(LegSchema),
    transfers: z.array(TransferSchema),
    startedAt: Iso,
    answeredAt: Iso.nullable(),
    endedAt: Iso.nullable(),
    durationSec: Seconds.nullable(),
    talkSec: Seconds.nullable(),
    recordings: z.array(z.string()),
    ai: AiSchema.extend({ hasTranscription: z.boolean() }).nullable(),
    endReason: z.string().nullable(),
    campaign: z.string().nullable(),
    originatedBy: z.string().nullable(),
    events: z
      .array(EventRefSchema)
      .meta({ description: 'The events that built the record, in order of arrival.' }),
    closedBy: z
      .enum(CLOSED_BY)
      .nullable()
      .meta({
        description:
          'relay: the provider never reported the end; the relay closed the call after ' +
          'calls.closeAfterMin without events (endedAt and talk time unknown). A late end event ' +
          'replaces the close. null: the provider ended it, or it is still open.',
      }),
    truncated: z.boolean().meta({
      description:
        'More distinct events arrived for this call than the relay keeps (store.maxEventsPerCall): ' +
        'the record is built from the first ones; the rest are kept as raw requests only.',
    }),
  })
  .meta({ title: `callrelay call record v${MODEL_VERSION}` });

export type CallRecord = z.infer<typeof CallRecordSchema>;
export type Leg = z.infer<typeof LegSchema>;
export type Transfer = z.infer<typeof TransferSchema>;

/** An event as stored: where it came from and when, plus its identity for deduplication. */
export interface StoredEvent {
  inboxId: number;
  idx: number;
  receivedAt: string;
  key: string;
  event: CallEvent;
}
