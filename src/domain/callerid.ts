// What a phone system's CRM lookup answers (callerid/): a contact as 3CX's template reads it, and
// the probe the admin API and the console's Setup page show ("what would 3CX show for this
// number"). Shared by callerid/ (which answers) and http/ (which shows), hence here.

/** One contact in a lookup's answer: every field a string ("" when unknown), as 3CX reads it. */
export interface CrmContact {
  id: string;
  firstName: string;
  lastName: string;
  company: string;
  email: string;
  phoneBusiness: string;
  phoneMobile: string;
  phoneHome: string;
  phoneOther: string;
  /** The record's page in the CRM (3CX's ContactUrl). */
  url: string;
  /** 3CX's word for the record's kind: "Contacts". */
  entityType: string;
  /** The relay target that answered. */
  target: string;
}

export type LookupKind = 'number' | 'text' | 'email' | 'create';

/** How a lookup ended: found, not found, the CRM too slow (answerWithinMs), or failing. */
export type LookupResult = 'hit' | 'miss' | 'timeout' | 'error';

export interface LookupAnswer {
  contacts: CrmContact[];
  result: LookupResult;
  /** Answered from the cache, without asking a CRM. */
  cached: boolean;
  /** The target whose contact answered (null: none). */
  target: string | null;
  /** Milliseconds from the question to the answer. */
  ms: number;
  /** The number as looked up (E.164), for a number lookup that could be read as one. */
  e164?: string;
}
