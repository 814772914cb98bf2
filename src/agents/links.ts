// The admin makes an agent's one-time sign-in link: POST /api/agents/<extension>/sign-in-link
// (behind the admin API's bearer token, as every /api route), answering the link to send them.
// The link's secret is shown once and stored only as a keyed hash (console/session.ts).

import type { Context, Hono } from 'hono';
import { RelayError } from '../domain/errors.js';
import { requestOrigin } from '../http/origin.js';
import type { ConsoleContext } from '../http/console/kit.js';
import type { AgentContext } from './kit.js';
import type { AgentOptions } from './types.js';

/** How long a sign-in link works unless the admin says otherwise, and at most. */
export const LINK_HOURS = 24;
export const MAX_LINK_HOURS = 7 * 24;

/** The link for a secret: on server.publicUrl when set, else on the address the admin used. */
export function welcomeUrl(
  ctx: { console: Pick<ConsoleContext, 'opts'> },
  c: Context,
  secret: string,
): string {
  const { proto, host } = requestOrigin(c);
  const base = ctx.console.opts.publicUrl?.replace(/\/+$/, '') ?? `${proto}://${host}`;
  return `${base}/agent/welcome?t=${secret}`;
}

/** A sign-in link for the agent of `extension`, good for `hours`; a RelayError if none such. */
export async function makeSignInLink(
  ctx: {
    console: Pick<ConsoleContext, 'sessions' | 'opts'>;
    opts: Pick<AgentOptions, 'directory'>;
  },
  c: Context,
  extension: string,
  hours: number = LINK_HOURS,
): Promise<{ agent: string; url: string; expiresAt: string }> {
  const agent = ctx.opts.directory().find((a) => a.extension === extension);
  if (!agent)
    throw new RelayError(
      'RELAY_ERR_NOT_FOUND',
      `no agent with extension "${extension}" in relay.yaml agents: add them there first`,
    );
  if (!Number.isFinite(hours) || hours <= 0 || hours > MAX_LINK_HOURS)
    throw new RelayError(
      'RELAY_ERR_BAD_REQUEST',
      `"hours" must be a number above 0 and at most ${MAX_LINK_HOURS} (a week)`,
    );
  const { secret, expiresAt } = await ctx.console.sessions.issueSignInLink(
    { extension: agent.extension, email: agent.email },
    hours * 3600_000,
  );
  ctx.console.opts.log?.info({ agent: agent.extension, expiresAt }, 'agent sign-in link made');
  return { agent: agent.extension, url: welcomeUrl(ctx, c, secret), expiresAt };
}

export function mountSignInLinks(app: Hono, ctx: AgentContext): void {
  app.post('/api/agents/:extension/sign-in-link', async (c) => {
    let hours = LINK_HOURS;
    if ((c.req.header('content-length') ?? '0') !== '0') {
      let body: unknown;
      try {
        body = await c.req.json();
      } catch {
        throw new RelayError(
          'RELAY_ERR_BAD_REQUEST',
          'send JSON, such as {"hours": 24}, or nothing',
        );
      }
      const h = (body as { hours?: unknown } | null)?.hours;
      if (h !== undefined) hours = typeof h === 'number' ? h : NaN;
    }
    const made = await makeSignInLink(ctx, c, c.req.param('extension'), hours);
    return c.json(made, 201);
  });
}
