// Which CRM user handled a call: relay.yaml maps an agent's extension to a numeric user id, used
// as it is, or to an email, which the CRM is asked about once and then remembered (an unknown
// email too, so that a mapping the CRM does not know costs one request per cache period, not one
// per call).

import { isNumericUserId } from './agents.js';
import { Cache, SingleFlight } from './lookup.js';

export interface UserLookupOptions<Id> {
  /** Extension -> numeric user id or email (the target's `agents`). */
  agents: Record<string, string>;
  /** How long an email's answer is remembered. */
  ttlMs: number;
  /** A numeric id from relay.yaml as the CRM's API takes it. */
  fromNumber(id: string): Id;
  /** The user with this email, if the CRM has one. */
  byEmail(email: string): Promise<Id | undefined>;
  /** Whether the CRM has a user with this id (check --online). */
  exists?(id: Id): Promise<boolean>;
}

export class UserLookup<Id> {
  private readonly cache: Cache<Id | null>;
  private readonly flights = new SingleFlight<Id | undefined>();

  constructor(private readonly o: UserLookupOptions<Id>) {
    this.cache = new Cache(o.ttlMs);
  }

  /**
   * The mapped agents the CRM does not know (`check --online`), as sentences: their calls would
   * go without an owner. Asks the CRM once per entry, whatever the cache holds.
   */
  async unknown(crm: string): Promise<string[]> {
    const out: string[] = [];
    for (const [ext, mapped] of Object.entries(this.o.agents)) {
      if (isNumericUserId(mapped)) {
        if (this.o.exists && !(await this.o.exists(this.o.fromNumber(mapped))))
          out.push(`agent ${ext} -> ${mapped}: no ${crm} user has this id`);
      } else if ((await this.o.byEmail(mapped)) === undefined)
        out.push(`agent ${ext} -> ${mapped}: no ${crm} user has this email`);
    }
    return out;
  }

  /** The CRM user of this agent (extension), if relay.yaml maps it and the CRM knows them. */
  async forAgent(agent: string | null): Promise<Id | undefined> {
    const mapped = agent ? this.o.agents[agent] : undefined;
    if (!mapped) return undefined;
    if (isNumericUserId(mapped)) return this.o.fromNumber(mapped);
    const hit = this.cache.get(mapped);
    if (hit) return hit.v ?? undefined;
    return this.flights.run(mapped, async () => {
      const id = await this.o.byEmail(mapped);
      this.cache.set(mapped, id ?? null);
      return id;
    });
  }
}
