// HubSpot's batch endpoints for call engagements (docs/crm-notes.md A.1): under a backlog the
// creates and updates waiting for the ten-second window go as one `batch/create` or
// `batch/update` of up to 100 inputs (kit/batcher.ts decides when). An answer is 201/200 when
// every input was written, 207 with an error per failed input otherwise. Results come back in
// no promised order, so each is matched to its input by objectWriteTraceId (the create token, or
// the object id), falling back to hs_call_external_id or id. An input the answer says nothing
// about counts as a lost answer: its delivery looks for it before creating again (create-once),
// unless the answer accounts for it as refused (outcomes, below).

import { Batcher, type ItemOutcome } from '../kit/batcher.js';
import type { CrmClient } from '../kit/client.js';
import { DeliveryError } from '../kit/errors.js';
import type { WindowLimiter } from '../kit/limiter.js';

/** HubSpot's documented batch size. */
export const BATCH_MAX = 100;

export interface CallCreate {
  properties: Record<string, string>;
  associations: unknown[];
  /** hs_call_external_id, which `properties` carries too. */
  token: string;
}

export interface CallUpdate {
  id: string;
  properties: Record<string, string>;
}

export interface BatchAnswer {
  results?: { id: string; objectWriteTraceId?: string; properties?: Record<string, unknown> }[];
  errors?: {
    category?: string;
    message?: string;
    objectWriteTraceId?: string;
    context?: Record<string, string[] | undefined>;
  }[];
}

type BatchResult = NonNullable<BatchAnswer['results']>[number];

/** A created call's input: its create token, echoed or read from the properties it was given. */
export const createdKey = (r: BatchResult): string =>
  r.objectWriteTraceId ?? String(r.properties?.hs_call_external_id ?? '');

/** An updated call's input: the call's id, echoed or as the result names it. */
export const updatedKey = (r: BatchResult): string => r.objectWriteTraceId ?? r.id;

export function callCreates(http: CrmClient, limiter: WindowLimiter): Batcher<CallCreate, string> {
  return new Batcher<CallCreate, string>({
    limiter,
    max: BATCH_MAX,
    one: async (c, paced) => {
      const res = await http.call({
        method: 'POST',
        path: '/crm/v3/objects/calls',
        json: { properties: c.properties, associations: c.associations },
        idempotent: false,
        what: 'creating the call engagement',
        ...(paced ? { paced } : {}),
      });
      // No id: create-once says so (and keeps the intent to look for it).
      return String((res.body as { id?: string }).id ?? '');
    },
    many: async (items, paced) => {
      const what = `creating ${items.length} call engagements in one batch`;
      const res = await http.call({
        method: 'POST',
        path: '/crm/v3/objects/calls/batch/create',
        json: {
          inputs: items.map((c) => ({
            properties: c.properties,
            associations: c.associations,
            objectWriteTraceId: c.token,
          })),
        },
        idempotent: false,
        what,
        paced,
      });
      return outcomes(
        items.map((c) => c.token),
        res.body as BatchAnswer,
        createdKey,
        what,
      );
    },
  });
}

export function callUpdates(http: CrmClient, limiter: WindowLimiter): Batcher<CallUpdate, void> {
  return new Batcher<CallUpdate, void>({
    limiter,
    max: BATCH_MAX,
    one: async (u, paced) => {
      await http.call({
        method: 'PATCH',
        path: `/crm/v3/objects/calls/${u.id}`,
        json: { properties: u.properties },
        idempotent: true,
        what: `updating call ${u.id}`,
        ...(paced ? { paced } : {}),
      });
    },
    many: async (items, paced) => {
      const what = `updating ${items.length} calls in one batch`;
      const res = await http.call({
        method: 'POST',
        path: '/crm/v3/objects/calls/batch/update',
        json: {
          inputs: items.map((u) => ({
            id: u.id,
            properties: u.properties,
            objectWriteTraceId: u.id,
          })),
        },
        idempotent: true,
        what,
        paced,
      });
      const done = outcomes(
        items.map((u) => u.id),
        res.body as BatchAnswer,
        updatedKey,
        what,
      );
      return done.map((o) => (o.ok ? { ok: true, value: undefined } : o));
    },
  });
}

/**
 * Per input key, in the inputs' order: the written object's id, or the error HubSpot gave. An
 * input the answer does not name is ambiguous, unless every result was matched to an input: a
 * 207 lists each object it wrote, so the inputs left over were not written, and the errors that
 * name no input (as many as they) are theirs.
 */
export function outcomes(
  keys: string[],
  body: BatchAnswer,
  keyOf: (r: BatchResult) => string,
  what: string,
): ItemOutcome<string>[] {
  const inputs = new Set(keys);
  const found = new Map<string, ItemOutcome<string>>();
  let strays = 0;
  for (const r of body?.results ?? []) {
    const k = keyOf(r);
    if (inputs.has(k)) found.set(k, { ok: true, value: String(r.id) });
    else strays++;
  }
  const untied: NonNullable<BatchAnswer['errors']> = [];
  for (const e of body?.errors ?? []) {
    const ctx = e.context ?? {};
    const named = [
      e.objectWriteTraceId,
      ...(ctx.objectWriteTraceId ?? []),
      ...(ctx.ids ?? []),
      ...(ctx.id ?? []),
    ].filter((k): k is string => !!k && inputs.has(k));
    if (!named.length) untied.push(e);
    for (const k of named)
      if (!found.has(k)) found.set(k, { ok: false, error: itemError(e, what) });
  }
  const rest = keys.filter((k) => !found.has(k));
  const theirs =
    strays === 0 && untied.length > 0 && untied.length === rest.length
      ? untiedError(untied, what)
      : null;
  return keys.map(
    (k) =>
      found.get(k) ??
      (theirs
        ? { ok: false, error: theirs }
        : {
            ok: false,
            error: new DeliveryError(`${what}: HubSpot's answer did not mention ${k}`, {
              retryable: true,
              // Perhaps written, perhaps not: create-once looks before creating again.
              ambiguous: true,
            }),
          }),
  );
}

/** Categories that mean HubSpot wrote nothing for the input. */
const NOT_WRITTEN = new Set(['VALIDATION_ERROR', 'OBJECT_NOT_FOUND', 'RATE_LIMITS']);

/**
 * The error of the inputs left over, from errors that do not say which input they are. Only
 * categories that mean "not written" settle it; any other leaves them perhaps written, so each
 * delivery looks before it creates again.
 */
function untiedError(errors: NonNullable<BatchAnswer['errors']>, what: string): DeliveryError {
  const said = [...new Set(errors.map((e) => e.category ?? 'an error'))].join(', ');
  if (!errors.every((e) => e.category && NOT_WRITTEN.has(e.category)))
    return new DeliveryError(`${what}: HubSpot's answer did not say which input failed (${said})`, {
      retryable: true,
      ambiguous: true,
    });
  const kinds = new Set(errors.map((e) => `${e.category}\u0000${e.message}`));
  if (kinds.size === 1) return itemError(errors[0]!, what);
  // Which input got which is unknown: each tries again (alone, if the backlog has gone).
  return new DeliveryError(
    `${what}: HubSpot refused ${errors.length} inputs without naming them (${said})`,
    { retryable: true },
  );
}

/** One input's error in a 207, as the single-object request would have failed. */
function itemError(e: NonNullable<BatchAnswer['errors']>[number], what: string): DeliveryError {
  const status =
    e.category === 'VALIDATION_ERROR'
      ? 400
      : e.category === 'OBJECT_NOT_FOUND'
        ? 404
        : e.category === 'RATE_LIMITS'
          ? 429
          : undefined;
  const said = [e.category, e.message].filter(Boolean).join(': ');
  return new DeliveryError(`${what}: ${said || 'an error without a message'}`, {
    // HubSpot named this input as failed: nothing was written for it, so retrying is safe; a
    // validation error or a missing object would fail the same way again.
    retryable: status === undefined || status === 429,
    ...(status === undefined ? {} : { status }),
  });
}
