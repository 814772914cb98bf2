// What needs an admin: dead deliveries (with the CRM's last word) and requests no adapter rule
// understood. Retry or replay one, or all of them after a page that says how many; reload the
// adapter files first, so that a fixed adapter maps the replayed requests without a restart.

import type { Context, Hono } from 'hono';
import type { Child } from 'hono/jsx';
import { RelayError } from '../../domain/errors.js';
import type { DeliveryRow, InboxRow } from '../../store/types.js';
import { RawRequest } from './call.js';
import { callHref } from './calls.js';
import {
  action,
  done,
  Layout,
  page,
  PostButton,
  render,
  Time,
  type ConsoleContext,
} from './kit.js';
import type { Session } from './session.js';

const PAGE = 100;
/** "Replay all" stops after this long and says how many are left (a page must answer). */
const REPLAY_BUDGET_MS = 20_000;

function afterParam(c: Context, name: string): number {
  const n = Number(c.req.query(name) ?? 0);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

function DeadTable(props: { rows: DeliveryRow[]; session: Session }): Child {
  return (
    <div class="scroll" role="region" aria-label="Dead deliveries" tabindex={0}>
      <table>
        <thead>
          <tr>
            <th scope="col">Call</th>
            <th scope="col">Target</th>
            <th scope="col">Attempts</th>
            <th scope="col">Gave up</th>
            <th scope="col">Reason</th>
            <th scope="col">
              <span class="skip">Action</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((d) => (
            <tr>
              <td>
                <a href={callHref(d)}>{d.callId}</a>
                <div class="muted">{d.source}</div>
              </td>
              <td>{d.target}</td>
              <td class="num">{String(d.attempts)}</td>
              <td class="num">
                <Time iso={d.updatedAt} />
              </td>
              <td>{d.lastError ?? <span class="muted">–</span>}</td>
              <td>
                <PostButton
                  session={props.session}
                  action={`/console/deliveries/${d.id}/retry`}
                  back="/console/failures"
                  label="Retry"
                />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function UnmappedTable(props: { rows: InboxRow[]; session: Session }): Child {
  return (
    <div class="scroll" role="region" aria-label="Unmapped requests" tabindex={0}>
      <table>
        <thead>
          <tr>
            <th scope="col">Request</th>
            <th scope="col">Received</th>
            <th scope="col">Reason</th>
            <th scope="col">
              <span class="skip">Action</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((r) => (
            <tr>
              <td>
                {`#${r.id}`}
                <div class="muted">{`${r.source} · ${r.method}`}</div>
              </td>
              <td class="num">
                <Time iso={r.receivedAt} />
              </td>
              <td>
                <code>{r.reasonCode ?? '?'}</code> {r.reason ?? ''}
                <RawRequest req={r} />
              </td>
              <td>
                <PostButton
                  session={props.session}
                  action={`/console/inbox/${r.id}/replay`}
                  label="Replay"
                />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

const BULK = {
  'retry-dead': {
    title: 'Retry all dead deliveries',
    question: (n: number) =>
      `Retry ${n} dead ${n === 1 ? 'delivery' : 'deliveries'} now? Each goes to its CRM again.`,
    button: (n: number) => `Retry ${n} ${n === 1 ? 'delivery' : 'deliveries'}`,
  },
  'replay-unmapped': {
    title: 'Replay all unmapped requests',
    question: (n: number) =>
      `Replay ${n} unmapped ${n === 1 ? 'request' : 'requests'} with the adapters in use now?`,
    button: (n: number) => `Replay ${n} ${n === 1 ? 'request' : 'requests'}`,
  },
} as const;

export function mountFailures(app: Hono, ctx: ConsoleContext): void {
  const { pipeline, redact } = ctx.opts;
  const store = pipeline.store;

  const counts = async (): Promise<{ dead: number; unmapped: number }> => {
    const s = await store.stats();
    return { dead: s.targets.reduce((n, t) => n + t.dead, 0), unmapped: s.inbox.unmapped };
  };

  app.get(
    '/console/failures',
    page(ctx, async (c, session) => {
      const deadAfter = afterParam(c, 'dead');
      const unmappedAfter = afterParam(c, 'unmapped');
      const n = await counts();
      const dead = redact.value(
        await store.listDeliveries({ state: 'dead', limit: PAGE, afterId: deadAfter }),
      );
      const unmapped = (
        await store.listInbox({ state: 'unmapped', limit: PAGE, afterId: unmappedAfter })
      ).map(({ body, ...rest }) => ({
        ...redact.value(rest),
        body: Buffer.from(redact.text(body.toString('utf8'))),
      }));
      const more = (name: string, rows: { id: number }[]): Child =>
        rows.length === PAGE && (
          <p class="pager">
            <a href={`/console/failures?${name}=${rows.at(-1)!.id}`}>More →</a>
          </p>
        );
      return render(
        c,
        ctx,
        <Layout
          ctx={ctx}
          title="Failures"
          nav="failures"
          session={session}
          flash={ctx.sessions.takeFlash(c)}
        >
          <h1>Failures</h1>
          <section aria-labelledby="adapters">
            <h2 id="adapters">Adapters</h2>
            <p>
              Fixed an adapter file or relay.yaml? Reload them (a broken file changes nothing and
              says why), then replay the requests an adapter could not map.
            </p>
            <PostButton
              session={session}
              action="/console/adapters/reload"
              label="Reload relay.yaml and adapters"
            />
          </section>
          <section aria-labelledby="dead">
            <h2 id="dead">{`Dead deliveries (${n.dead})`}</h2>
            {n.dead > 0 && (
              <p>
                <a class="button" href="/console/failures/confirm?action=retry-dead">
                  Retry all dead…
                </a>
              </p>
            )}
            {dead.length ? (
              <DeadTable rows={dead} session={session} />
            ) : (
              <p class="muted">None: every delivery went through or is still being tried.</p>
            )}
            {more('dead', dead)}
          </section>
          <section aria-labelledby="unmapped">
            <h2 id="unmapped">{`Unmapped requests (${n.unmapped})`}</h2>
            {n.unmapped > 0 && (
              <p>
                <a class="button" href="/console/failures/confirm?action=replay-unmapped">
                  Replay all unmapped…
                </a>
              </p>
            )}
            {unmapped.length ? (
              <UnmappedTable rows={unmapped} session={session} />
            ) : (
              <p class="muted">None: the adapters understood every request.</p>
            )}
            {more('unmapped', unmapped)}
          </section>
        </Layout>,
      );
    }),
  );

  // The bulk actions first say how many they will touch; the number may have moved by the time
  // the admin confirms, and the result says what was done.
  app.get(
    '/console/failures/confirm',
    page(ctx, async (c, session) => {
      const what = c.req.query('action');
      if (what !== 'retry-dead' && what !== 'replay-unmapped')
        throw new RelayError(
          'RELAY_ERR_BAD_REQUEST',
          'action must be retry-dead or replay-unmapped',
        );
      const bulk = BULK[what];
      const n = (await counts())[what === 'retry-dead' ? 'dead' : 'unmapped'];
      return render(
        c,
        ctx,
        <Layout ctx={ctx} title={bulk.title} nav="failures" session={session}>
          <h1>{bulk.title}</h1>
          {n ? (
            <form method="post" action={`/console/failures/${what}`}>
              <input type="hidden" name="_csrf" value={session.csrf} />
              <p>{bulk.question(n)}</p>
              <div class="actions">
                <button type="submit" class="primary">
                  {bulk.button(n)}
                </button>
                <a class="button" href="/console/failures">
                  Cancel
                </a>
              </div>
            </form>
          ) : (
            <p>
              Nothing to do any more. <a href="/console/failures">Back to failures</a>
            </p>
          )}
        </Layout>,
      );
    }),
  );

  app.post(
    '/console/failures/retry-dead',
    action(ctx, async (c) => {
      const n = await store.retryDeliveries('dead');
      ctx.opts.onDeliveriesDue();
      return done(c, ctx, '/console/failures', 'ok', `Retrying ${n} dead deliveries now.`);
    }),
  );

  app.post(
    '/console/failures/replay-unmapped',
    action(ctx, async (c) => {
      const t0 = Date.now();
      let afterId = 0;
      let mapped = 0;
      let still = 0;
      let left = false;
      for (;;) {
        const rows = await store.listInbox({ state: 'unmapped', limit: PAGE, afterId });
        for (const row of rows) {
          if (Date.now() - t0 > REPLAY_BUDGET_MS) {
            left = true;
            break;
          }
          const r = await pipeline.replay(row);
          if (r.status === 'unmapped') still++;
          else mapped++;
          afterId = row.id;
        }
        if (left || rows.length < PAGE) break;
      }
      const text =
        `Replayed ${mapped + still}: ${mapped} mapped, ${still} still unmapped.` +
        (left ? ' Some are left: replay all again to go on.' : '');
      return done(c, ctx, '/console/failures', still || left ? 'error' : 'ok', text);
    }),
  );

  app.post(
    '/console/inbox/:id/replay',
    action(ctx, async (c) => {
      const id = Number(c.req.param('id'));
      const row = Number.isInteger(id) ? await store.getInbox(id) : undefined;
      if (!row)
        throw new RelayError('RELAY_ERR_INBOX_NOT_FOUND', `no stored request ${c.req.param('id')}`);
      const r = await pipeline.replay(row);
      return r.status === 'unmapped'
        ? done(
            c,
            ctx,
            '/console/failures',
            'error',
            `Request #${id} is still unmapped: ${r.code}: ${r.message}`,
          )
        : done(c, ctx, '/console/failures', 'ok', `Request #${id}: ${r.status} (rule ${r.rule}).`);
    }),
  );

  app.post(
    '/console/adapters/reload',
    action(ctx, async (c) => {
      try {
        const { adapters, restartNeeded } = await ctx.opts.reload();
        return done(
          c,
          ctx,
          '/console/failures',
          'ok',
          `Reloaded relay.yaml and the adapters (${adapters.join(', ')}). New and replayed ` +
            'requests use them now.' +
            (restartNeeded.length
              ? ` Changed ${restartNeeded.join(', ')}: applies at the next start.`
              : ''),
        );
      } catch (err) {
        return done(
          c,
          ctx,
          '/console/failures',
          'error',
          `Reloading failed; the configuration in use stays.\n${(err as Error).message}`,
        );
      }
    }),
  );
}
