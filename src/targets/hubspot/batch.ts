// HubSpot's batch endpoints for call engagements (docs/crm-notes.md A.1): under a backlog the
// creates and updates waiting for the ten-second window go as one `batch/create` or
// `batch/update` of up to 100 inputs (kit/batcher.ts decides when). An answer is 201/200 when
// every input was written, 207 with an error per failed input otherwise. Results come back in
// no promised order, so each is matched to its input by objectWriteTraceId (the create token, or
// the object id), falling back to hs_call_external_id or id. An input the answer says nothing
// about counts as a lost answer: its delivery looks for it before creating again (create-once).

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

interface BatchAnswer {
  results?: { id: string; objectWriteTraceId?: string; properties?: Record<string, unknown> }[];
  errors?: {
    category?: string;
    message?: string;
    objectWriteTraceId?: string;
    context?: Record<string, string[] | undefined>;
  }[];
}

export function callCreates(http: CrmClient, limiter: WindowLimiter): Batcher<CallCreate, string> {
  return new Batcher<CallCreate, string>({
    limiter,
    max: BATCH_MAX,
    one: async (c, since) => {
      const res = await http.call({
        method: 'POST',
        path: '/crm/v3/objects/calls',
        json: { properties: c.properties, associations: c.associations },
        idempotent: false,
        what: 'creating the call engagement',
        ...(since === undefined ? {} : { paced: { since } }),
      });
      // No id: create-once says so (and keeps the intent to look for it).
      return String((res.body as { id?: string }).id ?? '');
    },
    many: async (items, since) => {
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
        paced: { since },
      });
      return outcomes(
        items.map((c) => c.token),
        res.body as BatchAnswer,
        (r) => r.objectWriteTraceId ?? String(r.properties?.hs_call_external_id ?? ''),
        what,
      );
    },
  });
}

export function callUpdates(http: CrmClient, limiter: WindowLimiter): Batcher<CallUpdate, void> {
  return new Batcher<CallUpdate, void>({
    limiter,
    max: BATCH_MAX,
    one: async (u, since) => {
      await http.call({
        method: 'PATCH',
        path: `/crm/v3/objects/calls/${u.id}`,
        json: { properties: u.properties },
        idempotent: true,
        what: `updating call ${u.id}`,
        ...(since === undefined ? {} : { paced: { since } }),
      });
    },
    many: async (items, since) => {
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
        paced: { since },
      });
      const done = outcomes(
        items.map((u) => u.id),
        res.body as BatchAnswer,
        (r) => r.objectWriteTraceId ?? r.id,
        what,
      );
      return done.map((o) => (o.ok ? { ok: true, value: undefined } : o));
    },
  });
}

/** Per input key, in the inputs' order: the written object's id, or the error HubSpot gave. */
function outcomes(
  keys: string[],
  body: BatchAnswer,
  keyOf: (r: NonNullable<BatchAnswer['results']>[number]) => string,
  what: string,
): ItemOutcome<string>[] {
  const found = new Map<string, ItemOutcome<string>>();
  for (const r of body?.results ?? []) found.set(keyOf(r), { ok: true, value: String(r.id) });
  for (const e of body?.errors ?? []) {
    const ctx = e.context ?? {};
    const named = [
      e.objectWriteTraceId,
      ...(ctx.objectWriteTraceId ?? []),
      ...(ctx.ids ?? []),
      ...(ctx.id ?? []),
    ];
    for (const k of named)
      if (k && !found.has(k)) found.set(k, { ok: false, error: itemError(e, what) });
  }
  return keys.map(
    (k) =>
      found.get(k) ?? {
        ok: false,
        error: new DeliveryError(`${what}: HubSpot's answer did not mention ${k}`, {
          retryable: true,
          // Perhaps written, perhaps not: create-once looks before creating again.
          ambiguous: true,
        }),
      },
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
