// The dial link's pages: GET <publicUrl>/dial?source=&agent=&until=&sig=&number= shows the number
// and the agent's extension with a "Call" button, and places nothing (link previewers, prefetchers
// and crawlers GET whatever they see); the button POSTs /dial with the page's confirmation token
// (links.ts) from a page of this origin, and only that places the call (service.ts). Every answer,
// refusals included, is a page a person can read, with the console's Content-Security-Policy and
// no framing, sniffing, referrer or caching.

import type { Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { html } from 'hono/html';
import { RelayError, type ErrorCode } from '../domain/errors.js';
import type { Redactor } from '../lib/redact.js';
import { pageHeaders } from '../http/origin.js';
import { sameOrigin } from '../http/origin.js';
import type { Logger } from '../telemetry/log.js';
import { checkConfirmToken, confirmToken, verifyDialLink, type DialLink } from './links.js';
import { DialRefused } from './policy.js';
import type { Dialer } from './service.js';

export interface DialPagesOptions {
  /** The link secret now (server.urlSecret, or admin.token's; a reload may change it). */
  secret: () => string;
  dialer: Dialer;
  redact: Redactor;
  log: Logger;
}

/** What the person who opened the link can do about a refusal. */
const NEXT: Partial<Record<ErrorCode, string>> = {
  RELAY_ERR_LINK_INVALID:
    'Ask whoever set up click-to-call for a new link: this one was altered, or the secret that ' +
    'signed it has changed.',
  RELAY_ERR_LINK_EXPIRED: 'Ask whoever set up click-to-call for a new link.',
  RELAY_ERR_DIAL_REFUSED:
    'Dial it from your phone if you must. An administrator can widen what click-to-call dials ' +
    '(dial.allowTypes, dial.allowCountries in relay.yaml).',
  RELAY_ERR_DIAL_RATE_LIMITED: 'Wait a minute, then open the link again.',
  RELAY_ERR_CSRF: 'Open the link again and press Call on its page.',
  RELAY_ERR_BAD_REQUEST:
    "Check the contact's number in the CRM: a phone number, with its country code if abroad.",
  RELAY_ERR_PBX_FAILED:
    'The phone system did not take the call. Try again in a minute; if it keeps failing, tell ' +
    'your administrator.',
};

/** A form field or query parameter as text. */
const field = (v: unknown): string => (typeof v === 'string' ? v : '');

export function mountDial(app: Hono, o: DialPagesOptions): void {
  // No cache (no page here sets one): a confirmation page holds a token for one number.
  const headers = pageHeaders;
  app.use('/dial', headers);
  app.use(
    '/dial',
    bodyLimit({
      maxSize: 8 * 1024,
      onError: (c) =>
        page(c, o, refusedPage(new RelayError('RELAY_ERR_BODY_TOO_LARGE', 'not a dial form'))),
    }),
  );

  /** The link's own refusals (signature, expiry, origin, token), counted before they are shown. */
  const linkCheck = <T>(check: () => T): T => {
    try {
      return check();
    } catch (err) {
      if (err instanceof DialRefused) o.dialer.count('link', 'refused', err.reason);
      else if (err instanceof RelayError && err.code === 'RELAY_ERR_CSRF')
        o.dialer.count('link', 'refused', 'csrf');
      throw err;
    }
  };

  app.get('/dial', (c) =>
    guarded(c, o, () => {
      const link = linkCheck(() => verifyDialLink(o.secret(), (k) => c.req.query(k) ?? ''));
      const number = c.req.query('number') ?? '';
      if (!number.trim())
        throw new RelayError(
          'RELAY_ERR_BAD_REQUEST',
          'the link has no number: the CRM appends the contact\'s number after "number="',
        );
      let d;
      try {
        d = o.dialer.check(link.source, link.agent, number);
      } catch (err) {
        if (err instanceof DialRefused) o.dialer.count('link', 'refused', err.reason);
        throw err;
      }
      return page(
        c,
        o,
        confirmPage(link, d.e164, d.formatted, confirmToken(o.secret(), link, d.e164)),
      );
    }),
  );

  app.post('/dial', (c) =>
    guarded(c, o, async () => {
      linkCheck(() => sameOrigin(c));
      const form = await c.req.parseBody();
      const link = linkCheck(() => verifyDialLink(o.secret(), (k) => field(form[k])));
      const number = field(form.number);
      linkCheck(() =>
        checkConfirmToken(o.secret(), link, number, {
          exp: field(form.exp),
          token: field(form.token),
        }),
      );
      const placed = await o.dialer.place(
        { source: link.source, agent: link.agent, number, by: `link:${link.agent}` },
        'link',
        link.sig,
      );
      return page(c, o, placedPage(link, placed.number));
    }),
  );
}

/** Any error as a page: the catalogue's status and message, and what to do next. */
async function guarded(
  c: Context,
  o: DialPagesOptions,
  handler: () => Promise<Response> | Response,
): Promise<Response> {
  try {
    return await handler();
  } catch (err) {
    let e: RelayError;
    if (err instanceof RelayError) e = err;
    else {
      o.log.error({ err: o.redact.text((err as Error).message) }, 'dial page failed');
      e = new RelayError('RELAY_ERR_INTERNAL');
    }
    for (const [k, v] of Object.entries(e.headers ?? {})) c.header(k, v);
    return page(c, o, refusedPage(e), e.status);
  }
}

type Page = ReturnType<typeof html>;

async function page(c: Context, o: DialPagesOptions, body: Page, status = 200): Promise<Response> {
  return c.html(o.redact.text(String(await body)), status as 200);
}

const layout = (title: string, main: Page): Page =>
  html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="robots" content="noindex" />
        <title>${title} · callrelay</title>
      </head>
      <body>
        <main>${main}</main>
      </body>
    </html>`;

function confirmPage(
  link: DialLink,
  e164: string,
  formatted: string,
  t: { exp: number; token: string },
): Page {
  // A relative action: behind a proxy that serves the relay under a path, the post stays there.
  return layout(
    `Call ${formatted}?`,
    html`<h1>Call ${formatted}?</h1>
      <p>
        Your phone at extension <b>${link.agent}</b> rings first; when you pick up, the phone system
        dials <b>${formatted}</b>.
      </p>
      <form method="post" action="dial">
        <input type="hidden" name="source" value="${link.source}" />
        <input type="hidden" name="agent" value="${link.agent}" />
        <input type="hidden" name="until" value="${String(link.until)}" />
        <input type="hidden" name="sig" value="${link.sig}" />
        <input type="hidden" name="number" value="${e164}" />
        <input type="hidden" name="exp" value="${String(t.exp)}" />
        <input type="hidden" name="token" value="${t.token}" />
        <button type="submit" autofocus>Call</button>
      </form>
      <p>Nothing is dialled until you press Call.</p>`,
  );
}

const placedPage = (link: DialLink, e164: string): Page =>
  layout(
    `Calling ${e164}`,
    html`<h1>Calling ${e164}</h1>
      <p>Calling <b>${e164}</b>: pick up at extension ${link.agent}.</p>`,
  );

function refusedPage(e: RelayError): Page {
  const next = NEXT[e.code] ?? 'Try again later; if it keeps failing, tell your administrator.';
  return layout(
    'Not called',
    html`<h1>Not called</h1>
      <p role="alert">${e.message}</p>
      <p>${next}</p>
      <p>${String(e.status)} · error code <code>${e.code}</code></p>`,
  );
}
