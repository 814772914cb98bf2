// The ringing card's source: one per process, whatever the number of agents with their page open.
// On a fold cue (a fold committed here or, on PostgreSQL, anywhere; throttled; deliveries do not
// cue it) it asks the store once for the calls changed since the last query (with a small
// overlap; the whole recent window now and then), and each open stream gets its agent's view of
// them (calls.ts's rule), sent only when that view changed. Contacts (the CRM lookup) and a
// number's earlier calls come later than the card: the number shows first, and the view is sent
// again when they are known (or could not be).

import type { CrmContact } from '../domain/callerid.js';
import type { CallRow, Store } from '../store/types.js';
import {
  cardStatus,
  isAgentsCall,
  pastCall,
  shownNumber,
  type CardState,
  type PastCall,
} from './calls.js';
import type { AgentEntry, AgentOptions } from './types.js';

/** A burst of folds is one store query. */
const THROTTLE_MS = 100;
/** A look at the whole recent window now and then all the same, in case a cue was lost. */
const SAFETY_MS = 15_000;
/**
 * A cue's query reaches back this far before the last query: a fold that stamped its change
 * earlier may commit later, and on PostgreSQL instances' clocks differ a little.
 */
export const OVERLAP_MS = 5_000;
/** The window of the one query: an answered call older than this has no card. */
const RECENT_MS = 2 * 3600_000;
const RECENT_LIMIT = 300;
/** A call still "ringing" with no news for this long rings no more (its end was lost). */
const STALE_RINGING_MS = 5 * 60_000;
/** An ended call keeps its card this long, so that the agent sees how it ended. */
export const ENDED_CARD_MS = 60_000;
/** How long a CRM lookup may take before the card shows the number alone (the name follows). */
const LOOKUP_MS = 10_000;
/** How long a contact (or "nobody") found for a number is reused by the cards. */
const CONTACT_TTL_MS = 60_000;
/** A number's earlier calls, once asked for a card. */
const HISTORY_TTL_MS = 60_000;
const HISTORY = 5;
/** Remembered contacts and histories at most (numbers), so that memory stays bounded. */
const MAX_NUMBERS = 2000;

export interface DeskContact {
  name: string;
  company: string;
  url: string;
}

export interface DeskCard {
  /** source and call id: the card's identity in the page. */
  id: string;
  direction: string | null;
  state: CardState;
  status: string;
  number: string;
  e164: string | null;
  startedAt: string;
  /** Unknown yet (null, looking: true), nobody (null), or the CRM's contact. */
  contact: DeskContact | null;
  looking: boolean;
  history: PastCall[];
}

export interface DeskView {
  cards: DeskCard[];
}

interface Known<T> {
  at: number;
  value: T | undefined;
  /** A question under way. */
  pending: boolean;
}

interface Stream {
  extension: string;
  send(view: DeskView): void;
  last?: string;
}

const contactOf = (c: CrmContact | undefined): DeskContact | null =>
  c
    ? {
        name: [c.firstName, c.lastName].filter(Boolean).join(' ') || c.company,
        company: c.company,
        url: /^https?:\/\//i.test(c.url) ? c.url : '',
      }
    : null;

export class Desk {
  private readonly streams = new Set<Stream>();
  /** The recent calls by source and call id, and when the query that last answered began. */
  private rows = new Map<string, CallRow>();
  private readAt = 0;
  /** The next query reads the whole window (first, safety look, or a cue's answer was full). */
  private full = true;
  private readonly contacts = new Map<string, Known<DeskContact>>();
  private readonly histories = new Map<string, Known<(CallRow & { key: string })[]>>();
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private safety: NodeJS.Timeout | undefined;
  private expiry: NodeJS.Timeout | undefined;
  private lastQuery = 0;
  private querying = false;
  private again = false;
  /** Store queries made (tests: one per cue however many agents listen). */
  queries = 0;

  constructor(
    private readonly store: Store,
    private readonly opts: AgentOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** An open stream of an agent: gets their view now and whenever it changes. */
  subscribe(extension: string, send: (view: DeskView) => void): () => void {
    const stream: Stream = { extension, send };
    this.streams.add(stream);
    if (this.streams.size === 1) {
      this.unsubscribe = this.opts.onChange(() => this.cue());
      this.safety = setInterval(() => {
        this.full = true;
        this.cue();
      }, SAFETY_MS);
      this.safety.unref();
      this.rows = new Map();
      this.readAt = 0;
      this.full = true;
      void this.refresh();
    } else if (this.lastQuery) this.publish([stream]);
    return () => {
      this.streams.delete(stream);
      if (this.streams.size === 0) {
        this.unsubscribe?.();
        clearInterval(this.safety);
        clearTimeout(this.timer);
        clearTimeout(this.expiry);
        this.timer = undefined;
        this.lastQuery = 0;
      }
    };
  }

  /** Calls changed somewhere: one query soon, however many cues come meanwhile. */
  private cue(): void {
    if (this.timer || this.streams.size === 0) return;
    const wait = Math.max(0, this.lastQuery + THROTTLE_MS - this.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.refresh();
    }, wait);
    this.timer.unref();
  }

  private async refresh(): Promise<void> {
    if (this.querying) {
      this.again = true;
      return;
    }
    this.querying = true;
    this.lastQuery = this.now();
    const full = this.full || !this.readAt;
    this.full = false;
    const began = this.now();
    try {
      this.queries++;
      const window = began - RECENT_MS;
      const since = full ? window : Math.max(window, this.readAt - OVERLAP_MS);
      const rows = await this.store.listCalls({
        limit: RECENT_LIMIT,
        since: new Date(since).toISOString(),
      });
      // Changes past the limit: the next cue reads the whole window again.
      if (!full && rows.length === RECENT_LIMIT) this.full = true;
      this.take(rows, full, window);
      this.readAt = began;
      this.publish();
    } catch {
      this.full ||= full;
      // The store is briefly unavailable: the next cue (or the safety look) tells.
    } finally {
      this.querying = false;
      if (this.again) {
        this.again = false;
        this.cue();
      }
    }
  }

  /** An answer of the store: the whole window (replaces), or the changes (merged). */
  private take(rows: CallRow[], full: boolean, window: number): void {
    if (full) this.rows = new Map();
    for (const row of rows) this.rows.set(`${row.record.source}\n${row.record.callId}`, row);
    // The window as a whole read would give it: recent, the newest RECENT_LIMIT.
    const kept = [...this.rows.values()]
      .filter((row) => Date.parse(row.updatedAt) >= window)
      .sort((a, b) => b.updatedAt.localeCompare(a.updatedAt))
      .slice(0, RECENT_LIMIT);
    if (kept.length !== this.rows.size)
      this.rows = new Map(kept.map((row) => [`${row.record.source}\n${row.record.callId}`, row]));
  }

  /**
   * Whether a call has a card now: open, or ended a short while ago (counted from its end: a
   * recording or analysis that comes minutes later does not bring the card back).
   */
  private carded(row: CallRow): boolean {
    const r = row.record;
    if (r.status === 'ended') return this.now() - endOf(row) < ENDED_CARD_MS;
    if (r.status === 'ringing') return this.now() - Date.parse(row.updatedAt) < STALE_RINGING_MS;
    // Only a recording or an analysis so far: nobody is on a call the relay knows of.
    return r.status !== 'incomplete';
  }

  /** The agent's cards from the rows at hand. */
  view(extension: string): DeskView {
    const directory = this.opts.directory();
    const me = directory.find((a) => a.extension === extension);
    if (!me) return { cards: [] };
    const cards = [...this.rows.values()]
      .filter((row) => this.carded(row) && isAgentsCall(row.record, me))
      .map((row) => this.card(row, me, directory));
    cards.sort((a, b) => order(a) - order(b) || b.startedAt.localeCompare(a.startedAt));
    return { cards };
  }

  private card(row: CallRow, me: AgentEntry, directory: readonly AgentEntry[]): DeskCard {
    const r = row.record;
    const id = `${r.source}/${r.callId}`;
    const contact = r.externalE164 ? this.contact(r.externalE164) : undefined;
    const history = r.externalE164 ? this.history(r.externalE164) : undefined;
    const { state, text } = cardStatus(r, me, directory);
    return {
      id,
      direction: r.direction,
      state,
      status: text,
      number: shownNumber(r),
      e164: r.externalE164,
      startedAt: r.startedAt,
      contact: contact?.value ?? null,
      looking: !!contact?.pending,
      history: (history?.value ?? [])
        .filter((h) => h.key !== `${r.source}\n${r.callId}`)
        .slice(0, HISTORY)
        .map((h) => pastCall(h.record, directory)),
    };
  }

  /** The contact known for a number; asks the CRM (once) when it is not, and sends again then. */
  private contact(e164: string): Known<DeskContact> | undefined {
    const known = this.contacts.get(e164);
    if (known && (known.pending || this.now() - known.at < CONTACT_TTL_MS)) return known;
    const lookup = this.opts.lookup;
    if (!lookup) return undefined;
    const asking: Known<DeskContact> = { at: this.now(), value: known?.value, pending: true };
    remember(this.contacts, e164, asking);
    lookup(e164, LOOKUP_MS).then(
      ({ contact, settled }) => {
        // A CRM slower than LOOKUP_MS: its search goes on; the cards still showing the number
        // ask again (and join it), so the name comes when it does. No open card, no question.
        if (!settled) this.contacts.delete(e164);
        else
          remember(this.contacts, e164, {
            at: this.now(),
            value: contactOf(contact) ?? undefined,
            pending: false,
          });
        this.publish();
      },
      () => {
        // The card says "no contact" rather than "looking up" until the next cue.
        remember(this.contacts, e164, { at: this.now(), value: undefined, pending: false });
        this.publish();
      },
    );
    return asking;
  }

  /** A number's latest calls (one query per number a card shows, reused a while). */
  private history(e164: string): Known<(CallRow & { key: string })[]> | undefined {
    const known = this.histories.get(e164);
    if (known && (known.pending || this.now() - known.at < HISTORY_TTL_MS)) return known;
    const asking = { at: this.now(), value: known?.value, pending: true };
    remember(this.histories, e164, asking);
    this.store.listCalls({ limit: HISTORY + 1, number: e164.replace(/\D/g, '') }).then(
      (rows) => {
        const value = rows
          .filter((row) => row.record.externalE164 === e164)
          .map((row) => ({ ...row, key: `${row.record.source}\n${row.record.callId}` }));
        remember(this.histories, e164, { at: this.now(), value, pending: false });
        this.publish();
      },
      () => {
        remember(this.histories, e164, { at: this.now(), value: [], pending: false });
        this.publish();
      },
    );
    return asking;
  }

  /** Each stream's view, sent where it changed; and a look again when an ended card expires. */
  private publish(streams: Iterable<Stream> = this.streams): void {
    for (const s of streams) {
      const view = this.view(s.extension);
      const text = JSON.stringify(view);
      if (text === s.last) continue;
      s.last = text;
      s.send(view);
    }
    clearTimeout(this.expiry);
    const ends = [...this.rows.values()]
      .filter((row) => row.record.status === 'ended' && this.carded(row))
      .map((row) => endOf(row) + ENDED_CARD_MS);
    if (ends.length && this.streams.size) {
      this.expiry = setTimeout(() => this.publish(), Math.max(0, Math.min(...ends) - this.now()));
      this.expiry.unref();
    }
  }
}

/** When a call ended: its end, else (an end the webhooks did not give) its last change. */
const endOf = (row: CallRow): number => {
  const at = row.record.endedAt ? Date.parse(row.record.endedAt) : NaN;
  return Number.isNaN(at) ? Date.parse(row.updatedAt) : at;
};

/** Ringing first, then the live ones, then those that ended. */
const order = (c: DeskCard): number => (c.state === 'ringing' ? 0 : c.state === 'ended' ? 2 : 1);

function remember<T>(map: Map<string, T>, key: string, value: T): void {
  map.delete(key);
  map.set(key, value);
  // The oldest first out (a Map keeps insertion order).
  while (map.size > MAX_NUMBERS) map.delete(map.keys().next().value!);
}
