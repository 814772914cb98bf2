// Which numbers click-to-call may dial, decided in one place before any PBX is asked, for every
// path (dial links, the API and `callrelay dial`, the console): a real number, of a kind a person
// answers (not premium-rate or shared-cost: toll fraud runs up the bill of whoever pays the PBX),
// in a country the relay is told to call. The `max` metadata is the build that knows number types
// (the default `min` one answers undefined); it costs about 25 ms and 1.3 MB once, at start.

import { parsePhoneNumberFromString, type NumberType as LibType } from 'libphonenumber-js/max';
import { DEFAULT_DIAL_TYPES, type NumberType } from '../domain/dial.js';
import { RelayError, type ErrorCode } from '../domain/errors.js';

export interface NumberPolicy {
  allowTypes: readonly NumberType[];
  /** Unset: the source's defaultCountry only. */
  allowCountries?: readonly string[] | undefined;
}

export const DEFAULT_POLICY: NumberPolicy = { allowTypes: DEFAULT_DIAL_TYPES };

/** Why a call was refused before the PBX was asked, as the dial metric's reason label says it. */
export type Refusal =
  'number' | 'type' | 'country' | 'source' | 'agent' | 'link' | 'expired' | 'csrf';

/** A refusal of the catalogue, with the reason the metric counts. */
export class DialRefused extends RelayError {
  constructor(
    readonly reason: Refusal,
    code: ErrorCode,
    message?: string,
  ) {
    super(code, message);
  }
}

const refuse = (reason: 'number' | 'type' | 'country', message: string): DialRefused =>
  new DialRefused(
    reason,
    reason === 'number' ? 'RELAY_ERR_BAD_REQUEST' : 'RELAY_ERR_DIAL_REFUSED',
    message,
  );

export interface Dialable {
  /** E.164, as the PBX is asked to dial it (without the +). */
  e164: string;
  /** For people: "+420 774 852 629". */
  formatted: string;
  type: NumberType;
  country: string;
}

const typeName = (t: NonNullable<LibType>): NumberType =>
  t.toLowerCase().replace(/_/g, '-') as NumberType;

const article = (t: string): string => (/^[aeio]/.test(t) ? 'an' : 'a');

/** "fixed-line, mobile and toll-free" (fixed-line-or-mobile goes without saying beside both). */
function kinds(types: readonly NumberType[]): string {
  const shown = types.filter(
    (t) =>
      t !== 'fixed-line-or-mobile' || !(types.includes('fixed-line') && types.includes('mobile')),
  );
  return shown.length > 1 ? `${shown.slice(0, -1).join(', ')} and ${shown.at(-1)!}` : shown[0]!;
}

const list = (xs: readonly string[]): string => xs.join(', ');

/** The number as dialled, or a DialRefused that says why not and what setting widens it. */
export function checkNumber(
  number: string,
  source: { name: string; defaultCountry?: string | undefined },
  policy: NumberPolicy,
): Dialable {
  const dc = source.defaultCountry;
  const parsed = parsePhoneNumberFromString(
    number,
    dc as Parameters<typeof parsePhoneNumberFromString>[1],
  );
  if (!parsed?.isValid())
    throw refuse(
      'number',
      `"${number}" is not a phone number${dc ? ` (numbers without a country code are read as ${dc})` : '; give it with its country code'}`,
    );
  const e164 = parsed.number;
  const libType = parsed.getType();
  const type = libType && typeName(libType);
  if (!type || !policy.allowTypes.includes(type))
    throw refuse(
      'type',
      `${e164} is ${type ? `${article(type)} ${type} number` : 'a number of no known kind'}; ` +
        `click-to-call places only ${kinds(policy.allowTypes)} numbers (dial.allowTypes)`,
    );
  const countries = policy.allowCountries ?? (dc ? [dc] : []);
  if (!countries.length)
    throw refuse(
      'country',
      `click-to-call does not know which countries it may call: source ${source.name} has no ` +
        'defaultCountry; set dial.allowCountries in relay.yaml',
    );
  const where = policy.allowCountries
    ? `dial.allowCountries is ${list(countries)}`
    : `click-to-call dials only numbers in ${dc!}, the defaultCountry of source ${source.name} (dial.allowCountries widens it)`;
  if (!parsed.country)
    throw refuse(
      'country',
      `${e164} is an international service number (+${parsed.countryCallingCode}) in no country; ${where}`,
    );
  if (!countries.includes(parsed.country))
    throw refuse('country', `${e164} is in ${parsed.country}; ${where}`);
  return { e164, formatted: parsed.formatInternational(), type, country: parsed.country };
}
