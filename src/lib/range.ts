// One HTTP byte range (RFC 9110 14.1.2), as audio players ask for them: "bytes=0-",
// "bytes=100-199", "bytes=-500" (the last 500). Several ranges at once are answered whole (a server
// may), so only the single-range forms matter.

export type ByteRange = { start: number; end: number } | 'unsatisfiable' | undefined;

/**
 * The range `header` asks for out of `length` bytes, end inclusive; undefined: answer the whole
 * (no header, a form not understood, several ranges, or a length unknown where one is needed).
 */
export function parseRange(header: string | undefined, length: number | undefined): ByteRange {
  const m = /^bytes=(\d*)-(\d*)$/.exec((header ?? '').trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    // The last N bytes.
    if (length === undefined) return undefined;
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, length - n), end: length - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? undefined : Number(m[2]);
  if (end !== undefined && end < start) return undefined;
  if (length === undefined) return undefined;
  if (start >= length) return 'unsatisfiable';
  return { start, end: Math.min(end ?? length - 1, length - 1) };
}

/** The bytes [start, end] of a stream, read through once, never held whole. */
export async function* slice(
  body: AsyncIterable<Uint8Array>,
  start: number,
  end: number,
): AsyncIterable<Uint8Array> {
  let at = 0;
  for await (const chunk of body) {
    const from = Math.max(0, start - at);
    const to = Math.min(chunk.byteLength, end + 1 - at);
    if (to > from) yield chunk.subarray(from, to);
    at += chunk.byteLength;
    if (at > end) return;
  }
}
