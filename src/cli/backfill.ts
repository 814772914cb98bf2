// `callrelay backfill --target X --since DATE`: deliver calls stored before the target was added
// (or before a route changed). Counts first; queues only with --yes; never touches calls that
// have work for the target already, so running it twice queues nothing the second time. A
// delivery a dry run made counts as none once dryRun is removed: this then sends those calls for
// real.

import { backfillAll } from '../store/backfill.js';
import { configFrom, fail, withStore } from './util.js';

function time(v: string | undefined, flag: string): string | undefined {
  if (v === undefined) return undefined;
  const ms = Date.parse(v);
  if (Number.isNaN(ms))
    fail(`${flag} must be a date or time, e.g. 2026-11-01 or 2026-11-01T08:00Z`, 2);
  return new Date(ms).toISOString();
}

export async function cmdBackfill(values: {
  config?: string;
  target: string;
  since: string;
  until?: string;
  yes?: boolean;
}): Promise<void> {
  const cfg = configFrom(values, { readOnly: true });
  const names = cfg.targets.map((t) => t.name);
  if (!names.includes(values.target))
    fail(`--target must name a target of ${cfg.file}: ${names.join(', ') || 'there are none'}`, 2);
  const since = time(values.since, '--since') ?? fail('--since is required (a date)', 2);
  const until = time(values.until, '--until');
  const range = `started since ${since}${until ? ` and before ${until}` : ''}`;
  const sandboxTarget = cfg.targets.find((t) => t.name === values.target)!.dryRun;
  const q = { target: values.target, since, until, sandboxTarget };
  await withStore(values, async (store) => {
    const count = await backfillAll(store, { ...q, dryRun: true });
    if (!values.yes) {
      process.stdout.write(
        `${count.matched} call(s) ${range} would be queued for ${q.target} ` +
          `(${count.scanned - count.matched} more in the range are not routed there now).\n` +
          'Run again with --yes to queue them.\n',
      );
      return;
    }
    const done = await backfillAll(store, { ...q, dryRun: false }, (t) =>
      process.stderr.write(`queued ${t.matched} of about ${count.matched}\n`),
    );
    process.stdout.write(
      `queued ${done.matched} call(s) ${range} for ${q.target}; a running relay delivers them ` +
        'within a second (callrelay deliveries --target shows them).\n',
    );
  });
}
