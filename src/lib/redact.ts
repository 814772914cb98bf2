// Keeps configured secrets out of everything an admin or a log reads: delivery errors (a CRM may
// echo a token back), pages, API answers. Every secret is replaced wherever it appears, raw or
// URL-encoded, base64-encoded (Basic credentials) or escaped inside a JSON string, by a fixed mark.

export const REDACTED = '[redacted]';

/** Secrets shorter than this are not matched: they would blank out ordinary words. */
const MIN_SECRET = 6;

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class Redactor {
  private pattern: RegExp | undefined;
  private readonly secrets = new Set<string>();

  constructor(secrets: Iterable<string>) {
    this.add(secrets);
  }

  /** Scrub these too (relay.yaml reloaded with a new token: the old ones stay secret as well). */
  add(secrets: Iterable<string>): void {
    for (const s of secrets) this.secrets.add(s);
    const forms = new Set<string>();
    for (const s of this.secrets) {
      if (typeof s !== 'string' || s.length < MIN_SECRET) continue;
      forms.add(s);
      forms.add(encodeURIComponent(s));
      forms.add(Buffer.from(s).toString('base64').replace(/=+$/, ''));
      forms.add(JSON.stringify(s).slice(1, -1));
    }
    // Longest first, so that a secret containing another is replaced whole.
    const list = [...forms].sort((a, b) => b.length - a.length).map(escape);
    this.pattern = list.length ? new RegExp(list.join('|'), 'g') : undefined;
  }

  /** `text` with every secret replaced. */
  text(text: string): string {
    return this.pattern ? text.replace(this.pattern, REDACTED) : text;
  }

  /** A JSON-like value with every string scrubbed (keys too). */
  value<T>(v: T): T {
    if (!this.pattern) return v;
    if (typeof v === 'string') return this.text(v) as T;
    if (Array.isArray(v)) return v.map((x: unknown) => this.value(x)) as T;
    if (v && typeof v === 'object' && !Buffer.isBuffer(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[this.text(k)] = this.value(x);
      return out as T;
    }
    return v;
  }
}
