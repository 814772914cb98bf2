// The kinds of phone number click-to-call tells apart (libphonenumber's types, as relay.yaml spells
// them under dial.allowTypes), and the ones it dials unless told otherwise: those a person answers.

export const NUMBER_TYPES = [
  'fixed-line',
  'mobile',
  // Plans that do not tell the two apart (the US, Canada): a person either way.
  'fixed-line-or-mobile',
  'toll-free',
  'premium-rate',
  'shared-cost',
  'voip',
  'personal-number',
  'pager',
  'uan',
  'voicemail',
] as const;

export type NumberType = (typeof NUMBER_TYPES)[number];

export const DEFAULT_DIAL_TYPES: NumberType[] = [
  'fixed-line',
  'mobile',
  'fixed-line-or-mobile',
  'toll-free',
];
