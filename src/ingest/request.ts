// How a received request's bytes become the input an adapter sees: JSON (whatever the content
// type says), form-encoded fields, a bare text body, or only a query string. Keys are lower-cased
// so that adapters match `Event` and `event` alike.

import type { RawRequest } from '../domain/request.js';

export interface AdapterInput {
  /** Query parameters and body fields, keys lower-cased; body fields win. */
  fields: Record<string, unknown>;
  /** The body as text, trimmed, with one pair of enclosing double quotes removed. */
  text: string;
  /** Set when the body claimed (or looked like) JSON but was not. */
  parseError?: string;
}

/**
 * The first value for a key wins, checked among the fields themselves: a field named
 * "constructor" (lower-cased keys meet no other Object.prototype member) is a field like any
 * other, and "__proto__" becomes a field rather than the object's prototype.
 */
function setFirst(out: Record<string, unknown>, k: string, v: unknown): void {
  if (Object.hasOwn(out, k)) return;
  if (k === '__proto__')
    Object.defineProperty(out, k, {
      value: v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  else out[k] = v;
}

export function lowerKeys(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) return v.map(lowerKeys);
  // Keys without an entry array each: this runs on every field of every webhook.
  const o = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) setFirst(out, k.toLowerCase(), lowerKeys(o[k]));
  return out;
}

function formFields(s: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of new URLSearchParams(s)) setFirst(out, k.toLowerCase(), v);
  return out;
}

export function parseRequest(
  req: Pick<RawRequest, 'query' | 'contentType' | 'body'>,
): AdapterInput {
  const fields = req.query ? formFields(req.query) : {};
  const raw = req.body.length ? req.body.toString('utf8') : '';
  const trimmed = raw.trim();
  const text =
    trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"')
      ? trimmed.slice(1, -1)
      : trimmed;
  const ct = (req.contentType ?? '').split(';')[0]!.trim().toLowerCase();
  const claimsJson = ct === 'application/json' || ct.endsWith('+json');
  if (!trimmed) return { fields, text };

  if (claimsJson || trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(trimmed);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
        return { fields: { ...fields, ...(lowerKeys(parsed) as Record<string, unknown>) }, text };
      }
      // A JSON string or array is content, not fields: leave it to the adapter as text.
      return { fields, text: typeof parsed === 'string' ? parsed : text };
    } catch (err) {
      if (claimsJson || trimmed.startsWith('{'))
        return { fields, text, parseError: `body is not valid JSON: ${(err as Error).message}` };
    }
  }
  if (
    ct === 'application/x-www-form-urlencoded' ||
    (!ct && /^[^\s=&]+=[^\s]*(&[^\s=&]+=[^\s]*)*$/.test(trimmed))
  ) {
    return { fields: { ...fields, ...formFields(trimmed) }, text };
  }
  return { fields, text };
}
