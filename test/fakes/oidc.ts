// A real OpenID Connect provider for tests: the oidc-provider package on 127.0.0.1, with one
// confidential client (the relay) and a few accounts. Its development login form takes any account
// name with any password; consent is granted as the relay asks (a company's own app, as
// administrators register it), so that a sign-in is: the login form, then back to the relay.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type KoaContextWithOIDC } from 'oidc-provider';

export const OIDC_CLIENT = {
  id: 'callrelay-test',
  secret: 'oidc-client-secret-for-the-tests-0123',
};

/** Account name (typed into the login form) → the claims the provider tells about it. */
export const OIDC_ACCOUNTS: Record<string, { email: string; email_verified?: boolean | string }> = {
  alice: { email: 'alice@example.com', email_verified: true },
  bob: { email: 'bob@example.com', email_verified: true },
  mallory: { email: 'mallory@example.com', email_verified: true },
  unverified: { email: 'alice@example.com', email_verified: false },
  // Providers that send the claim as a string, and those that send none (Entra).
  'unverified-string': { email: 'alice@example.com', email_verified: 'false' },
  unsaid: { email: 'alice@example.com' },
};

/** relay.yaml's auth: for this provider (after agents:, at the top level). */
export const oidcYaml = (issuer: string, label = 'Test IdP', more = ''): string => `auth:
  oidc:
    issuer: ${issuer}
    clientId: ${OIDC_CLIENT.id}
    clientSecret: ${OIDC_CLIENT.secret}
    label: ${label}
${more}`;

export class OidcServer {
  issuer = '';
  private server!: Server;
  private handler: (req: IncomingMessage, res: ServerResponse) => void = (_q, res) => res.end();

  /**
   * `redirectUri`: the relay's <publicUrl>/agent/oidc/callback. Port 0: any free one. `lean`: the
   * ID token carries no email (the spec's default; Entra without the optional claim), userinfo
   * does.
   */
  async start(redirectUri: string, port = 0, opts: { lean?: boolean } = {}): Promise<this> {
    // The issuer is the provider's own address: listen first, then make it.
    this.server = createServer((req, res) => this.handler(req, res));
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', r));
    this.issuer = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    const provider = new Provider(this.issuer, {
      clients: [
        {
          client_id: OIDC_CLIENT.id,
          client_secret: OIDC_CLIENT.secret,
          redirect_uris: [redirectUri],
          grant_types: ['authorization_code'],
          response_types: ['code'],
        },
      ],
      claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
      // As Google does: the email in the ID token itself (unless lean).
      conformIdTokenClaims: opts.lean === true,
      findAccount: (_ctx: KoaContextWithOIDC, id: string) => {
        const claims = OIDC_ACCOUNTS[id];
        return claims && { accountId: id, claims: () => ({ sub: id, ...claims }) };
      },
      loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
        const { client, session } = ctx.oidc;
        if (!client || !session?.accountId) return undefined;
        const grant = new ctx.oidc.provider.Grant({
          clientId: client.clientId,
          accountId: session.accountId,
        });
        grant.addOIDCScope('openid email profile');
        await grant.save();
        return grant;
      },
      cookies: { keys: ['oidc-test-cookie-key'] },
      ttl: { Interaction: 600, Grant: 600, Session: 600, AccessToken: 600, IdToken: 600 },
      features: { devInteractions: { enabled: true } },
    });
    const handle = provider.callback();
    this.handler = (req, res) => void handle(req, res);
    return this;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}
