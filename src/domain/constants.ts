// The canonical model's version and value sets, without zod, so that the store's thread can use
// them without loading the schema library.

export const MODEL_VERSION = 1;

export const EVENT_TYPES = [
  'ringing',
  'dialing',
  'answered',
  'ended',
  'recording',
  'analysis',
  'report',
  'originated',
  'closed',
] as const;
/**
 * Events that may name only a leg (no call id): a recording started on a dialed leg knows that
 * leg's id, not the call's. The adapter lets them through; the store joins them to the call that
 * has the leg (domain/refold.ts joinsByLeg).
 */
export const LEG_JOINED_TYPES: ReadonlySet<string> = new Set<(typeof EVENT_TYPES)[number]>([
  'recording',
  'analysis',
]);
/** Made by the relay itself (a call whose end never came: domain/close.ts), never by an adapter. */
export const RELAY_EVENT_TYPES = ['closed'] as const;
export const DIRECTIONS = ['inbound', 'outbound'] as const;
export const OUTCOMES = ['answered', 'missed', 'busy', 'failed'] as const;
/** `incomplete`: only recordings or analyses (or the relay's close over them) so far: no call. */
export const STATUSES = ['ringing', 'in-progress', 'ended', 'incomplete'] as const;
/** Who closed a call whose end the provider never reported. */
export const CLOSED_BY = ['relay'] as const;
/** What an `ended` event ends: the whole call, or one leg of it. */
export const END_SCOPES = ['call', 'leg'] as const;
export const TRANSFER_KINDS = ['blind', 'attended', 'unknown'] as const;
