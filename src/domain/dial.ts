// The kinds of phone number click-to-call tells apart (libphonenumber's types, as relay.yaml spells
// them under dial.allowTypes), the ones it dials unless told otherwise (those a person answers),
// and what a call to place and a placed call are, for every path that places one.

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

/** A call to place: the PBX rings the agent's extension, then dials the number. */
export interface DialRequest {
  source: string;
  agent: string;
  number: string;
  /** Who placed it, as the call's originatedBy will say: "api:admin", "link:105". */
  by: string;
}

export interface DialResult {
  chid: string;
  /** The stored request holding the PBX's answer. */
  id: number;
  /** The number as dialled (E.164). */
  number: string;
}
