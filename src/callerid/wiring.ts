// 3CX's CRM integration as the relay wires it: one lookup service (service.ts) behind the routes
// 3CX's template calls (http.ts), the admin API's and the console's "what would 3CX show" probe,
// and the template itself; sources, targets and tokens read at each request, so that a reload
// applies at once.

import type { Context, Hono } from 'hono';
import type { LookupAnswer } from '../domain/callerid.js';
import type { Logger } from '../telemetry/log.js';
import { mountCallerRoutes, type CallerRoutesOptions } from './http.js';
import { CallerLookup, type CallerLookupOptions, type CallerSource } from './service.js';
import { threeCxTemplate } from './template.js';

export interface CallerIdOptions {
  /** relay.yaml's sources now, with their tokens. */
  sources: () => readonly (CallerSource & { token: string })[];
  targets: CallerLookupOptions['targets'];
  finders?: CallerLookupOptions['finders'];
  /** server.publicUrl now (no trailing slash), if set. */
  publicUrl: () => string | undefined;
  checkAddress?: (source: string, c: Context) => void;
  /** A configured source's lookup was refused (Setup's "Last refused"). */
  refused?: CallerRoutesOptions['refused'];
  metrics?: CallerLookupOptions['metrics'];
  redact?: (text: string) => string;
  log: Logger;
}

export class CallerId {
  readonly lookup: CallerLookup;

  constructor(private readonly o: CallerIdOptions) {
    this.lookup = new CallerLookup({
      sources: o.sources,
      targets: o.targets,
      ...(o.finders ? { finders: o.finders } : {}),
      metrics: o.metrics,
      log: o.log,
      ...(o.redact ? { redact: o.redact } : {}),
    });
  }

  /** The routes 3CX calls: before http/hooks.ts's catch-all for /hooks/*. */
  mount = (app: Hono): void =>
    mountCallerRoutes(app, {
      lookup: this.lookup,
      tokenOf: (name) => this.o.sources().find((s) => s.name === name)?.token,
      ...(this.o.checkAddress ? { checkAddress: this.o.checkAddress } : {}),
      ...(this.o.refused ? { refused: this.o.refused } : {}),
      log: this.o.log,
    });

  /** What 3CX would show for a number (admin API, console). */
  probe = (source: string, number: string): Promise<LookupAnswer> =>
    this.lookup.byNumber(source, number);

  /** Per source with crm:, its template (undefined without server.publicUrl). */
  templates = (): { source: string; hookUrl: string | undefined; xml: string | undefined }[] => {
    const base = this.o.publicUrl();
    return this.o
      .sources()
      .filter((s) => s.crm)
      .map((s) =>
        base
          ? { source: s.name, ...sourceTemplate(s, base) }
          : { source: s.name, hookUrl: undefined, xml: undefined },
      );
  };
}

/**
 * A source's hook URL and 3CX template, from the relay's public address (or the hook URL itself):
 * the one builder behind the admin API, the console and `callrelay 3cx-template`.
 */
export function sourceTemplate(
  source: Pick<CallerSource, 'name' | 'defaultCountry' | 'crm'>,
  base: string,
): { hookUrl: string; xml: string } {
  const given = base.replace(/\/+$/, '');
  const own = `/hooks/${source.name}`;
  const hookUrl = given.endsWith(own) ? given : `${given}${own}`;
  const xml = threeCxTemplate({
    source: source.name,
    hookUrl,
    ...(source.defaultCountry ? { country: source.defaultCountry } : {}),
    createContacts: !!source.crm?.createIn,
  });
  return { hookUrl, xml };
}
