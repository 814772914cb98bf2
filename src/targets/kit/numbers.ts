// The two numbers of a call as every CRM gets them, decided once so that HubSpot and Pipedrive
// show the same call with the same numbers: the caller in E.164 when it parses, and the company
// side as the dialled number (DID) in E.164, never an extension (an extension is no phone
// number; the agent is named elsewhere).

import { parsePhoneNumberFromString } from 'libphonenumber-js';
import type { CallRecord } from '../../domain/model.js';

/** The external party: E.164 when the record has it, else the number as the provider sent it. */
export const externalNumber = (c: CallRecord): string => c.externalE164 ?? c.externalNumber ?? '';

/**
 * The company side: the DID in E.164 ("DID-420222000320" and "420222000320" are +420222000320),
 * else the DID as sent, else nothing.
 */
export function companyNumber(c: CallRecord): string {
  if (!c.did) return '';
  const digits = c.did.replace(/^DID-/i, '').trim();
  const parsed = parsePhoneNumberFromString(digits.startsWith('+') ? digits : `+${digits}`);
  return parsed?.isValid() ? parsed.number : c.did;
}
