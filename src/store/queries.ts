// What the backends' queries bind, and the SQL they share word for word. A filter's meaning (which
// digits a number search looks for, how a time bound compares) is decided here once; each backend
// only writes it in its own SQL.

/**
 * Collects the values of a query built from optional filters and names their placeholders:
 * `?` for SQLite, `$1`, `$2`, ... for PostgreSQL. Each use binds anew (SQLite's `?` is one value
 * each), so a value the SQL names twice is bound twice.
 */
export class Binder {
  readonly values: unknown[] = [];
  constructor(private readonly style: 'sqlite' | 'postgres') {}

  bind(v: unknown): string {
    this.values.push(v);
    return this.style === 'sqlite' ? '?' : `$${this.values.length}`;
  }
}

/** `WHERE a AND b`, or nothing when there is no condition. */
export const whereOf = (conds: string[]): string =>
  conds.length ? `WHERE ${conds.join(' AND ')}` : '';

/**
 * A time as UTC ISO text: SQLite keeps times as text and compares them as text, so a bound
 * written with an offset ("+01:00") would compare wrong.
 */
export function isoTime(v: string): string {
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new RangeError(`not an ISO-8601 time: ${JSON.stringify(v)}`);
  return new Date(ms).toISOString();
}
