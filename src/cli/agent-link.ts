// `callrelay agent-link --extension 101 [--hours 24]`: a one-time sign-in link for an agent of
// relay.yaml's directory, made by the running relay (POST /api/agents/<extension>/sign-in-link
// with the admin token), since only it keeps the links' hashes; prints the link and its expiry.

import { configFrom, fail } from './util.js';

export async function cmdAgentLink(o: {
  config?: string;
  extension: string;
  hours?: string;
  to?: string;
}): Promise<void> {
  const cfg = configFrom(o, { readOnly: true });
  if (!cfg.adminToken) fail(`${cfg.file} has no admin.token: the relay's API is off`, 1);
  if (!cfg.agents.some((a) => a.extension === o.extension))
    fail(
      `no agent with extension "${o.extension}" in ${cfg.file} agents: (${cfg.agents.map((a) => a.extension).join(', ') || 'there is none'})`,
      2,
    );
  const hours = o.hours === undefined ? undefined : Number(o.hours);
  if (hours !== undefined && !(hours > 0 && Number.isFinite(hours)))
    fail('--hours takes a number of hours above 0 (at most a week)', 2);
  const host = /^(0\.0\.0\.0|::)$/.test(cfg.server.host) ? '127.0.0.1' : cfg.server.host;
  // With server.consolePort the admin API is there, not on the webhooks' port.
  const port = cfg.server.consolePort ?? cfg.server.port;
  const base = o.to ?? `${cfg.server.tls ? 'https' : 'http'}://${host}:${port}`;
  let res: Response;
  try {
    res = await fetch(
      `${base.replace(/\/+$/, '')}/api/agents/${encodeURIComponent(o.extension)}/sign-in-link`,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${cfg.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(hours === undefined ? {} : { hours }),
      },
    );
  } catch (err) {
    const code = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    return fail(`cannot reach the relay at ${base} (${code}): is it running? (--to URL)`);
  }
  const body = (await res.json().catch(() => ({}))) as {
    url?: string;
    expiresAt?: string;
    error?: { message: string };
  };
  if (!res.ok || !body.url)
    return fail(`making the link failed: ${res.status} ${body.error?.message ?? ''}`);
  process.stdout.write(`${body.url}\n`);
  process.stderr.write(
    `signs in extension ${o.extension} once, until ${body.expiresAt ?? '?'}: send it to them only\n`,
  );
}
