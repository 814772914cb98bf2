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
  /** Secrets that take turns under a key (a refreshed token): the current and the one before. */
  private readonly turns = new Map<string, { current: string[]; previous: string[] }>();

  constructor(secrets: Iterable<string>) {
    this.add(secrets);
  }

  /** Scrub these too (relay.yaml reloaded with a new token: the old ones stay secret as well). */
  add(secrets: Iterable<string>): void {
    for (const s of secrets) this.secrets.add(s);
    this.build();
  }

  /**
   * `secrets` take the place of those given before under `key`, which stay scrubbed for one more
   * turn (a message being written may hold one): a token refreshed every hour for months would
   * otherwise grow the pattern without end.
   */
  replace(key: string, secrets: Iterable<string>): void {
    const current = [...secrets];
    const was = this.turns.get(key);
    if (
      was &&
      current.length === was.current.length &&
      current.every((s, i) => s === was.current[i])
    )
      return;
    this.turns.set(key, { current, previous: was?.current ?? [] });
    this.build();
  }

  private build(): void {
    const forms = new Set<string>();
    const all = [...this.secrets];
    for (const t of this.turns.values()) all.push(...t.current, ...t.previous);
    for (const s of all) {
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
