// What relay.yaml shapes on a Pipedrive call log (docs/targets.md): the subject, note and extra
// fields from the target's expressions, the person's open deal (`deal: open`), and a field
// Pipedrive refuses turned into a dead letter that names it and the expression's place.
// Facts: docs/crm-notes.md B.1 (call-log fields and their errors) and B.6 (deals).

import type { CallRecord } from '../../domain/model.js';
import type { CrmClient } from '../kit/client.js';
import { callContext } from '../kit/context.js';
import { DeliveryError } from '../kit/errors.js';
import { Cache, SingleFlight } from '../kit/lookup.js';
import type { Other } from '../kit/phone-lookup.js';
import type { Shape } from '../kit/shape.js';

/** The call log's body with the target's expressions applied, and which fields they set. */
export async function shapedCallLog(
  shape: Shape,
  c: CallRecord,
  built: Record<string, unknown>,
  o: { target: string; personId?: number; others: Other<number>[]; userId?: number },
): Promise<{ body: Record<string, unknown>; shaped: Set<string> }> {
  const shaped = new Set<string>();
  if (!shape.has('subject') && !shape.has('note') && !shape.has('fields'))
    return { body: built, shaped };
  const ctx = callContext(c, {
    target: o.target,
    contact:
      o.personId === undefined
        ? null
        : {
            id: String(o.personId),
            others: o.others.map((x) => ({ ...x, id: String(x.id) })),
          },
    owner: o.userId === undefined ? null : String(o.userId),
  });
  const body = { ...built };
  const subject = await shape.text('subject', ctx);
  if (subject !== undefined) body.subject = subject;
  const note = await shape.text('note', ctx);
  if (note !== undefined) body.note = note;
  const extra = await shape.fields('fields', ctx);
  for (const [k, v] of Object.entries(extra ?? {})) {
    // The activity the log converts is how the log is made once (B.5): not the expression's.
    if (v === undefined || k === 'activity_id') continue;
    shaped.add(k);
    if (v === null) delete body[k];
    else body[k] = v;
  }
  return { body, shaped };
}

/**
 * Pipedrive validates a call log's body field by field and names the first it refuses in `error`
 * (`"call_queue" is not allowed.`, `"subject" must be a string.`). One the `fields` expression
 * set becomes a dead letter at the expression's place; other errors are returned as they are.
 */
export function rejectedField(err: unknown, shaped: Set<string>, shape: Shape): unknown {
  if (!(err instanceof DeliveryError) || err.status !== 400 || shaped.size === 0) return err;
  const m = /"([^"]+)" ((?:is|must|contains|length)[^".:]*)/.exec(err.message);
  const name = m?.[1];
  if (!name || !shaped.has(name)) return err;
  return new DeliveryError(
    `${shape.where('fields')}: Pipedrive refused the call-log field "${name}": "${name}" ${m[2]!.trim()}`,
    { retryable: false, status: 400, requestId: err.requestId },
  );
}

interface Deal {
  id: number;
  person_id?: number | null;
  status?: string;
  update_time?: string;
}

/**
 * The person's most recently updated open deal (`deal: open`), remembered like the person
 * lookup: the v2 deal list of the person, open ones, newest `update_time` first; the answer is
 * checked too (status, person), and a tie goes to the lowest id.
 */
export class OpenDeals {
  private readonly cache: Cache<number | null>;
  private readonly flights = new SingleFlight<number | null>();

  constructor(
    private readonly http: CrmClient,
    ttlMs: number,
  ) {
    this.cache = new Cache(ttlMs);
  }

  find(personId: number): Promise<number | null> {
    const hit = this.cache.get(String(personId));
    if (hit) return Promise.resolve(hit.v);
    return this.flights.run(String(personId), async () => {
      const v = await this.lookUp(personId);
      this.cache.set(String(personId), v);
      return v;
    });
  }

  private async lookUp(personId: number): Promise<number | null> {
    const res = await this.http.call({
      method: 'GET',
      path: `/api/v2/deals?person_id=${personId}&status=open&sort_by=update_time&sort_direction=desc&limit=100`,
      idempotent: true,
      what: `finding the open deal of person ${personId}`,
    });
    const deals = ((res.body as { data?: Deal[] }).data ?? []).filter(
      (d) => d.status === 'open' && d.person_id === personId,
    );
    const time = (d: Deal): number => Date.parse(d.update_time ?? '') || 0;
    deals.sort((a, b) => time(b) - time(a) || a.id - b.id);
    return deals[0]?.id ?? null;
  }
}
