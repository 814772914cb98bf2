// How the relay reads what a phone system sends: a caller's number as E.164, and the literal
// "[Name]" a 3CX template variable arrives as when 3CX has no value for it. One reading, shared by
// the adapters' helpers (ingest/, $e164 and $given) and the caller-ID lookup (callerid/), so that a
// number found at ring time is the number its journaled call carries, and so matched at delivery.

import { parsePhoneNumberFromString, type CountryCode, type PhoneNumber } from 'libphonenumber-js';

/** A template variable sent as its own name, unfilled: `[Summary]`, `[Contact::ContactID]`. */
export const UNFILLED_VARIABLE = /^\[[A-Za-z0-9_:]+\]$/;

/**
 * The number in E.164, from what a phone system sent: "+420…", "00420…", a "+" that arrived as a
 * space (a query string), digits without "+", or a national number of `defaultCountry`.
 * Undefined when it is no valid number: only valid numbers, because a delivery matches contacts
 * by the E.164 a call carries, and a merely "possible" reading would find at ring time a number
 * the journaled call never gets.
 */
export function phoneE164(asked: string, defaultCountry?: string): string | undefined {
  // A leading "+" sent unescaped in a query string arrives as a space.
  const plus = /^\s+\d/.test(asked);
  const raw = asked.trim().replace(/[\s().\-/]/g, '');
  const pick = (...candidates: (PhoneNumber | undefined)[]): string | undefined =>
    candidates.find((p) => p?.isValid())?.number;
  const country = defaultCountry?.toUpperCase() as CountryCode | undefined;
  if (!/^\+?\d{3,17}$/.test(raw)) {
    // Not digits alone ("tel:+420…", "Jana <+420…>"): libphonenumber finds the number in the text.
    if (!/\d{3}/.test(raw)) return undefined;
    return pick(
      parsePhoneNumberFromString(asked.trim(), country ? { defaultCountry: country } : {}),
    );
  }
  if (raw.startsWith('+') || plus)
    return pick(parsePhoneNumberFromString(`+${raw.replace(/^\+/, '')}`));
  if (raw.startsWith('00')) return pick(parsePhoneNumberFromString(`+${raw.slice(2)}`));
  const national = country ? parsePhoneNumberFromString(raw, country) : undefined;
  // "0…" is a trunk prefix: national. Other digits may be either: a valid reading wins, the
  // source's own country first.
  if (raw.startsWith('0')) return pick(national);
  return pick(national, parsePhoneNumberFromString(`+${raw}`));
}
