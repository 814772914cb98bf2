// Every secret a relay.yaml configures, so that the Redactor can keep them out of whatever the
// relay shows or stores from elsewhere (CRM error texts, pages, API answers). Found by field name
// across the whole config, so that a new target's `apiKey` is covered without a list to update.

import type { RelayConfig } from './load.js';

const SECRET_KEY = /token|secret|password|passwd|api[-_]?key|bearer|authorization|credential/i;

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Secret values under `v`: strings of secret-named fields, header values, URL credentials. */
function collect(v: unknown, key: string, out: Set<string>): void {
  if (typeof v === 'string') {
    if (SECRET_KEY.test(key)) out.add(v);
    // The password of a URL's credentials (the user name is no secret, and often a common word).
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^/@:\s]*:([^/@\s]+)@/i.exec(v);
    if (m) out.add(safeDecode(m[1]!));
    return;
  }
  if (Array.isArray(v)) {
    for (const x of v) collect(x, key, out);
    return;
  }
  if (v && typeof v === 'object') {
    // Basic credentials travel as base64 of "user:password", which holds neither alone.
    const { user, password } = v as { user?: unknown; password?: unknown };
    if (typeof user === 'string' && typeof password === 'string') out.add(`${user}:${password}`);
    for (const [k, x] of Object.entries(v)) {
      // Header values are credentials more often than not (X-Api-Key, Authorization).
      if (/^headers$/i.test(key) && typeof x === 'string') out.add(x);
      collect(x, SECRET_KEY.test(key) && !/^headers$/i.test(key) ? key : k, out);
    }
  }
}

export function secretsOf(
  cfg: Pick<RelayConfig, 'adminToken' | 'sources' | 'targets' | 'store' | 'metrics'> &
    Partial<Pick<RelayConfig, 'links' | 'oidc'>>,
): string[] {
  const out = new Set<string>();
  if (cfg.adminToken) out.add(cfg.adminToken);
  // Whoever has the link secret can sign links to any recording and any agent's phone.
  if (cfg.links) out.add(cfg.links.secret);
  if (cfg.metrics.token) out.add(cfg.metrics.token);
  if (cfg.oidc) out.add(cfg.oidc.clientSecret);
  for (const s of cfg.sources) {
    out.add(s.token);
    collect(s.recordings, 'recordings', out);
    collect(s.guard.signature, 'signature', out);
    // The WebAPI key sits in the makecall URL's path: a secret under a plain name.
    if (s.pbx) out.add(s.pbx.key);
  }
  for (const t of cfg.targets) {
    collect(t, 'target', out);
    // A REST recipe's credentials, whatever the recipe calls them (a header type's own fields);
    // the user name of Basic and an OAuth client id are no secrets (and may be common words).
    const auth = (t as { auth?: unknown }).auth;
    if (t.type === 'rest' && auth && typeof auth === 'object')
      for (const [k, v] of Object.entries(auth))
        if (typeof v === 'string' && v && k !== 'user' && k !== 'clientId') out.add(v);
  }
  collect(cfg.store, 'store', out);
  return [...out];
}
