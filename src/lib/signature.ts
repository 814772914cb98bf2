// Webhook signatures, for providers that sign (a source's `signature`), as each provider does it:
// `hmac`, a generic HMAC of the raw body (or of "<timestamp>.<body>"); and presets for Twilio
// (the URL it called plus its sorted form parameters), Standard Webhooks, Stripe-style timestamped
// headers, a token inside the JSON payload (Aircall) and Zoom (with its URL validation challenge).
// Digests are compared in constant time; a problem never says what the right value would be.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Every scheme `signature.scheme` accepts, the generic one first (the default). */
export const SIGNATURE_SCHEMES = [
  'hmac',
  'twilio',
  'standard-webhooks',
  'stripe',
  'payload-token',
  'zoom',
] as const;
export type SignatureScheme = (typeof SIGNATURE_SCHEMES)[number];

export interface HmacSignature {
  scheme?: 'hmac' | undefined;
  /** Header that carries the signature. */
  header: string;
  algorithm: 'sha1' | 'sha256' | 'sha512';
  encoding: 'hex' | 'base64';
  secret: string;
  /** Text before the digest in the header, e.g. "sha256=". */
  prefix?: string | undefined;
  /** Header with the signing time in Unix seconds; then the signed text is "<time>.<body>". */
  timestampHeader?: string | undefined;
  toleranceSec: number;
}

export interface TwilioSignature {
  scheme: 'twilio';
  /** The account's Auth Token. */
  secret: string;
  /** The relay as Twilio calls it; the signed URL is this plus the request's path and query. */
  publicUrl?: string | undefined;
}

export interface StandardWebhooksSignature {
  scheme: 'standard-webhooks';
  /** "whsec_<base64>": the key is the base64 after the prefix. */
  secret: string;
  toleranceSec: number;
}

export interface StripeSignature {
  scheme: 'stripe';
  secret: string;
  /** Header with "t=<time>,v1=<hex>[,v1=<hex>...]" (default Stripe-Signature). */
  header: string;
  toleranceSec: number;
}

export interface PayloadTokenSignature {
  scheme: 'payload-token';
  secret: string;
  /** Dotted path of the token in the JSON body (default "token", as Aircall sends it). */
  path: string;
}

export interface ZoomSignature {
  scheme: 'zoom';
  /** The app's Secret Token. */
  secret: string;
  toleranceSec: number;
}

export type SignatureSettings =
  | HmacSignature
  | TwilioSignature
  | StandardWebhooksSignature
  | StripeSignature
  | PayloadTokenSignature
  | ZoomSignature;

/** What a signature is checked against. */
export interface SignedRequest {
  header: (name: string) => string | undefined;
  body: Buffer;
  /** The path and query exactly as received ("/hooks/twilio/tok?x=1"): Twilio signs the URL. */
  url: string;
}

const hmac = (algorithm: string, key: string | Buffer, data: string | Buffer): Buffer =>
  createHmac(algorithm, key).update(data).digest();

/** Constant time for equal lengths; a length that differs says nothing about the secret. */
function same(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Text compared in constant time whatever its length (both sides hashed first). */
function sameText(a: string, b: string): boolean {
  const h = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b)) && a === b;
}

const HEX = /^[0-9a-f]+$/i;
const BASE64 = /^[A-Za-z0-9+/]+=*$/;

function decoded(text: string, encoding: 'hex' | 'base64'): Buffer {
  return (encoding === 'hex' ? HEX : BASE64).test(text)
    ? Buffer.from(text, encoding)
    : Buffer.alloc(0);
}

/** Why a Unix time is unusable or too far from now (undefined: it is fine). */
function staleness(
  name: string,
  value: string | undefined,
  toleranceSec: number,
  nowMs: number,
  millisToo = false,
): string | undefined {
  const ts = value?.trim() ?? '';
  if (!(millisToo ? /^\d{1,13}$/ : /^\d{1,12}$/).test(ts)) return `no Unix time in ${name}`;
  // Seconds, or milliseconds from a sender that may write those (13 digits).
  const sec = ts.length === 13 ? Number(ts) / 1000 : Number(ts);
  if (Math.abs(nowMs / 1000 - sec) > toleranceSec)
    return `${name} is more than ${toleranceSec} s from the relay's clock`;
  return undefined;
}

/** Why a signature does not hold (undefined: it does); never says what the right one would be. */
export function signatureProblem(
  s: SignatureSettings,
  req: SignedRequest,
  nowMs = Date.now(),
): string | undefined {
  switch (s.scheme) {
    case undefined:
    case 'hmac':
      return hmacProblem(s, req, nowMs);
    case 'twilio':
      return twilioProblem(s, req);
    case 'standard-webhooks':
      return standardWebhooksProblem(s, req, nowMs);
    case 'stripe':
      return stripeProblem(s, req, nowMs);
    case 'payload-token':
      return payloadTokenProblem(s, req);
    case 'zoom':
      return zoomProblem(s, req, nowMs);
  }
}

function hmacProblem(s: HmacSignature, req: SignedRequest, nowMs: number): string | undefined {
  const given = req.header(s.header)?.trim();
  if (!given) return `no ${s.header} header`;
  const prefix = s.prefix ?? '';
  if (!given.startsWith(prefix)) return `${s.header} does not start with "${prefix}"`;
  let signed: Buffer = req.body;
  if (s.timestampHeader) {
    const ts = req.header(s.timestampHeader);
    const stale = staleness(s.timestampHeader, ts, s.toleranceSec, nowMs);
    if (stale) return stale;
    signed = Buffer.concat([Buffer.from(`${ts!.trim()}.`), req.body]);
  }
  if (!same(decoded(given.slice(prefix.length), s.encoding), hmac(s.algorithm, s.secret, signed)))
    return `${s.header} does not match the body (check the secret, algorithm and encoding)`;
  return undefined;
}

// --- Twilio ------------------------------------------------------------------------------------

/** The URL as given, and with its port dropped or the scheme's default port added. */
function urlVariants(url: string): string[] {
  const m = /^(https?):\/\/([^/?#:]+)(?::(\d+))?(.*)$/i.exec(url);
  if (!m) return [url];
  const [, scheme, host, port, rest] = m;
  if (port) return [url, `${scheme}://${host}${rest}`];
  return [url, `${scheme}://${host}:${scheme!.toLowerCase() === 'https' ? 443 : 80}${rest}`];
}

/**
 * The text Twilio signs after the URL: form parameters sorted by name (then value, each distinct
 * value once, as Twilio's own libraries do), each name directly followed by its value.
 */
export function twilioParams(form: URLSearchParams): string {
  const names = [...new Set(form.keys())].sort();
  return names
    .map((n) =>
      [...new Set(form.getAll(n))]
        .sort()
        .map((v) => n + v)
        .join(''),
    )
    .join('');
}

function twilioProblem(s: TwilioSignature, req: SignedRequest): string | undefined {
  const given = req.header('x-twilio-signature')?.trim();
  if (!given) return 'no X-Twilio-Signature header';
  if (req.header('x-twilio-webhooks-signature-settings'))
    return (
      'Twilio signed this with a Webhooks Rule key (X-Twilio-Webhooks-Signature-Settings), ' +
      'which the relay does not support: sign with the Auth Token'
    );
  if (!s.publicUrl) return 'no public URL to check Twilio signatures against';
  const url = s.publicUrl.replace(/\/+$/, '') + req.url;
  const query = new URLSearchParams(
    req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : '',
  );
  const bodyHash = query.get('bodySHA256');
  let params = '';
  if (bodyHash !== null) {
    // A JSON body: Twilio signs the URL alone, which carries the body's SHA-256.
    const actual = createHash('sha256').update(req.body).digest();
    if (!same(decoded(bodyHash, 'hex'), actual)) return 'the body does not match its bodySHA256';
  } else if (req.body.length) {
    params = twilioParams(new URLSearchParams(req.body.toString('utf8')));
  }
  const got = decoded(given, 'base64');
  // Twilio signs with or without the port, inconsistently: either is accepted, as its libraries do.
  if (urlVariants(url).some((u) => same(got, hmac('sha1', s.secret, u + params)))) return undefined;
  return (
    `X-Twilio-Signature does not match the URL and parameters (check the Auth Token, and that ` +
    `Twilio calls the relay at ${s.publicUrl}: the URL checked is that plus the request's path ` +
    'and query)'
  );
}

// --- Standard Webhooks -------------------------------------------------------------------------

/** The key of a Standard Webhooks secret ("whsec_<base64>"); empty when it is no such secret. */
export function standardWebhooksKey(secret: string): Buffer {
  const b64 = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret;
  return BASE64.test(b64) ? Buffer.from(b64, 'base64') : Buffer.alloc(0);
}

function standardWebhooksProblem(
  s: StandardWebhooksSignature,
  req: SignedRequest,
  nowMs: number,
): string | undefined {
  const id = req.header('webhook-id')?.trim();
  const ts = req.header('webhook-timestamp')?.trim();
  const sigs = req.header('webhook-signature')?.trim();
  if (!id) return 'no webhook-id header';
  if (!sigs) return 'no webhook-signature header';
  const stale = staleness('webhook-timestamp', ts, s.toleranceSec, nowMs);
  if (stale) return stale;
  const expected = hmac(
    'sha256',
    standardWebhooksKey(s.secret),
    Buffer.concat([Buffer.from(`${id}.${ts}.`), req.body]),
  );
  const listed = sigs.split(/\s+/).map((e) => e.split(','));
  const v1 = listed.filter(([v]) => v === 'v1').map(([, sig]) => sig ?? '');
  if (!v1.length)
    return listed.some(([v]) => v === 'v1a')
      ? 'only asymmetric (v1a, ed25519) signatures, which the relay does not support: ask for a ' +
          'symmetric (whsec_) secret'
      : 'no v1 signature in webhook-signature';
  if (v1.some((sig) => same(decoded(sig, 'base64'), expected))) return undefined;
  return 'no signature in webhook-signature matches (check the whsec_ secret)';
}

// --- Stripe-style ------------------------------------------------------------------------------

function stripeProblem(s: StripeSignature, req: SignedRequest, nowMs: number): string | undefined {
  const given = req.header(s.header)?.trim();
  if (!given) return `no ${s.header} header`;
  let t: string | undefined;
  const v1: string[] = [];
  for (const part of given.split(',')) {
    const eq = part.indexOf('=');
    const [k, v] = [part.slice(0, eq).trim(), part.slice(eq + 1).trim()];
    if (k === 't') t = v;
    else if (k === 'v1') v1.push(v);
  }
  if (t === undefined) return `no t=<time> in ${s.header}`;
  if (!v1.length) return `no v1= signature in ${s.header}`;
  const stale = staleness(`${s.header} t=`, t, s.toleranceSec, nowMs);
  if (stale) return stale;
  const expected = hmac('sha256', s.secret, Buffer.concat([Buffer.from(`${t}.`), req.body]));
  if (v1.some((sig) => same(decoded(sig, 'hex'), expected))) return undefined;
  return `no v1 signature in ${s.header} matches the body (check the signing secret)`;
}

// --- A token in the payload --------------------------------------------------------------------

function payloadTokenProblem(s: PayloadTokenSignature, req: SignedRequest): string | undefined {
  let v: unknown;
  try {
    v = JSON.parse(req.body.toString('utf8'));
  } catch {
    return `the body is not JSON, so it has no ${s.path}`;
  }
  for (const k of s.path.split('.'))
    v =
      v && typeof v === 'object' && !Array.isArray(v)
        ? (v as Record<string, unknown>)[k]
        : undefined;
  if (typeof v !== 'string' || !v) return `no token at ${s.path} in the body`;
  if (!sameText(v, s.secret)) return `the token at ${s.path} in the body is wrong`;
  return undefined;
}

// --- Zoom --------------------------------------------------------------------------------------

function zoomProblem(s: ZoomSignature, req: SignedRequest, nowMs: number): string | undefined {
  const given = req.header('x-zm-signature')?.trim();
  if (!given) return 'no x-zm-signature header';
  if (!given.startsWith('v0=')) return 'x-zm-signature does not start with "v0="';
  const ts = req.header('x-zm-request-timestamp');
  const stale = staleness('x-zm-request-timestamp', ts, s.toleranceSec, nowMs, true);
  if (stale) return stale;
  const expected = hmac(
    'sha256',
    s.secret,
    Buffer.concat([Buffer.from(`v0:${ts!.trim()}:`), req.body]),
  );
  if (!same(decoded(given.slice(3), 'hex'), expected))
    return 'x-zm-signature does not match the body (check the Secret Token)';
  return undefined;
}

/**
 * Zoom's endpoint URL validation (an `endpoint.url_validation` event, signed like any other):
 * the answer it wants, or undefined for any other body. Answered only after the signature held,
 * as Zoom's own samples do: unsigned, it would sign any text an outsider chose with the secret.
 */
export function zoomChallenge(
  s: SignatureSettings,
  body: Buffer,
): { plainToken: string; encryptedToken: string } | undefined {
  if (s.scheme !== 'zoom') return undefined;
  let v: { event?: unknown; payload?: { plainToken?: unknown } } | null;
  try {
    v = JSON.parse(body.toString('utf8')) as typeof v;
  } catch {
    return undefined;
  }
  const plainToken = v?.payload?.plainToken;
  if (v?.event !== 'endpoint.url_validation' || typeof plainToken !== 'string') return undefined;
  return { plainToken, encryptedToken: hmac('sha256', s.secret, plainToken).toString('hex') };
}
