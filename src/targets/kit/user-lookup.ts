// Which CRM user handled a call: relay.yaml maps an agent's extension to a numeric user id, used
// as it is, or to an email, which the CRM is asked about once and then remembered (an unknown
// email too, so that a mapping the CRM does not know costs one request per cache period, not one
// per call). An agent the CRM has no user for is said on every call's attempts and, once per
// process, in the log: the call still goes, without an owner.

import { NO_USER_OPERATION } from '../../domain/delivery.js';
import type { Logger } from '../../telemetry/log.js';
import { isNumericUserId } from './agents.js';
import { Cache, SingleFlight } from './lookup.js';
import { recordNote } from './trace.js';

/** (target, agent, email) already warned about in the log: once per process, not per call. */
const warned = new Set<string>();

export interface UserLookupOptions<Id> {
  /** Extension -> numeric user id or email (the target's `agents`). */
  agents: Record<string, string>;
  /** How long an email's answer is remembered. */
  ttlMs: number;
  /** A numeric id from relay.yaml as the CRM's API takes it. */
  fromNumber(id: string): Id;
  /** Which mapped values are ids, used as they are (default: numeric ones). */
  isId?: (v: string) => boolean;
  /** The user with this email, if the CRM has one. */
  byEmail(email: string): Promise<Id | undefined>;
  /** Whether the CRM has a user with this id (check --online). */
  exists?(id: Id): Promise<boolean>;
  /** Who asks ("HubSpot", the target's name): an unknown agent is noted and warned about. */
  who?: { crm: string; target: string };
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
      if ((this.o.isId ?? isNumericUserId)(mapped)) {
        if (this.o.exists && !(await this.o.exists(this.o.fromNumber(mapped))))
          out.push(`agent ${ext} -> ${mapped}: no ${crm} user has this id`);
      } else if ((await this.o.byEmail(mapped)) === undefined)
        out.push(`agent ${ext} -> ${mapped}: no ${crm} user has this email`);
    }
    return out;
  }

  /** The CRM user of this agent (extension), if relay.yaml maps it and the CRM knows them. */
  async forAgent(agent: string | null, log?: Logger): Promise<Id | undefined> {
    const mapped = agent ? this.o.agents[agent] : undefined;
    if (!agent || !mapped) return undefined;
    if ((this.o.isId ?? isNumericUserId)(mapped)) return this.o.fromNumber(mapped);
    const hit = this.cache.get(mapped);
    const id = hit
      ? (hit.v ?? undefined)
      : await this.flights.run(mapped, async () => {
          const found = await this.o.byEmail(mapped);
          this.cache.set(mapped, found ?? null);
          return found;
        });
    if (id === undefined) this.noUser(agent, mapped, log);
    return id;
  }

  /** Every call's attempts say it (cached or not); the log says it once per process. */
  private noUser(agent: string, email: string, log: Logger | undefined): void {
    const who = this.o.who;
    if (!who) return;
    const text = `agent ${agent} (${email}) is not a ${who.crm} user: the call has no owner`;
    recordNote(NO_USER_OPERATION, text);
    const key = `${who.target}\0${agent}\0${email}`;
    if (log && !warned.has(key)) {
      warned.add(key);
      log.warn(
        { target: who.target, agent, email },
        `${text} (fix agents: in relay.yaml or the CRM; said once per agent until restart)`,
      );
    }
  }
}
