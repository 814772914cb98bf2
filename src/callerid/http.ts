// The routes 3CX's CRM template calls (template.ts), under the source's hook URL:
//   GET  /hooks/<source>/crm/lookup/<number>   who is calling (ring time)
//   GET  /hooks/<source>/crm/search?q=<text>   the Web Client's contact search
//   GET  /hooks/<source>/crm/email/<address>   lookup by email
//   POST /hooks/<source>/crm/contacts          "create contact" (sources[].crm.createIn)
// Authenticated as the template does, with the source's token as the password of HTTP Basic (the
// user name is not looked at), or as a Bearer, or ?token=; the sender's address is checked against
// the source's allowIps first, as for its webhooks. A lookup always answers 200 with
// {"contacts":[...]}, empty when nobody is found or the CRM is slow or failing: 3CX shows an error
// otherwise, where the bare number is what the caller should see.
// Mounted before http/hooks.ts's catch-all for /hooks/* (runtime.ts, AppOptions.beforeHooks).

import type { Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { LookupAnswer } from '../domain/callerid.js';
import { RelayError } from '../domain/errors.js';
import { UNFILLED_VARIABLE } from '../domain/phone.js';
import { basicPassword, bearer, tokenMatches } from '../http/auth.js';
import type { Logger } from '../telemetry/log.js';
import { ThrottledLog } from '../telemetry/throttle.js';
import type { CallerLookup } from './service.js';

export interface CallerRoutesOptions {
  lookup: CallerLookup;
  /** A source's token now (a reload changes it); undefined: no such source. */
  tokenOf: (source: string) => string | undefined;
  /** 403 unless the sender may reach this source (http/guard.ts SourceGuards.checkAddress). */
  checkAddress?: (source: string, c: Context) => void;
  /**
   * A configured source's lookup was refused (wrong token, address not allowed): kept as its
   * newest refusal for Setup and `callrelay status`, as a refused webhook is.
   */
  refused?: (source: string, c: Context, err: RelayError) => void;
  log?: Logger;
}

/** The form 3CX's "create contact" posts (template.ts). */
const CONTACT_FIELDS = ['firstName', 'lastName', 'company', 'email', 'number'] as const;

export function mountCallerRoutes(app: Hono, o: CallerRoutesOptions): void {
  // An admin whose 3CX gets 401 must see why, but a flood must not flood the log.
  const refusals = o.log && new ThrottledLog(o.log);

  /** The source, once the sender and its token are let in. */
  const admitted = (c: Context): string => {
    const source = c.req.param('source')!;
    const token = o.tokenOf(source);
    if (token === undefined)
      throw new RelayError('RELAY_ERR_UNKNOWN_SOURCE', `no source "${source}" in relay.yaml`);
    try {
      o.checkAddress?.(source, c);
      const given = basicPassword(c) ?? bearer(c) ?? c.req.query('token');
      if (!tokenMatches(given, token))
        throw new RelayError(
          'RELAY_ERR_UNAUTHORIZED',
          given === undefined
            ? "missing token: 3CX's template sends it as the password of HTTP Basic (or send " +
                'Authorization: Bearer, or ?token=)'
            : 'wrong token',
        );
    } catch (err) {
      if (err instanceof RelayError) {
        o.refused?.(source, c, err);
        refusals?.write(
          'warn',
          `${source}\0${err.code}`,
          { source, code: err.code, status: err.status },
          `refused a 3CX CRM lookup: ${err.message}`,
        );
      }
      throw err;
    }
    return source;
  };

  // 3CX reads the contacts; nobody keeps them (they are names and numbers).
  const answer = (c: Context, a: LookupAnswer): Response => {
    c.header('cache-control', 'no-store');
    return c.json({ contacts: a.contacts });
  };

  const base = '/hooks/:source/crm';
  app.get(`${base}/lookup/:number`, async (c) => {
    const source = admitted(c);
    return answer(c, await o.lookup.byNumber(source, c.req.param('number')));
  });
  app.get(`${base}/search`, async (c) => {
    const source = admitted(c);
    return answer(c, await o.lookup.search(source, c.req.query('q') ?? ''));
  });
  app.get(`${base}/email/:address`, async (c) => {
    const source = admitted(c);
    return answer(c, await o.lookup.byEmail(source, c.req.param('address')));
  });
  app.post(
    `${base}/contacts`,
    bodyLimit({
      maxSize: 16 * 1024,
      onError: () => {
        throw new RelayError('RELAY_ERR_BODY_TOO_LARGE', 'a contact is a small JSON object');
      },
    }),
    async (c) => {
      const source = admitted(c);
      let body: unknown;
      try {
        body = await c.req.json();
      } catch {
        body = undefined;
      }
      if (!body || typeof body !== 'object' || Array.isArray(body))
        throw new RelayError(
          'RELAY_ERR_BAD_REQUEST',
          'send JSON: {"firstName": "...", "lastName": "...", "email": "...", "number": "..."}',
        );
      const fields = body as Record<string, unknown>;
      const contact: Partial<Record<(typeof CONTACT_FIELDS)[number], string>> = {};
      for (const k of CONTACT_FIELDS) {
        const v = fields[k];
        // A field 3CX has no value for arrives as its literal "[Name]".
        if (typeof v === 'string' && v.trim() && !UNFILLED_VARIABLE.test(v.trim())) contact[k] = v;
      }
      return answer(c, await o.lookup.create(source, contact));
    },
  );
}
