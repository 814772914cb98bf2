// What an `agents:` entry of a CRM target may map an extension to: a user's email (the CRM is
// asked who that is) or the CRM's numeric user id. One predicate, used by the targets' config
// schema and by `callrelay init`, so that what init accepts is exactly what check accepts.

import { z } from 'zod';

/** A numeric CRM user id, used as it is. */
export const isNumericUserId = (v: string): boolean => /^\d+$/.test(v);

/** Whether `v` can name a CRM user: a numeric id, or an address of the form name@domain.tld. */
export function isAgentValue(v: string): boolean {
  return isNumericUserId(v) || /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/.test(v);
}

/** What to write instead, for an error that names the place. */
export const AGENT_VALUE_HINT =
  "expected the CRM user's email (alice@example.com) or numeric user id (12345)";

/** `agents:` of a CRM target: extension -> email or numeric user id (unquoted in YAML too). */
export const AgentsSchema = z
  .record(z.string(), z.coerce.string().refine(isAgentValue, { message: AGENT_VALUE_HINT }))
  .default({});
