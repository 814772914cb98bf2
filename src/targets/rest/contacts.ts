// A recipe's contacts as a phone system's caller lookup sees them (callerid/): the candidates its
// contact lookup finds for a number (the same search a delivery makes), only those that really
// have it (sameNumber), the one made first first, each made into a card by the recipe's
// `lookups.contact.card` expressions over the candidate as `read` gave it.

import { sameNumber } from '../kit/lookup.js';
import { firstMade, type Candidate } from '../kit/phone-lookup.js';
import type { ContactCard } from '../types.js';
import { expression, template, type Expression, type Template } from './compile.js';
import type { Recipe } from './recipe.js';

/** A candidate of the recipe's `read`, with the `data` it kept of the record. */
export type Found = Candidate<string> & { data?: Record<string, unknown> };

type Field = 'firstName' | 'lastName' | 'company' | 'email';
type Card = NonNullable<NonNullable<Recipe['lookups']['contact']>['card']>;

const KINDS = new Set(['business', 'mobile', 'home', 'other']);

const str = (v: unknown): string | undefined =>
  typeof v === 'string' && v.trim() ? v.trim() : typeof v === 'number' ? String(v) : undefined;

/** Whether a value `read` kept of a record holds this email (any field, case-insensitive). */
function holdsEmail(v: unknown, email: string): boolean {
  if (typeof v === 'string') return v.trim().toLowerCase() === email;
  if (Array.isArray(v)) return v.some((x) => holdsEmail(x, email));
  if (v && typeof v === 'object') return Object.values(v).some((x) => holdsEmail(x, email));
  return false;
}

/**
 * Whether the record has the email asked about, as its `data` says: a CRM's email search may
 * match a field the recipe does not read, and a card without the address would show the phone
 * client a contact that does not have it.
 */
export function hasEmail(c: Found, email: string): boolean {
  return holdsEmail(c.data, email.trim().toLowerCase());
}

export class RecipeCards {
  private readonly x: Partial<Record<Field | 'phones' | 'entityType', Expression>>;
  private readonly url: Template | undefined;

  constructor(
    card: Card,
    /** Evaluates with the target's error wording (which recipe, which expression). */
    private readonly evaluate: (
      e: Expression,
      input: Record<string, unknown>,
      what: string,
    ) => Promise<unknown>,
  ) {
    this.x = {};
    for (const k of ['firstName', 'lastName', 'company', 'email', 'phones', 'entityType'] as const)
      if (card[k] !== undefined) this.x[k] = expression(card[k]);
    this.url = card.url === undefined ? undefined : template(card.url);
  }

  /** The cards of the candidates that have this number, the one made first first. */
  async cards(
    e164: string,
    candidates: Found[],
    limit: number,
    vars: Record<string, unknown>,
  ): Promise<ContactCard[]> {
    const seen = new Map<string, Found>();
    for (const c of candidates)
      if (!seen.has(c.id) && c.numbers.some((n) => sameNumber(n, e164))) seen.set(c.id, c);
    const picked = [...seen.values()].sort(firstMade).slice(0, Math.max(1, limit));
    const out: ContactCard[] = [];
    for (const c of picked) out.push(await this.card(c, vars));
    return out;
  }

  /** The cards of records a text or email search found, in the CRM's order. */
  async listed(
    found: Found[],
    limit: number,
    vars: Record<string, unknown>,
  ): Promise<ContactCard[]> {
    const seen = new Map<string, Found>();
    for (const c of found) if (!seen.has(c.id)) seen.set(c.id, c);
    const out: ContactCard[] = [];
    for (const c of [...seen.values()].slice(0, Math.max(1, limit)))
      out.push(await this.card(c, vars));
    return out;
  }

  async card(c: Found, vars: Record<string, unknown>): Promise<ContactCard> {
    const contact = {
      id: c.id,
      name: c.name,
      numbers: c.numbers.filter((n) => n),
      createdAt: c.createdAt,
      data: c.data ?? {},
    };
    const input = { contact, vars };
    const field = async (k: Field | 'entityType') =>
      this.x[k] ? str(await this.evaluate(this.x[k], input, `the contact card's ${k}`)) : undefined;
    const card: ContactCard = {
      id: c.id,
      phones: await this.phones(c, input),
      url: null,
      entityType: (await field('entityType')) ?? 'contact',
    };
    const first = await field('firstName');
    const last = (await field('lastName')) ?? (first ? undefined : str(c.name));
    const company = await field('company');
    const email = await field('email');
    if (first) card.firstName = first;
    if (last) card.lastName = last;
    if (company) card.company = company;
    if (email) card.email = email;
    if (c.createdAt) card.createdAt = c.createdAt;
    if (this.url) {
      const url = await this.url.render(input, true).catch(() => '');
      card.url = /^https?:\/\//.test(url) ? url : null;
    }
    return card;
  }

  private async phones(c: Found, input: Record<string, unknown>): Promise<ContactCard['phones']> {
    if (!this.x.phones)
      return c.numbers.filter((n): n is string => !!n).map((number) => ({ kind: 'other', number }));
    const v = await this.evaluate(this.x.phones, input, "the contact card's phones");
    return (Array.isArray(v) ? v : v ? [v] : [])
      .map((p) => p as { kind?: unknown; number?: unknown })
      .filter((p) => str(p?.number))
      .map((p) => ({
        kind: (KINDS.has(String(p.kind))
          ? p.kind
          : 'other') as ContactCard['phones'][number]['kind'],
        number: str(p.number)!,
      }));
  }
}
