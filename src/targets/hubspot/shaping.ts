// What relay.yaml shapes on a HubSpot call (docs/targets.md): the title, note and extra properties
// from the target's expressions, the company and open deal the call is also associated with
// (`associate`), and a property HubSpot refuses turned into a dead letter that names it and the
// expression's place. Facts: docs/crm-notes.md A.2 (association types, the rule) and A.4 (errors).

import type { CallRecord } from '../../domain/model.js';
import type { CrmClient } from '../kit/client.js';
import { callContext } from '../kit/context.js';
import { DeliveryError } from '../kit/errors.js';
import { Cache, SingleFlight } from '../kit/lookup.js';
import type { Other } from '../kit/phone-lookup.js';
import { asStrings, type Shape } from '../kit/shape.js';
import { playable } from './mapping.js';

/** HUBSPOT_DEFINED association types from a call: to a company, to a deal. */
export const CALL_TO_COMPANY = 182;
export const CALL_TO_DEAL = 206;
/** The contact -> company label HubSpot calls "Primary". */
const PRIMARY_COMPANY = 1;

/** The call's properties with the target's expressions applied, and which ones they set. */
export async function shapedProperties(
  shape: Shape,
  c: CallRecord,
  built: Record<string, string>,
  o: { target: string; contactId: string | null; others: Other<string>[]; owner?: string },
): Promise<{ properties: Record<string, string>; shaped: Set<string> }> {
  const shaped = new Set<string>();
  if (!shape.has('title') && !shape.has('body') && !shape.has('properties'))
    return { properties: built, shaped };
  const play = c.recordings.find(playable);
  const ctx = callContext(c, {
    target: o.target,
    contact: o.contactId ? { id: o.contactId, others: o.others } : null,
    owner: o.owner ?? null,
    recordingsInBody: c.recordings.filter((r) => r !== play),
  });
  const properties = { ...built };
  const title = await shape.text('title', ctx);
  if (title !== undefined) properties.hs_call_title = title;
  const body = await shape.text('body', ctx);
  if (body !== undefined) properties.hs_call_body = body;
  const extra = await shape.fields('properties', ctx);
  if (extra) {
    const values = asStrings(extra, (why) => shape.refused('properties', why));
    for (const [k, v] of Object.entries(values)) {
      shaped.add(k);
      if (v === null) delete properties[k];
      else properties[k] = v;
    }
  }
  return { properties, shaped };
}

interface PropertyProblem {
  name?: string;
  error?: string;
  message?: string;
}

/**
 * HubSpot's 400 VALIDATION_ERROR for properties says which in its message:
 * `Property values were not valid: [{"isValid":false,"message":...,"error":"PROPERTY_DOESNT_EXIST",
 * "name":"call_queue"}]` (for a batch input, in the 207's error for it).
 */
export function propertyProblems(message: string): PropertyProblem[] {
  const m = /Property values were not valid: (\[.*\])\s*$/s.exec(message);
  if (!m) return [];
  try {
    const list = JSON.parse(m[1]!) as unknown;
    return Array.isArray(list) ? (list as PropertyProblem[]) : [];
  } catch {
    return [];
  }
}

/**
 * A validation error about a property the `properties` expression set, said at the expression's
 * place; never retried (the same properties fail the same way). Other errors are returned as
 * they are.
 */
export function rejectedProperty(err: unknown, shaped: Set<string>, shape: Shape): unknown {
  if (!(err instanceof DeliveryError) || shaped.size === 0) return err;
  const ours = propertyProblems(err.message).filter((p) => p.name && shaped.has(p.name));
  if (!ours.length) return err;
  const said = ours.map((p) =>
    p.error === 'PROPERTY_DOESNT_EXIST'
      ? `HubSpot has no property "${p.name}" (PROPERTY_DOESNT_EXIST)`
      : `HubSpot refused "${p.name}": ${p.message ?? 'not valid'} (${p.error ?? 'VALIDATION_ERROR'})`,
  );
  return new DeliveryError(`${shape.where('properties')}: ${said.join('; ')}`, {
    retryable: false,
    ...(err.status === undefined ? {} : { status: err.status }),
    requestId: err.requestId,
  });
}

interface AssociationList {
  results?: {
    toObjectId: number | string;
    associationTypes?: { category?: string; typeId?: number }[];
  }[];
}

/**
 * The company and the open deal of a contact (`associate`), looked up when a call is created and
 * remembered like the contact lookup. The rule (docs/crm-notes.md A.2): the company HubSpot marks
 * as the contact's primary one, else the lowest id (made first); the deal among the contact's
 * whose `hs_is_closed` is "false" with the latest `hs_lastmodifieddate` (a tie: the lowest id).
 */
export class Related {
  private readonly cache: Cache<string | null>;
  private readonly flights = new SingleFlight<string | null>();

  constructor(
    private readonly http: CrmClient,
    ttlMs: number,
  ) {
    this.cache = new Cache(ttlMs);
  }

  private cached(key: string, fn: () => Promise<string | null>): Promise<string | null> {
    const hit = this.cache.get(key);
    if (hit) return Promise.resolve(hit.v);
    return this.flights.run(key, async () => {
      const v = await fn();
      this.cache.set(key, v);
      return v;
    });
  }

  /** The inline associations of a new call beyond its contact. */
  async associations(
    contactId: string | null | undefined,
    kinds: readonly ('company' | 'deal')[],
  ): Promise<
    { to: { id: string }; types: { associationCategory: string; associationTypeId: number }[] }[]
  > {
    if (!contactId || !kinds.length) return [];
    const out = [];
    for (const kind of kinds) {
      const id =
        kind === 'company'
          ? await this.cached(`company:${contactId}`, () => this.company(contactId))
          : await this.cached(`deal:${contactId}`, () => this.openDeal(contactId));
      if (id)
        out.push({
          to: { id },
          types: [
            {
              associationCategory: 'HUBSPOT_DEFINED',
              associationTypeId: kind === 'company' ? CALL_TO_COMPANY : CALL_TO_DEAL,
            },
          ],
        });
    }
    return out;
  }

  private async associated(contactId: string, to: 'companies' | 'deals'): Promise<AssociationList> {
    const res = await this.http.call({
      method: 'GET',
      path: `/crm/v4/objects/contacts/${contactId}/associations/${to}?limit=500`,
      idempotent: true,
      what: `reading the ${to} of contact ${contactId}`,
    });
    return (res.body ?? {}) as AssociationList;
  }

  private async company(contactId: string): Promise<string | null> {
    const list = (await this.associated(contactId, 'companies')).results ?? [];
    const primary = list.find((r) =>
      r.associationTypes?.some(
        (t) => t.category === 'HUBSPOT_DEFINED' && t.typeId === PRIMARY_COMPANY,
      ),
    );
    const first = [...list].sort((a, b) => Number(a.toObjectId) - Number(b.toObjectId))[0];
    const pick = primary ?? first;
    return pick ? String(pick.toObjectId) : null;
  }

  private async openDeal(contactId: string): Promise<string | null> {
    const ids = ((await this.associated(contactId, 'deals')).results ?? []).map((r) =>
      String(r.toObjectId),
    );
    if (!ids.length) return null;
    const res = await this.http.call({
      method: 'POST',
      path: '/crm/v3/objects/deals/batch/read',
      json: {
        inputs: ids.slice(0, 100).map((id) => ({ id })),
        properties: ['dealname', 'hs_is_closed', 'hs_lastmodifieddate'],
      },
      idempotent: true,
      what: `reading the deals of contact ${contactId}`,
    });
    const deals = (
      (res.body as { results?: { id: string; properties?: Record<string, string> }[] }).results ??
      []
    ).filter((d) => d.properties?.hs_is_closed === 'false');
    const time = (d: (typeof deals)[number]): number =>
      Date.parse(d.properties?.hs_lastmodifieddate ?? '') || 0;
    deals.sort((a, b) => time(b) - time(a) || Number(a.id) - Number(b.id));
    return deals[0]?.id ?? null;
  }
}
