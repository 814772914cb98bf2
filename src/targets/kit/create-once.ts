// Creating a CRM object once although a create's answer can be lost (the connection drops after
// the request went out). The intent is saved before the create, so that the next attempt knows a
// create may have gone through: it looks for what that create made and adopts it rather than
// making a duplicate. A create the CRM refused outright, or that never left the relay, made
// nothing, so it clears the intent and the next attempt creates without looking.

import type { RemoteState } from '../../domain/delivery.js';
import type { DeliveryContext } from '../types.js';
import { DeliveryError, TokenEndpointError } from './errors.js';

/** The intent, in the delivery's remote state from before a create until its outcome is known. */
export interface PendingCreate {
  /** What the create carries for `find` to recognise (HubSpot: hs_call_external_id). */
  token?: string;
  at: string;
}

export interface CreateOnce {
  ctx: DeliveryContext;
  /** The delivery's remote state: the intent is kept in its `pendingCreate`. */
  remote: RemoteState & { pendingCreate?: PendingCreate };
  /** For messages: the CRM's name, and what the create does ("creating the call log"). */
  crm: string;
  what: string;
  /** Saved with the intent, so that the attempt after a lost answer looks for the same token. */
  token?: string;
  /** How far the CRM's search may lag behind a create: looking sooner could miss the object. */
  searchLagMs?: number;
  /** The object a lost create made, if it made one. */
  find(): Promise<string | undefined>;
  /** Create the object; the id in the CRM's answer. */
  create(): Promise<string | undefined>;
}

/**
 * The object's id, created now or adopted from a lost create. The intent is gone from `remote`
 * afterwards; saving it with the id is the caller's (who may have more to save with it).
 */
export async function createOnce(o: CreateOnce): Promise<{ id: string; adopted: boolean }> {
  const { ctx, remote } = o;
  const lost = remote.pendingCreate;
  if (lost) {
    if (o.searchLagMs !== undefined) {
      const waited = Date.now() - Date.parse(lost.at);
      const lag = o.searchLagMs;
      if (waited < lag) {
        throw new DeliveryError(
          `waiting ${Math.ceil((lag - waited) / 1000)} s for ${o.crm} search before checking whether the lost create${o.token === undefined ? '' : ` of ${o.token}`} went through`,
          { retryable: true, retryAfterMs: lag - waited },
        );
      }
    }
    const found = await o.find();
    if (found) {
      delete remote.pendingCreate;
      return { id: found, adopted: true };
    }
  }
  const at = new Date().toISOString();
  remote.pendingCreate = o.token === undefined ? { at } : { token: o.token, at };
  await ctx.save(remote);
  let id: string | undefined;
  try {
    id = await o.create();
  } catch (err) {
    // Refused outright (4xx, 429), or never sent (a DNS failure, a refused connection, no access
    // token): nothing was created, so the next attempt need not look for a lost create. A 2xx
    // answer the target's review turned into an error may have made it: the intent stays.
    if (
      err instanceof DeliveryError &&
      !err.ambiguous &&
      (err.status === undefined ||
        err instanceof TokenEndpointError ||
        (err.status >= 400 && err.status < 500))
    ) {
      delete remote.pendingCreate;
      await ctx.save(remote);
    } else if (remote.pendingCreate) {
      // Kept: the search lag counts from when the create may have been made, not from the
      // intent (a create can wait a minute for the rate limit, and a batch longer to answer).
      remote.pendingCreate = { ...remote.pendingCreate, at: new Date().toISOString() };
      await ctx.save(remote);
    }
    throw err;
  }
  if (!id)
    throw new DeliveryError(`${o.what}: ${o.crm} answered without an id`, { retryable: true });
  delete remote.pendingCreate;
  return { id, adopted: false };
}
