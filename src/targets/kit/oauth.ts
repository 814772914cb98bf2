// OAuth 2 (client_credentials and refresh_token) as a CrmAuth. A placeholder on this branch: the
// real client (tokens cached in the store, refreshed before expiry, one refresh at a time) arrives
// with its own branch and replaces this file at merge; the signature is the contract.

import type { Logger } from '../../telemetry/log.js';
import type { TargetTokens } from '../types.js';
import type { CrmAuth } from './auth.js';

export interface OAuthOptions {
  target: string;
  grant: 'client_credentials' | 'refresh_token';
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  refreshToken?: string;
  scope?: string;
  clientAuth: 'body' | 'basic';
  lifetimeSec?: number;
  header: (token: string) => Record<string, string>;
  apiUrl?: (answer: {
    status: number;
    headers: Record<string, string>;
    body: unknown;
  }) => string | undefined;
  tokens?: TargetTokens;
  log: Logger;
  timeoutMs: number;
}

export function oauthAuth(o: OAuthOptions): CrmAuth {
  void o;
  throw new Error('OAuth arrives with kit/oauth.ts');
}
