// Small CRM targets for the caller-ID tests: they find contacts from a list the test gives (by
// number the naive way, national digits only, so that a look-alike from another country comes
// back as a real CRM search might return it), count their searches, and can be held (a slow CRM)
// or fail.

import type { ContactCard, ContactQuery, NewContact, Target } from '../../src/targets/types.js';

export type ContactTarget = Pick<Target, 'name' | 'findContacts' | 'addContact'>;

const digits = (s: string): string => s.replace(/\D/g, '');

export class FakeCrm implements ContactTarget {
  searches = 0;
  created: NewContact[] = [];
  /** Set: every search waits for it (a slow CRM). */
  hold: Promise<void> | undefined;
  /** Set: every search fails with it. */
  failWith: Error | undefined;
  /** Resolved after each search has answered (or failed). */
  private answered: (() => void)[] = [];

  constructor(
    readonly name: string,
    readonly contacts: ContactCard[] = [],
  ) {}

  /** Resolves once the next search has answered or failed. */
  nextAnswer(): Promise<void> {
    return new Promise((r) => this.answered.push(r));
  }

  findContacts = async (q: ContactQuery): Promise<ContactCard[]> => {
    this.searches++;
    // The CRM as it was when asked: a contact made while the search is held is not in its answer.
    const known = [...this.contacts];
    try {
      if (this.hold) await this.hold;
      if (this.failWith) throw this.failWith;
      if (q.e164) {
        // The last 9 digits, as a CRM's fuzzy phone search: look-alikes from elsewhere match too.
        const tail = digits(q.e164).slice(-9);
        return known
          .filter((c) => c.phones.some((p) => digits(p.number).endsWith(tail)))
          .slice(0, q.limit);
      }
      if (q.email) return known.filter((c) => c.email?.toLowerCase() === q.email).slice(0, q.limit);
      const t = (q.text ?? '').toLowerCase();
      return known
        .filter((c) =>
          [c.firstName, c.lastName, c.company].some((v) => v?.toLowerCase().includes(t)),
        )
        .slice(0, q.limit);
    } finally {
      for (const r of this.answered.splice(0)) setImmediate(r);
    }
  };

  addContact = async (c: NewContact): Promise<ContactCard> => {
    this.created.push(c);
    if (this.failWith) throw this.failWith;
    const card: ContactCard = {
      id: `new-${this.created.length}`,
      ...(c.firstName ? { firstName: c.firstName } : {}),
      ...(c.lastName ? { lastName: c.lastName } : {}),
      ...(c.email ? { email: c.email } : {}),
      phones: c.e164 ? [{ kind: 'business', number: c.e164 }] : [],
      url: `https://crm.example/${this.name}/new-${this.created.length}`,
      entityType: 'contact',
    };
    this.contacts.push(card);
    return card;
  };
}

/** A held gate: `open()` lets every waiting search go on. */
export function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

export const jana: ContactCard = {
  id: '101',
  firstName: 'Jana',
  lastName: 'Nováková',
  company: 'Acme s.r.o.',
  email: 'jana@acme.example',
  phones: [
    { kind: 'mobile', number: '+420 774 852 629' },
    { kind: 'business', number: '+420 222 000 320' },
  ],
  url: 'https://crm.example/contacts/101',
  entityType: 'contact',
};

/** Jana's mobile's national digits under Poland's code (valid there too): another person. */
export const lookAlike: ContactCard = {
  id: '202',
  firstName: 'Piotr',
  lastName: 'Nowak',
  phones: [{ kind: 'mobile', number: '+48 774 852 629' }],
  url: 'https://crm.example/contacts/202',
  entityType: 'contact',
};
