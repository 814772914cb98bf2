// HMAC signatures of webhooks, for providers that sign (a source's `signature`): the digest of the
// raw body, or of "<timestamp>.<body>" when the provider also sends the time it signed at (which
// makes a captured request useless after toleranceSec), compared in constant time.

import { createHmac, timingSafeEqual } from 'node:crypto';

export interface SignatureSettings {
  /** Header that carries the signature. */
  header: string;
  algorithm: 'sha1' | 'sha256' | 'sha512';
  encoding: 'hex' | 'base64';
  secret: string;
  /** Text before the digest in the header, e.g. "sha256=". */
  prefix?: string;
  /** Header with the signing time in Unix seconds; then the signed text is "<time>.<body>". */
  timestampHeader?: string;
  toleranceSec: number;
}

/** Why a signature does not hold (undefined: it does); never says what the right one would be. */
export function signatureProblem(
  s: SignatureSettings,
  header: (name: string) => string | undefined,
  body: Buffer,
  nowMs = Date.now(),
): string | undefined {
  const given = header(s.header)?.trim();
  if (!given) return `no ${s.header} header`;
  const prefix = s.prefix ?? '';
  if (!given.startsWith(prefix)) return `${s.header} does not start with "${prefix}"`;
  let signed: Buffer = body;
  if (s.timestampHeader) {
    const ts = header(s.timestampHeader)?.trim() ?? '';
    if (!/^\d{1,12}$/.test(ts)) return `no Unix time in ${s.timestampHeader}`;
    if (Math.abs(nowMs / 1000 - Number(ts)) > s.toleranceSec)
      return `${s.timestampHeader} is more than ${s.toleranceSec} s from the relay's clock`;
    signed = Buffer.concat([Buffer.from(`${ts}.`), body]);
  }
  const expected = createHmac(s.algorithm, s.secret).update(signed).digest();
  const digest = given.slice(prefix.length);
  const valid =
    s.encoding === 'hex' ? /^[0-9a-f]+$/i.test(digest) : /^[A-Za-z0-9+/]+=*$/.test(digest);
  const got = valid ? Buffer.from(digest, s.encoding) : Buffer.alloc(0);
  if (got.length !== expected.length || !timingSafeEqual(got, expected))
    return `${s.header} does not match the body (check the secret, algorithm and encoding)`;
  return undefined;
}
