// Agents' company sign-in (relay.yaml auth.oidc) through OpenID Connect with openid-client: the
// authorization code flow with PKCE (S256), state and nonce. What the flow must remember between
// leaving for the provider and coming back lives in a sealed cookie of its own (no server state,
// so that the provider may send the agent back to any instance). The provider's email is matched
// to relay.yaml's agents: directory, case-insensitively.

import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type * as Client from 'openid-client';
import { RelayError } from '../domain/errors.js';
import { requestOrigin } from '../http/origin.js';
import type { Logger } from '../telemetry/log.js';
import type { AgentEntry, OidcSettings } from './types.js';

const FLOW_COOKIE = 'callrelay_oidc';
const FLOW_PATH = '/agent/oidc';
/** How long the provider may take to send the agent back (their typing a password included). */
const FLOW_MS = 10 * 60_000;
/** Seconds for each request to the provider (discovery, token, userinfo). */
const PROVIDER_TIMEOUT_SEC = 10;

interface Flow {
  state: string;
  nonce: string;
  verifier: string;
  next: string;
  /** When this flow stops being accepted (ms since the epoch). */
  until: number;
}

/** The button's words: "Sign in with <label>", by default the issuer's host. */
export const oidcLabel = (s: OidcSettings): string => s.label ?? new URL(s.issuer).host;

let library: Promise<typeof Client> | undefined;
/** openid-client, loaded at the first company sign-in: a relay without one never pays at start. */
const openid = (): Promise<typeof Client> => (library ??= import('openid-client'));

const PROVIDER_TROUBLE =
  'Try again in a few minutes; if it keeps failing, tell your administrator (the relay log says more).';

export class Oidc {
  /** The provider's metadata, discovered once per setting and kept; a failure is not kept. */
  private discovered: { key: string; config: Promise<Client.Configuration> } | undefined;

  constructor(
    private readonly settings: () => OidcSettings | undefined,
    private readonly log?: Logger,
  ) {}

  get configured(): OidcSettings | undefined {
    return this.settings();
  }

  private configuration(s: OidcSettings): Promise<Client.Configuration> {
    const key = createHash('sha256')
      .update(JSON.stringify([s.issuer, s.clientId, s.clientSecret]))
      .digest('base64url');
    if (this.discovered?.key === key) return this.discovered.config;
    const issuer = new URL(s.issuer);
    const config = openid()
      .then((client) =>
        client.discovery(issuer, s.clientId, s.clientSecret, undefined, {
          // The schema allows http only for a provider on this machine (tests, local trials).
          ...(issuer.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {}),
          timeout: PROVIDER_TIMEOUT_SEC,
        }),
      )
      .catch((err: unknown) => {
        // The next sign-in asks again, rather than every one failing until a restart.
        if (this.discovered?.config === config) this.discovered = undefined;
        this.log?.warn(
          { issuer: s.issuer, err: describe(err) },
          'company sign-in: the provider could not be discovered',
        );
        throw new RelayError(
          'RELAY_ERR_SIGN_IN_PROVIDER',
          `The company sign-in provider (${issuer.host}) could not be reached or answered ` +
            `something that is not OpenID Connect. ${PROVIDER_TROUBLE}`,
        );
      });
    this.discovered = { key, config };
    return config;
  }

  /** Off unless relay.yaml sets auth.oidc (a reload may set or remove it). */
  private need(): OidcSettings {
    const s = this.settings();
    if (!s)
      throw new RelayError(
        'RELAY_ERR_NOT_FOUND',
        'Company sign-in is not set up on this relay: ask your administrator for a sign-in link.',
      );
    return s;
  }

  /** GET /agent/sign-in/oidc: off to the provider, remembering the flow in a sealed cookie. */
  async begin(c: Context, next: string): Promise<Response> {
    const s = this.need();
    const config = await this.configuration(s);
    const client = await openid();
    const flow: Flow = {
      state: client.randomState(),
      nonce: client.randomNonce(),
      verifier: client.randomPKCECodeVerifier(),
      next,
      until: Date.now() + FLOW_MS,
    };
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: s.redirectUri,
      scope: s.scopes,
      code_challenge: await client.calculatePKCECodeChallenge(flow.verifier),
      code_challenge_method: 'S256',
      state: flow.state,
      nonce: flow.nonce,
    });
    // Lax, not Strict: the provider's redirect back is a top-level GET from another site.
    setCookie(c, FLOW_COOKIE, seal(s, flow), {
      httpOnly: true,
      sameSite: 'Lax',
      path: FLOW_PATH,
      maxAge: FLOW_MS / 1000,
      secure: requestOrigin(c).proto === 'https',
    });
    return c.redirect(url.href, 303);
  }

  /**
   * GET /agent/oidc/callback: the provider's answer checked (state, PKCE, the ID token and its
   * nonce), the email matched to the directory. The agent found and where they were going, or a
   * RelayError the page shows.
   */
  async finish(
    c: Context,
    directory: readonly AgentEntry[],
  ): Promise<{ agent: AgentEntry; next: string }> {
    const s = this.need();
    const raw = getCookie(c, FLOW_COOKIE);
    // Used once: a second visit of the same address has nothing to compare with.
    deleteCookie(c, FLOW_COOKIE, { path: FLOW_PATH, secure: requestOrigin(c).proto === 'https' });
    const flow = raw === undefined ? undefined : unseal(s, raw);
    if (!flow || flow.until < Date.now())
      throw new RelayError(
        'RELAY_ERR_SIGN_IN_EXPIRED',
        'This sign-in took too long or did not start in this browser. Start again from the ' +
          'sign-in page.',
      );
    const config = await this.configuration(s);
    const client = await openid();
    // The address the provider sent the agent to, as registered (the relay may sit behind a
    // proxy that changes its own view of the URL); openid-client sends it as redirect_uri.
    const current = new URL(s.redirectUri);
    current.search = new URL(c.req.url).search;
    let claims: Record<string, unknown>;
    try {
      const tokens = await client.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: flow.verifier,
        expectedState: flow.state,
        expectedNonce: flow.nonce,
        idTokenExpected: true,
      });
      claims = { ...tokens.claims() };
      // Providers that keep the ID token lean (conforming to the spec) answer the email at
      // userinfo; the subject must be the ID token's.
      if (typeof claims.email !== 'string' && config.serverMetadata().userinfo_endpoint)
        claims = {
          ...claims,
          ...(await client.fetchUserInfo(config, tokens.access_token, String(claims.sub))),
        };
    } catch (err) {
      throw this.refusal(s, err, client);
    }
    const email = typeof claims.email === 'string' ? claims.email.trim() : '';
    if (!email)
      throw new RelayError(
        'RELAY_ERR_SIGN_IN_REFUSED',
        'Your company account did not tell the relay your email address, which is how it knows ' +
          'you. Ask your administrator to let the relay read it (the "email" scope).',
      );
    const verified = claims.email_verified;
    // Some providers send the claim as a string.
    if (verified === false || (typeof verified === 'string' && verified.toLowerCase() === 'false'))
      throw new RelayError(
        'RELAY_ERR_SIGN_IN_REFUSED',
        `Your company account says ${email} is not verified. Verify it there, then sign in again.`,
      );
    const domain = email.slice(email.lastIndexOf('@') + 1).toLowerCase();
    // No word on it (Entra sends none): an email is only as good as the domains the
    // administrator names as the organisation's own, whose addresses its directory hands out.
    if (verified === undefined && !s.domains?.length) {
      this.log?.warn(
        { issuer: s.issuer },
        'company sign-in refused: the provider does not say whether emails are verified, and ' +
          'auth.oidc.domains is not set',
      );
      throw new RelayError(
        'RELAY_ERR_SIGN_IN_REFUSED',
        'Your company account did not say whether your email address is verified, so the relay ' +
          'cannot trust it yet. Ask your administrator to set auth.oidc.domains in relay.yaml to ' +
          "the organisation's own email domains.",
      );
    }
    if (s.domains && !s.domains.some((d) => d.toLowerCase() === domain))
      throw new RelayError(
        'RELAY_ERR_SIGN_IN_REFUSED',
        `Accounts of ${domain} cannot sign in here. Sign in with your company account.`,
      );
    const agent = directory.find((a) => a.email?.toLowerCase() === email.toLowerCase());
    if (!agent) {
      this.log?.info({ domain }, 'company sign-in of an email not in agents:');
      throw new RelayError(
        'RELAY_ERR_AGENT_UNKNOWN',
        `You signed in as ${email}, but no agent in the relay's directory has that email. Ask ` +
          'your administrator to add it to relay.yaml agents: (with your extension), then sign ' +
          'in again.',
      );
    }
    return { agent, next: flow.next };
  }

  /** What went wrong with the provider's answer, for the agent: theirs to retry, or the admin's. */
  private refusal(s: OidcSettings, err: unknown, client: typeof Client): RelayError {
    if (err instanceof client.AuthorizationResponseError)
      return new RelayError(
        'RELAY_ERR_SIGN_IN_REFUSED',
        `Your company sign-in did not let you through (${err.error}). Start again, or ask your ` +
          'administrator.',
      );
    if (err instanceof client.ResponseBodyError && err.error === 'invalid_grant') return expired();
    if (
      err instanceof client.ClientError &&
      (err.code === 'OAUTH_INVALID_RESPONSE' ||
        err.code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' ||
        err.code === 'OAUTH_INVALID_REQUEST')
    )
      return expired();
    this.log?.warn(
      { issuer: s.issuer, err: describe(err) },
      'company sign-in: the provider did not complete it',
    );
    return new RelayError(
      'RELAY_ERR_SIGN_IN_PROVIDER',
      `The company sign-in provider did not complete your sign-in. ${PROVIDER_TROUBLE}`,
    );
  }
}

const expired = (): RelayError =>
  new RelayError(
    'RELAY_ERR_SIGN_IN_EXPIRED',
    'This sign-in answer was used already, altered, or is not the one this browser asked for. ' +
      'Start again from the sign-in page.',
  );

/** For the log: the error's kind and words, never a token (openid-client puts none in them). */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as Error & { code?: unknown; error?: unknown; status?: unknown };
  const cause = e.cause instanceof Error ? `: ${e.cause.message}` : '';
  return [e.name, e.code, e.error, e.status, e.message + cause]
    .filter((x) => x !== undefined)
    .join(' ');
}

/** The cookie's key: from the client secret, which every instance has and no browser does. */
const keyOf = (s: OidcSettings): Buffer =>
  createHash('sha256').update(`callrelay oidc flow\0${s.clientSecret}`).digest();

/** AES-256-GCM: the browser can neither read the PKCE verifier nor change anything. */
function seal(s: OidcSettings, flow: Flow): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyOf(s), iv);
  const body = Buffer.concat([cipher.update(JSON.stringify(flow)), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

function unseal(s: OidcSettings, raw: string): Flow | undefined {
  try {
    const all = Buffer.from(raw, 'base64url');
    if (all.length < 29) return undefined;
    const decipher = createDecipheriv('aes-256-gcm', keyOf(s), all.subarray(0, 12));
    decipher.setAuthTag(all.subarray(12, 28));
    const v = JSON.parse(
      Buffer.concat([decipher.update(all.subarray(28)), decipher.final()]).toString(),
    ) as Partial<Flow>;
    return typeof v.state === 'string' &&
      typeof v.nonce === 'string' &&
      typeof v.verifier === 'string' &&
      typeof v.next === 'string' &&
      typeof v.until === 'number'
      ? (v as Flow)
      : undefined;
  } catch {
    return undefined;
  }
}
