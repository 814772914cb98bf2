// `callrelay dial --agent 102 NUMBER`: click-to-call through the running relay (POST /api/dial
// with relay.yaml's admin token), so the call is placed and recorded exactly as from the API.

import { userInfo } from 'node:os';
import { makeDialLink } from '../dial/links.js';
import { configFrom, fail } from './util.js';

export async function cmdDial(
  number: string,
  o: { config?: string; agent: string; source?: string; to?: string },
): Promise<void> {
  const cfg = configFrom(o, { readOnly: true });
  if (!cfg.adminToken) fail(`${cfg.file} has no admin.token: the relay's API is off`, 1);
  const withPbx = cfg.sources.filter((s) => s.pbx);
  const source = o.source ?? (withPbx.length === 1 ? withPbx[0]!.name : undefined);
  if (!source)
    fail(
      withPbx.length
        ? `several sources can place calls (${withPbx.map((s) => s.name).join(', ')}): name one with --source`
        : `no source in ${cfg.file} has pbx: (url and key), so none can place calls`,
      2,
    );
  const host = /^(0\.0\.0\.0|::)$/.test(cfg.server.host) ? '127.0.0.1' : cfg.server.host;
  const base = o.to ?? `${cfg.server.tls ? 'https' : 'http'}://${host}:${cfg.server.port}`;
  let res: Response;
  try {
    res = await fetch(`${base.replace(/\/+$/, '')}/api/dial`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cfg.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ source, agent: o.agent, number, by: `cli-${userInfo().username}` }),
    });
  } catch (err) {
    const code = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    return fail(`cannot reach the relay at ${base} (${code}): is it running? (--to URL)`);
  }
  const body = (await res.json()) as {
    chid?: string;
    number?: string;
    error?: { message: string };
  };
  if (!res.ok) return fail(`dialling failed: ${res.status} ${body.error?.message ?? ''}`);
  process.stdout.write(
    `${source}: ringing extension ${o.agent}, then ${body.number ?? number} (chid ${body.chid ?? '?'})\n`,
  );
}

/**
 * `callrelay dial-link --agent 102`: the click-to-call link of one agent for a CRM's custom link
 * or button; the CRM appends the contact's number. Signed with the relay's link secret, so it
 * needs server.publicUrl; it works for dial.linkTtlDays (default 30), or --days. There is no
 * link that never expires: whoever once saw one could use it for ever.
 */
export function cmdDialLink(o: {
  config?: string;
  agent: string;
  source?: string;
  days?: string;
}): void {
  // Every secret as start reads them: a placeholder admin token would sign a link that fails.
  const cfg = configFrom(o);
  if (!cfg.links)
    fail(`${cfg.file} has no server.publicUrl: dial links point at the relay's public address`, 1);
  const withPbx = cfg.sources.filter((s) => s.pbx);
  const source = o.source ?? (withPbx.length === 1 ? withPbx[0]!.name : undefined);
  if (!source || !withPbx.some((s) => s.name === source))
    fail(
      `name a source with pbx: (url and key) with --source: ${withPbx.map((s) => s.name).join(', ') || 'there is none'}`,
      2,
    );
  if (!/^\d{1,10}$/.test(o.agent)) fail('--agent takes an extension (digits)', 2);
  const days = o.days === undefined ? cfg.dial.linkTtlDays : Number(o.days);
  if (!(days > 0) || !Number.isFinite(days))
    fail(
      '--days takes a number of days above 0 (links always expire; default dial.linkTtlDays)',
      2,
    );
  const until = Math.floor(Date.now() / 1000 + days * 86400);
  const q = makeDialLink(cfg.links.secret, source, o.agent, until);
  process.stdout.write(`${cfg.links.publicUrl}/dial?${q}&number=\n`);
}
