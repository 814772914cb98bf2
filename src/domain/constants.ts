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
] as const;
export const DIRECTIONS = ['inbound', 'outbound'] as const;
export const OUTCOMES = ['answered', 'missed', 'busy', 'failed'] as const;
export const STATUSES = ['ringing', 'in-progress', 'ended'] as const;
export const TRANSFER_KINDS = ['blind', 'attended', 'unknown'] as const;
