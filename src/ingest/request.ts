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

export function lowerKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(lowerKeys);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const lk = k.toLowerCase();
      if (!(lk in out)) out[lk] = lowerKeys(x);
    }
    return out;
  }
  return v;
}

function formFields(s: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of new URLSearchParams(s)) {
    const lk = k.toLowerCase();
    if (!(lk in out)) out[lk] = v;
  }
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
