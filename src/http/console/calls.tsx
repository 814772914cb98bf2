// The call list: newest change first, filtered by a GET form, paged by the store's keyset cursor,
// one delivery badge per target. The first page stays live: console.js fetches the rows fragment
// again whenever the live stream says something changed.

import type { Context, Hono } from 'hono';
import type { Child } from 'hono/jsx';
import { RelayError } from '../../domain/errors.js';
import { talkTimeSec } from '../../domain/talk.js';
import type { CallQuery, CallRow, DeliveryRow } from '../../store/types.js';
import { nextCursor } from '../admin.js';
import {
  Badge,
  DryRunBadge,
  Direction,
  duration,
  fetched,
  Layout,
  page,
  render,
  renderFragment,
  timeText,
  type ConsoleContext,
} from './kit.js';
import type { Session } from './session.js';

const PAGE = 50;
const DIRECTIONS = ['inbound', 'outbound'] as const;
const OUTCOMES = ['answered', 'missed', 'busy', 'failed'] as const;
const FILTERS = ['source', 'direction', 'outcome', 'agent', 'number', 'from', 'to'] as const;
type Filters = Partial<Record<(typeof FILTERS)[number] | 'before', string>>;

/** A datetime-local value ("2026-01-02T10:00") is UTC here, as every time the console shows. */
function utc(name: string, v: string | undefined): string | undefined {
  if (!v) return undefined;
  const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(v) ? `${v}Z` : v;
  const t = Date.parse(iso);
  if (Number.isNaN(t))
    throw new RelayError('RELAY_ERR_BAD_REQUEST', `${name}: expected a date and time`);
  return new Date(t).toISOString();
}

/** The form's values and the store query they mean. */
export function callFilters(c: Context): { form: Filters; query: CallQuery } {
  const form: Filters = {};
  for (const k of [...FILTERS, 'before'] as const) {
    const v = c.req.query(k)?.trim();
    if (v) form[k] = v;
  }
  const oneOf = <T extends string>(name: string, v: string | undefined, all: readonly T[]) => {
    if (v !== undefined && !all.includes(v as T))
      throw new RelayError('RELAY_ERR_BAD_REQUEST', `${name} must be one of ${all.join(', ')}`);
    return v as T | undefined;
  };
  let before: CallQuery['before'];
  if (form.before) {
    const [updatedAt, source, callId] = form.before.split('|');
    if (!updatedAt || Number.isNaN(Date.parse(updatedAt)) || !source || callId === undefined)
      throw new RelayError('RELAY_ERR_BAD_REQUEST', 'before: not a page cursor of this list');
    before = { updatedAt, source, callId };
  }
  return {
    form,
    query: {
      limit: PAGE,
      source: form.source,
      direction: oneOf('direction', form.direction, DIRECTIONS),
      outcome: oneOf('outcome', form.outcome, OUTCOMES),
      agent: form.agent,
      number: form.number?.replace(/\D/g, '') || undefined,
      from: utc('from', form.from),
      to: utc('to', form.to),
      before,
    },
  };
}

const qs = (f: Filters): string => {
  const p = new URLSearchParams(Object.entries(f).filter(([, v]) => v) as [string, string][]);
  const s = p.toString();
  return s ? `?${s}` : '';
};

export const callHref = (r: { source: string; callId: string }): string =>
  `/console/calls/${encodeURIComponent(r.source)}/${encodeURIComponent(r.callId)}`;

export async function deliveriesByCall(
  ctx: ConsoleContext,
  rows: CallRow[],
): Promise<Map<string, DeliveryRow[]>> {
  const all = rows.length
    ? await ctx.opts.pipeline.store.deliveriesOf(
        rows.map((r) => ({ source: r.record.source, callId: r.record.callId })),
      )
    : [];
  const out = new Map<string, DeliveryRow[]>();
  for (const d of all) {
    const key = `${d.source}\n${d.callId}`;
    out.set(key, [...(out.get(key) ?? []), d]);
  }
  for (const list of out.values()) list.sort((a, b) => a.target.localeCompare(b.target));
  return out;
}

function Rows(props: {
  rows: CallRow[];
  deliveries: Map<string, DeliveryRow[]>;
  more: string | null;
  form: Filters;
  sources: number;
}): Child {
  const { rows, form } = props;
  return (
    <>
      <div class="scroll" role="region" aria-label="Calls" tabindex={0}>
        <table>
          <caption>
            {rows.length ? `${rows.length} calls, latest change first (times UTC)` : 'No calls'}
          </caption>
          <thead>
            <tr>
              <th scope="col">Started</th>
              {props.sources > 1 && (
                <th scope="col" class="wide">
                  Source
                </th>
              )}
              <th scope="col" class="wide">
                Direction
              </th>
              <th scope="col">Number</th>
              <th scope="col" class="wide">
                Agent
              </th>
              <th scope="col">Outcome</th>
              <th scope="col" class="wide">
                Talk time
              </th>
              <th scope="col">Delivery</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(({ record: r }) => {
              const ds = props.deliveries.get(`${r.source}\n${r.callId}`) ?? [];
              return (
                <tr>
                  <td class="num">
                    <a
                      href={callHref(r)}
                      aria-label={`Call ${r.callId}, started ${timeText(r.startedAt)} UTC`}
                    >
                      {/* Date and time wrap apart (a phone's narrow column), never inside; a
                          phone leaves out the year. */}
                      <time datetime={r.startedAt}>
                        <span class="nowrap">
                          <span class="year">{timeText(r.startedAt).slice(0, 5)}</span>
                          {timeText(r.startedAt).slice(5, 10)}
                        </span>{' '}
                        <span class="nowrap">{timeText(r.startedAt).slice(11)}</span>
                      </time>
                    </a>
                  </td>
                  {props.sources > 1 && <td class="wide">{r.source}</td>}
                  <td class="wide">
                    <Direction dir={r.direction} />
                  </td>
                  <td class="num">{r.externalE164 ?? r.externalNumber ?? '–'}</td>
                  <td class="wide">
                    {r.agentName ? `${r.agentName} (${r.agent ?? '?'})` : (r.agent ?? '–')}
                  </td>
                  <td>{r.outcome ?? <span class="muted">{r.status}</span>}</td>
                  <td class="num wide">{duration(talkTimeSec(r))}</td>
                  <td>
                    {ds.length ? (
                      ds.map((d) => (
                        <>
                          <Badge d={d} withTarget />
                          {d.dryRun && <DryRunBadge run />}
                        </>
                      ))
                    ) : (
                      <span class="muted">no target</span>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <p class="pager">
        {props.more && (
          <a href={`/console${qs({ ...form, before: props.more })}`} rel="next">
            Older calls →
          </a>
        )}
        {form.before && (
          <>
            {' '}
            <a href={`/console${qs({ ...form, before: undefined })}`}>Back to the newest</a>
          </>
        )}
      </p>
    </>
  );
}

function Filter(props: { form: Filters; sources: string[] }): Child {
  const f = props.form;
  const select = (name: 'source' | 'direction' | 'outcome', label: string, values: string[]) => (
    <div>
      <label for={`f-${name}`}>{label}</label>
      <select id={`f-${name}`} name={name}>
        <option value="">any</option>
        {values.map((v) => (
          <option value={v} selected={f[name] === v}>
            {v}
          </option>
        ))}
      </select>
    </div>
  );
  const text = (name: 'agent' | 'number', label: string) => (
    <div>
      <label for={`f-${name}`}>{label}</label>
      <input id={`f-${name}`} name={name} type="text" value={f[name] ?? ''} />
    </div>
  );
  const when = (name: 'from' | 'to', label: string) => (
    <div>
      <label for={`f-${name}`}>{label}</label>
      <input
        id={`f-${name}`}
        name={name}
        type="datetime-local"
        value={f[name]?.replace(/Z$/, '').slice(0, 16) ?? ''}
      />
    </div>
  );
  return (
    <form class="filters" method="get" action="/console" role="search" aria-label="Filter calls">
      {props.sources.length > 1 && select('source', 'Source', props.sources)}
      {select('direction', 'Direction', [...DIRECTIONS])}
      {select('outcome', 'Outcome', [...OUTCOMES])}
      {text('agent', 'Agent (extension)')}
      {text('number', 'Number contains')}
      {when('from', 'Started from (UTC)')}
      {when('to', 'until (UTC)')}
      <div>
        <button type="submit" class="primary">
          Filter
        </button>{' '}
        <a class="button" href="/console">
          Clear
        </a>
      </div>
    </form>
  );
}

export function mountCalls(app: Hono, ctx: ConsoleContext): void {
  const store = ctx.opts.pipeline.store;
  const sources = (): string[] => [...ctx.opts.pipeline.sources.keys()].sort();

  const load = async (c: Context) => {
    const { form, query } = callFilters(c);
    const rows = ctx.opts.redact.value(await store.listCalls(query));
    const deliveries = await deliveriesByCall(ctx, rows);
    return { form, rows, deliveries, more: nextCursor(rows, query.limit) };
  };
  const rowsOf = (data: Awaited<ReturnType<typeof load>>): Child => (
    <Rows {...data} sources={sources().length} />
  );

  const listPage = async (c: Context, session: Session): Promise<Response> => {
    const flash = ctx.sessions.takeFlash(c);
    let data: Awaited<ReturnType<typeof load>> | undefined;
    let problem: string | undefined;
    try {
      data = await load(c);
    } catch (err) {
      if (!(err instanceof RelayError) || err.code !== 'RELAY_ERR_BAD_REQUEST') throw err;
      problem = err.message;
    }
    const live = data && !data.form.before;
    return render(
      c,
      ctx,
      <Layout ctx={ctx} title="Calls" nav="calls" session={session} flash={flash}>
        <h1>Calls</h1>
        <Filter form={data?.form ?? {}} sources={sources()} />
        {problem && (
          <p class="notice error" role="alert">
            {problem}
          </p>
        )}
        {live && (
          <p class="live" id="live-status" role="status">
            New calls appear here as they come in.
          </p>
        )}
        {data && (
          <section
            aria-label="Call list"
            data-live-src={live ? `/console/calls/rows${qs(data.form)}` : undefined}
          >
            {rowsOf(data)}
          </section>
        )}
      </Layout>,
      problem ? 400 : 200,
    );
  };

  app.get('/console', page(ctx, listPage));
  app.get('/console/calls', page(ctx, listPage));
  // The live region's fragment: the same rows, without the page around them.
  app.get(
    '/console/calls/rows',
    fetched(ctx, async (c) => renderFragment(c, ctx, rowsOf(await load(c)))),
  );
}
