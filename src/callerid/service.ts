// The caller-ID lookup behind 3CX's CRM integration (docs/3cx-template.md): who is calling, a
// contact search, a lookup by email and "create contact", answered from the CRM targets a source
// names under crm: (in that order, until one knows). 3CX asks at ring time and shows an error for
// an answer that fails, so every lookup answers, and fast: from a cache (per source and number),
// with one CRM search per number however many phones ring at once, and "not found" when the CRM
// has not answered within answerWithinMs (its answer, when it comes, is cached for the next ring).
// Relay.yaml is read at each question, so a reload applies at once.

import type { CrmContact, LookupAnswer, LookupKind, LookupResult } from '../domain/callerid.js';
import { RelayError } from '../domain/errors.js';
import { phoneE164 } from '../domain/phone.js';
import { Cache, SingleFlight, sameNumber } from '../targets/kit/lookup.js';
import type { ContactCard, ContactQuery, Target } from '../targets/types.js';
import { silentLogger, type Logger } from '../telemetry/log.js';
import type { RelayMetrics } from '../telemetry/metrics.js';

/** A source's crm: as relay.yaml has it (defaults filled in). */
export interface CrmSettings {
  lookup?: string[] | undefined;
  cacheSec: number;
  answerWithinMs: number;
  createIn?: string | undefined;
}

export interface CallerSource {
  name: string;
  defaultCountry?: string | undefined;
  crm?: CrmSettings | undefined;
}

export interface CallerLookupOptions {
  /** relay.yaml's sources now (a reload changes them). */
  sources: () => readonly CallerSource[];
  /** The targets now, in relay.yaml order. */
  targets: () => readonly Pick<Target, 'name' | 'findContacts' | 'addContact'>[];
  /**
   * The targets whose configuration lets them find contacts (their spec's contacts().find), in
   * relay.yaml order: the default order of a crm: without lookup. Default: every target with
   * findContacts.
   */
  finders?: () => readonly string[];
  metrics?: Pick<RelayMetrics, 'callerLookups' | 'callerLookupSeconds'> | undefined;
  log?: Logger;
  /** Scrubs secrets from a CRM's error before it is logged. */
  redact?: (text: string) => string;
}

/** How long a CRM that failed is left alone before it is asked again for the same thing. */
const ERROR_TTL_MS = 5_000;
/** How long the agents' page keeps a contact found for a number (no source's crm: applies). */
const AGENT_CACHE_SEC = 300;
/** The cache's source part for those lookups: no source name is empty. */
const ANY_SOURCE = '';
/** Answers of a text search or an email lookup: a few, best first. */
const SEARCH_LIMIT = 10;

/** A question for the CRM targets: what to ask, which cards count, how many to answer. */
interface Query {
  query: ContactQuery;
  accept?: (card: ContactCard) => boolean;
  limit: number;
}

/** Who has this number: the wrong-country look-alike a CRM's search may return never counts. */
const numberQuery = (e164: string): Query => ({
  query: { e164, limit: 1 },
  accept: (card) => card.phones.some((p) => sameNumber(p.number, e164)),
  limit: 1,
});

/** What a CRM search found, as cached: the cards and the target that answered. */
interface Found {
  cards: ContactCard[];
  target: string | null;
  result: 'hit' | 'miss' | 'error';
}

/** The number as 3CX asked for it, which a phone field of the answer must hold (3CX's rule). */
const askedAs = (asked: string): string =>
  /^\s+\d/.test(asked) ? `+${asked.trim()}` : asked.trim();

const KINDS = ['business', 'mobile', 'home', 'other'] as const;
const FIELD = {
  business: 'phoneBusiness',
  mobile: 'phoneMobile',
  home: 'phoneHome',
  other: 'phoneOther',
} as const;

/**
 * A card as 3CX reads it. For a number lookup, the phone field of the number that matched holds
 * the number as 3CX asked for it, verbatim: 3CX accepts a record only if a phone output contains
 * the number it asked for, whatever the CRM's formatting.
 */
export function contactOf(
  card: ContactCard,
  target: string,
  match?: { e164: string; asked: string },
): CrmContact {
  const phones = { phoneBusiness: '', phoneMobile: '', phoneHome: '', phoneOther: '' };
  const matched = match && card.phones.find((p) => sameNumber(p.number, match.e164));
  if (matched) phones[FIELD[matched.kind]] = match.asked;
  for (const kind of KINDS) {
    const f = FIELD[kind];
    if (!phones[f]) phones[f] = card.phones.find((p) => p.kind === kind)?.number ?? '';
  }
  return {
    id: card.id,
    firstName: card.firstName ?? '',
    lastName: card.lastName ?? '',
    company: card.company ?? '',
    email: card.email ?? '',
    ...phones,
    url: card.url ?? '',
    entityType: 'Contacts',
    target,
  };
}

export class CallerLookup {
  private readonly cache = new Cache<Found>(0);
  /** A number's latest contact found for a source (3CX's caller ID): the agents' page reuses it. */
  private readonly foundFor = new Map<string, string>();
  private readonly flights = new SingleFlight<Found>();
  /**
   * Per cache key, how often a contact made for it (create) has changed what the CRM knows: a
   * search that began before writes nothing, and the next ring does not join it.
   */
  private readonly generations = new Map<string, number>();
  private readonly log: Logger;

  constructor(private readonly o: CallerLookupOptions) {
    this.log = o.log ?? silentLogger;
  }

  /** The source's crm: settings, or 404 for a source without them. */
  settings(sourceName: string): { source: CallerSource; crm: CrmSettings } {
    const source = this.o.sources().find((s) => s.name === sourceName);
    if (!source)
      throw new RelayError('RELAY_ERR_UNKNOWN_SOURCE', `no source "${sourceName}" in relay.yaml`);
    if (!source.crm)
      throw new RelayError(
        'RELAY_ERR_CRM_NOT_CONFIGURED',
        `source ${source.name} has no crm: in relay.yaml, so 3CX's CRM lookups are off for it`,
      );
    return { source, crm: source.crm };
  }

  /** The targets asked, in order: crm.lookup, else every one that can find contacts. */
  private order(crm: CrmSettings): string[] {
    if (crm.lookup) return crm.lookup;
    if (this.o.finders) return [...this.o.finders()];
    return this.o
      .targets()
      .filter((t) => t.findContacts)
      .map((t) => t.name);
  }

  /** Who has this number: at most one contact, whose matching phone field echoes `asked`. */
  async byNumber(sourceName: string, asked: string): Promise<LookupAnswer> {
    const t0 = performance.now();
    const { source, crm } = this.settings(sourceName);
    return this.number(source, crm, asked, t0, t0 + crm.answerWithinMs);
  }

  /** byNumber within a deadline (performance.now()) the caller may share with more searches. */
  private async number(
    source: CallerSource,
    crm: CrmSettings,
    asked: string,
    t0: number,
    deadline: number,
  ): Promise<LookupAnswer> {
    // The reading the adapters' $e164 uses too, so the call 3CX journals carries the same number.
    const e164 = phoneE164(asked, source.defaultCountry);
    if (!e164) return this.done(source.name, 'number', t0, miss(), false);
    this.log.debug({ source: source.name, number: e164 }, 'caller lookup');
    const answer = await this.ask(source.name, crm, 'number', e164, numberQuery(e164), deadline);
    const echo = { e164, asked: askedAs(asked) };
    return {
      ...this.done(source.name, 'number', t0, answer.found, answer.cached, answer.timedOut, echo),
      e164,
    };
  }

  /**
   * Who has this number (E.164), for the agents' page: the targets that can find contacts in
   * relay.yaml order, whatever any source's crm: says (a relay without 3CX's integration still
   * shows names), from the same cache and single flight; a contact 3CX's caller ID found for the
   * number (for any source) and still cached is the answer at once. Waits at most `withinMs`; a
   * search still under way then goes on and caches what it finds, so asking again later answers
   * at once.
   * Undefined: nobody, or not known yet (`settled` false).
   */
  async anyNumber(
    e164: string,
    withinMs: number,
  ): Promise<{ contact: CrmContact | undefined; settled: boolean }> {
    const asked = this.foundFor.get(e164);
    const known = asked === undefined ? undefined : this.cache.get(asked)?.v;
    if (known?.target && known.cards[0])
      return { contact: contactOf(known.cards[0], known.target), settled: true };
    const crm: CrmSettings = { cacheSec: AGENT_CACHE_SEC, answerWithinMs: withinMs };
    const answer = await this.ask(
      ANY_SOURCE,
      crm,
      'number',
      e164,
      numberQuery(e164),
      performance.now() + withinMs,
    );
    const card = answer.found.cards[0];
    return {
      contact: card && answer.found.target ? contactOf(card, answer.found.target) : undefined,
      settled: !answer.timedOut,
    };
  }

  /** The phone client's contact search: a name, a company, or digits (also tried as a number). */
  async search(sourceName: string, text: string): Promise<LookupAnswer> {
    const t0 = performance.now();
    const { source, crm } = this.settings(sourceName);
    const q = text.trim();
    if (q.length < 2) return this.done(source.name, 'text', t0, miss(), false);
    // One answer budget for the whole question, the number lookup and the text search together.
    const deadline = t0 + crm.answerWithinMs;
    if (/^\+?[\d\s().\-/]+$/.test(q) && phoneE164(q, source.defaultCountry)) {
      const byNumber = await this.number(source, crm, q, t0, deadline);
      if (byNumber.contacts.length) return byNumber;
    }
    const answer = await this.ask(
      source.name,
      crm,
      'text',
      q.toLowerCase(),
      { query: { text: q, limit: SEARCH_LIMIT }, limit: SEARCH_LIMIT },
      deadline,
    );
    return this.done(source.name, 'text', t0, answer.found, answer.cached, answer.timedOut);
  }

  /** The contact with this email address. */
  async byEmail(sourceName: string, address: string): Promise<LookupAnswer> {
    const t0 = performance.now();
    const { source, crm } = this.settings(sourceName);
    const email = address.trim().toLowerCase();
    if (!/^[^\s@]+@[^\s@]+$/.test(email)) return this.done(source.name, 'email', t0, miss(), false);
    const answer = await this.ask(
      source.name,
      crm,
      'email',
      email,
      { query: { email, limit: SEARCH_LIMIT }, limit: SEARCH_LIMIT },
      t0 + crm.answerWithinMs,
    );
    return this.done(source.name, 'email', t0, answer.found, answer.cached, answer.timedOut);
  }

  /**
   * "Create contact" in 3CX's Web Client, in crm.createIn's target. A number somebody there has
   * already is not given a second contact: 3CX would show the new one while deliveries file the
   * calls under the one made first (kit/phone-lookup.ts), so that one is the answer. A contact
   * made clears what is cached for its number, and a search still under way does not write over
   * that (generations): the next ring asks the CRM, whose rule picks the contact made first.
   */
  async create(
    sourceName: string,
    c: { firstName?: string; lastName?: string; company?: string; email?: string; number?: string },
  ): Promise<LookupAnswer> {
    const t0 = performance.now();
    const { source, crm } = this.settings(sourceName);
    if (!crm.createIn)
      throw new RelayError(
        'RELAY_ERR_CRM_CREATE_OFF',
        `source ${source.name} does not create contacts: set sources[].crm.createIn in relay.yaml to the target that should`,
      );
    const target = this.o.targets().find((t) => t.name === crm.createIn);
    if (!target?.addContact)
      throw new RelayError(
        'RELAY_ERR_CRM_CREATE_OFF',
        `target ${crm.createIn} (sources[${source.name}].crm.createIn) cannot create contacts`,
      );
    const asked = c.number?.trim() ?? '';
    const e164 = asked ? phoneE164(asked, source.defaultCountry) : undefined;
    if (asked && !e164)
      throw new RelayError('RELAY_ERR_BAD_REQUEST', `"${asked}" is not a phone number`);
    const clean = (v: string | undefined): string | undefined => v?.trim() || undefined;
    const contact = {
      firstName: clean(c.firstName),
      lastName: clean(c.lastName),
      company: clean(c.company),
      email: clean(c.email),
      e164,
    };
    if (!contact.firstName && !contact.lastName && !contact.company)
      throw new RelayError(
        'RELAY_ERR_BAD_REQUEST',
        'a contact needs a first name, a last name or a company',
      );
    const key = e164 ? this.key(source.name, crm, 'number', e164) : undefined;
    if (e164 && key) {
      // No answer budget: this is the user's click, and a duplicate lasts.
      const known = await this.searchTargets(source.name, [target.name], numberQuery(e164));
      if (known.result === 'hit') {
        this.log.info(
          { source: source.name, target: target.name, number: e164, contact: known.cards[0]?.id },
          '3CX asked to create a contact for a number that has one: answered with that contact',
        );
        // What is cached for the number is older than this answer; crm.lookup's order decides.
        this.bump(key);
        this.cache.delete(key);
        return this.done(source.name, 'create', t0, known, false, false, { e164, asked });
      }
    }
    let card: ContactCard;
    try {
      card = await target.addContact(
        Object.fromEntries(Object.entries(contact).filter(([, v]) => v !== undefined)),
      );
    } catch (err) {
      this.count(source.name, 'create', 'error', false, t0);
      this.log.warn(
        { source: source.name, target: target.name, err: this.scrub(err) },
        'creating a contact for 3CX failed',
      );
      throw new RelayError('RELAY_ERR_CRM_FAILED', `${target.name} did not make the contact`);
    }
    const found: Found = { cards: [card], target: target.name, result: 'hit' };
    if (key) {
      this.bump(key);
      this.cache.delete(key);
    }
    const echo = e164 ? { e164, asked } : undefined;
    return this.done(source.name, 'create', t0, found, false, false, echo);
  }

  private bump(key: string): void {
    if (this.generations.size > 10_000) this.generations.clear();
    this.generations.set(key, (this.generations.get(key) ?? 0) + 1);
  }

  private key(source: string, crm: CrmSettings, kind: LookupKind, what: string): string {
    // The order is part of the key: a reload that changes crm.lookup asks again.
    return `${source}\0${this.order(crm).join(',')}\0${kind}\0${what}`;
  }

  /**
   * The cached answer, else one CRM search per key (callers for the same key share it), cut off
   * at the deadline (performance.now()); the search goes on and caches what it finds, unless a
   * contact was made for the key meanwhile.
   */
  private async ask(
    source: string,
    crm: CrmSettings,
    kind: LookupKind,
    what: string,
    q: Query,
    deadline: number,
  ): Promise<{ found: Found; cached: boolean; timedOut: boolean }> {
    const key = this.key(source, crm, kind, what);
    const hit = this.cache.get(key);
    if (hit) return { found: hit.v, cached: true, timedOut: false };
    const order = this.order(crm);
    const generation = this.generations.get(key) ?? 0;
    const flight = this.flights.run(`${key}\0${generation}`, async () => {
      const found = await this.searchTargets(source, order, q);
      const ttl =
        found.result === 'hit'
          ? crm.cacheSec * 1000
          : found.result === 'miss'
            ? (crm.cacheSec * 1000) / 5
            : Math.min(ERROR_TTL_MS, crm.cacheSec * 1000);
      if (ttl > 0 && (this.generations.get(key) ?? 0) === generation) {
        this.cache.set(key, found, ttl);
        if (kind === 'number' && source !== ANY_SOURCE && found.result === 'hit') {
          if (this.foundFor.size > 10_000) this.foundFor.clear();
          this.foundFor.set(what, key);
        }
      }
      return found;
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, deadline - performance.now()), undefined);
    });
    try {
      const found = await Promise.race([flight, late]);
      if (found) return { found, cached: false, timedOut: false };
      return { found: miss(), cached: false, timedOut: true };
    } finally {
      clearTimeout(timer);
    }
  }

  /** The targets in order until one knows; a failing one is logged and the next one asked. */
  private async searchTargets(source: string, order: readonly string[], q: Query): Promise<Found> {
    const targets = this.o.targets();
    let failed = false;
    for (const name of order) {
      const target = targets.find((t) => t.name === name);
      if (!target?.findContacts) continue;
      try {
        const cards = (await target.findContacts(q.query)).filter((c) => q.accept?.(c) ?? true);
        if (cards.length) return { cards: cards.slice(0, q.limit), target: name, result: 'hit' };
      } catch (err) {
        failed = true;
        this.log.warn(
          { source, target: name, err: this.scrub(err) },
          '3CX contact lookup: the CRM failed (3CX is told "not found")',
        );
      }
    }
    return { cards: [], target: null, result: failed ? 'error' : 'miss' };
  }

  private scrub(err: unknown): string {
    const msg = err instanceof Error ? err.message : String(err);
    return this.o.redact ? this.o.redact(msg) : msg;
  }

  private done(
    source: string,
    kind: LookupKind,
    t0: number,
    found: Found,
    cached: boolean,
    timedOut = false,
    echo?: { e164: string; asked: string },
  ): LookupAnswer {
    const result: LookupResult = timedOut ? 'timeout' : found.result;
    const ms = this.count(source, kind, result, cached, t0);
    return {
      contacts: found.target ? found.cards.map((c) => contactOf(c, found.target!, echo)) : [],
      result,
      cached,
      target: found.target,
      ms,
    };
  }

  private count(
    source: string,
    kind: LookupKind,
    result: LookupResult,
    cached: boolean,
    t0: number,
  ): number {
    const ms = performance.now() - t0;
    this.o.metrics?.callerLookups.inc({ source, kind, result, cached: cached ? 'yes' : 'no' });
    this.o.metrics?.callerLookupSeconds.observe({ source, kind }, ms / 1000);
    return Math.round(ms * 10) / 10;
  }
}

const miss = (): Found => ({ cards: [], target: null, result: 'miss' });
