// The agent's own page (/agent): the ringing card (filled and kept live by console/agent.js from
// /agent/events), a button for browser notifications, and "My calls": their recent calls, newest
// first, paged (GET /agent/calls answers the list alone, which the script fetches again when a
// call ends). Only the agent's calls (calls.ts's rule) appear anywhere here.

import type { Context, Hono } from 'hono';
import type { Child } from 'hono/jsx';
import { RelayError } from '../domain/errors.js';
import { talkTimeSec } from '../domain/talk.js';
import { deliveriesByCall } from '../http/console/calls.js';
import { Direction, duration, render, renderFragment, timeText } from '../http/console/kit.js';
import type { CallRow } from '../store/types.js';
import { handledBy, isAgentsCall, personName, shownNumber } from './calls.js';
import { AgentLayout, agentLabel, agentPage, type AgentContext, type SignedIn } from './kit.js';
import { mountAgentLive } from './live.js';

/** Calls per page of My calls. */
const PAGE = 20;
/**
 * The store finds the agent's calls itself (CallQuery.parties); isAgentsCall only confirms them.
 * Should it refuse some, the page is filled from further reads, of at most this many calls.
 */
const MAX_SCAN = 200;
/** How long My calls waits for the CRM's names (cached ones come at once; the rest say "–"). */
const NAMES_MS = 400;
/**
 * Numbers whose names one page view asks the CRMs for (the newest calls'), since a CRM's search
 * quota is shared with delivery; older ones on a long page go without a name.
 */
const NAMES_AT_MOST = 10;

interface MyCall {
  row: CallRow;
  contact: string | null;
  crm: { target: string; url: string }[];
  recordings: string[];
  /** The agent was on it (calls.ts handledBy); else it only rang them. */
  handled: boolean;
}

interface MyCalls {
  calls: MyCall[];
  /** The cursor of the next page, if there may be one. */
  more: string | null;
  first: boolean;
}

type Cursor = { updatedAt: string; source: string; callId: string };

function cursorOf(v: string | undefined): Cursor | undefined {
  if (!v) return undefined;
  const [updatedAt, source, callId] = v.split('|');
  if (!updatedAt || Number.isNaN(Date.parse(updatedAt)) || !source || callId === undefined)
    throw new RelayError('RELAY_ERR_BAD_REQUEST', 'before: not a page cursor of this list');
  return { updatedAt, source, callId };
}

const cursorText = (row: CallRow): string =>
  `${row.updatedAt}|${row.record.source}|${row.record.callId}`;

/**
 * One page of the agent's calls: the store asked for those they took part in (one read of a page
 * and one more call, to know there is a next page), newest first, each confirmed by calls.ts.
 */
async function myCalls(ctx: AgentContext, c: Context, who: SignedIn): Promise<MyCalls> {
  const store = ctx.console.opts.pipeline.store;
  const given = c.req.query('before');
  let before = cursorOf(given);
  const parties = [who.agent.extension, ...(who.agent.groups ?? [])];
  const rows: CallRow[] = [];
  let scanned = 0;
  let more: string | null = null;
  for (;;) {
    const limit = PAGE + 1;
    const batch = await store.listCalls({ limit, parties, ...(before ? { before } : {}) });
    scanned += batch.length;
    let last: CallRow | undefined;
    for (const row of batch) {
      if (rows.length === PAGE) {
        // A call beyond the page: there is an older one to show.
        more = cursorText(last!);
        break;
      }
      last = row;
      if (isAgentsCall(row.record, who.agent)) rows.push(row);
    }
    if (more || batch.length < limit) break;
    // Every call of a full read was looked at: the next page starts below the last.
    if (rows.length === PAGE || scanned >= MAX_SCAN) {
      more = last ? cursorText(last) : null;
      break;
    }
    before = {
      updatedAt: last!.updatedAt,
      source: last!.record.source,
      callId: last!.record.callId,
    };
  }
  const deliveries = await deliveriesByCall(ctx.console, rows);
  const targets = ctx.console.opts.targets;
  const names = new Map<string, string | null>();
  const lookup = ctx.opts.lookup;
  if (lookup)
    await Promise.all(
      [...new Set(rows.map((r) => r.record.externalE164).filter((n) => n !== null))]
        .slice(0, NAMES_AT_MOST)
        .map(async (n) => {
          const found = await lookup(n, NAMES_MS).catch(() => undefined);
          const c = found?.contact;
          const name = c && ([c.firstName, c.lastName].filter(Boolean).join(' ') || c.company);
          names.set(n, name || null);
        }),
    );
  const calls = rows.map((row) => {
    const r = row.record;
    // Only a call the agent was on opens its recording and CRM record: one that rang them and a
    // colleague took is the colleague's conversation.
    if (!handledBy(r, who.agent))
      return {
        row,
        contact: r.externalE164 ? (names.get(r.externalE164) ?? null) : null,
        crm: [],
        recordings: [],
        handled: false,
      };
    const crm = (deliveries.get(`${r.source}\n${r.callId}`) ?? []).flatMap((d) => {
      // A dry run's copy is a sandbox's: no CRM has it.
      const link = d.dryRun ? undefined : targets.find((t) => t.name === d.target)?.link(d.remote);
      return link?.url ? [{ target: d.target, url: link.url }] : [];
    });
    const recordings = r.recordings.flatMap(
      (url) => ctx.opts.recordingLink?.(r.source, r.callId, url) ?? [],
    );
    return {
      row,
      contact: r.externalE164 ? (names.get(r.externalE164) ?? null) : null,
      crm,
      recordings,
      handled: true,
    };
  });
  return { calls, more, first: !given };
}

function outcomeText(row: CallRow): string {
  const r = row.record;
  if (r.outcome) return r.outcome;
  return r.status === 'in-progress' ? 'on the phone' : r.status;
}

/** A call that rang the agent and someone else took (or nobody did), as their list says it. */
function othersText(row: CallRow, directory: Parameters<typeof personName>[1]): string {
  const r = row.record;
  const by = r.agent !== null || r.agentName ? personName(r.agent, directory, r.agentName) : null;
  if (by && (r.outcome === 'answered' || r.status === 'in-progress')) return `answered by ${by}`;
  // An incomplete call (only a recording so far) was missed by nobody: it says so.
  return r.status === 'ringing' || r.status === 'incomplete' ? r.status : 'missed';
}

function CallsList(props: { ctx: AgentContext; list: MyCalls }): Child {
  const directory = props.ctx.opts.directory();
  const { calls, more } = props.list;
  return (
    <>
      <div class="scroll" role="region" aria-label="My calls" tabindex={0}>
        <table>
          <caption>
            {calls.length ? `Your latest ${calls.length} calls (times UTC)` : 'No calls yet'}
          </caption>
          <thead>
            <tr>
              <th scope="col">Started</th>
              <th scope="col">Direction</th>
              <th scope="col">Number</th>
              <th scope="col">Contact</th>
              <th scope="col">Outcome</th>
              <th scope="col">Talk time</th>
              <th scope="col">Recording</th>
              <th scope="col">CRM</th>
              <th scope="col">
                <span class="skip">Call back</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {calls.map(({ row, contact, crm, recordings, handled }) => {
              const r = row.record;
              const by =
                handled && r.outcome === 'answered'
                  ? personName(r.agent, directory, r.agentName)
                  : null;
              return (
                <tr data-call={`${r.source}/${r.callId}`}>
                  <td class="num nowrap">
                    <time datetime={r.startedAt}>{timeText(r.startedAt)}</time>
                  </td>
                  <td>
                    <Direction dir={r.direction} />
                  </td>
                  <td class="num nowrap">{shownNumber(r)}</td>
                  <td>{contact ?? <span class="muted">–</span>}</td>
                  <td>
                    {handled ? outcomeText(row) : othersText(row, directory)}
                    {by && <span class="muted">{` (${by})`}</span>}
                  </td>
                  <td class="num">{duration(talkTimeSec(r))}</td>
                  <td>
                    {recordings.length ? (
                      recordings.map((url, i) => (
                        <a href={url} target="_blank" rel="noopener noreferrer">
                          {recordings.length > 1 ? `Listen (${i + 1})` : 'Listen'}
                        </a>
                      ))
                    ) : (
                      <span class="muted">–</span>
                    )}
                  </td>
                  <td>
                    {crm.length ? (
                      crm.map((l) => (
                        <a href={l.url} target="_blank" rel="noopener noreferrer">
                          {`Open in ${l.target}`}
                        </a>
                      ))
                    ) : (
                      <span class="muted">–</span>
                    )}
                  </td>
                  <td>
                    {r.externalE164 && (
                      <a
                        href={`/agent/dial?number=${encodeURIComponent(r.externalE164)}`}
                        aria-label={`Call back ${shownNumber(r)}`}
                      >
                        Call back
                      </a>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <p class="pager">
        {more && (
          <a href={`/agent?before=${encodeURIComponent(more)}#calls`} rel="next">
            Older calls →
          </a>
        )}
        {!props.list.first && (
          <>
            {' '}
            <a href="/agent#calls">Back to the newest</a>
          </>
        )}
      </p>
    </>
  );
}

/**
 * The offer to make the relay the browser's handler for tel: links (console/agent-dial.js): a
 * phone link in any CRM then opens /agent/dial. Shown only where the browser can do it.
 */
function TelHandler(props: { ctx: AgentContext }): Child {
  return (
    <section class="tel-handler" aria-labelledby="tel-handler-title">
      <h2 id="tel-handler-title">Click-to-call from any page</h2>
      <p>
        Phone links in your CRM, or on any web page, can open here: one click on Call and your phone
        rings, then the number is dialled.
      </p>
      <button type="button" id="tel-handler" hidden>
        Make callrelay open phone links
      </button>
      <p id="tel-handler-status" class="muted" role="status"></p>
      <script src={props.ctx.console.assets.url('agent-dial.js')} defer></script>
    </section>
  );
}

export function mountAgentPage(app: Hono, ctx: AgentContext): void {
  mountAgentLive(app, ctx);

  app.get(
    '/agent',
    agentPage(ctx, async (c, who) => {
      const list = await myCalls(ctx, c, who);
      return render(
        c,
        ctx.console,
        <AgentLayout ctx={ctx} title="Your calls" who={who}>
          <h1>{agentLabel(who.agent)}</h1>
          <section aria-labelledby="ringing-title">
            <h2 id="ringing-title">Ringing now</h2>
            <p class="live" id="desk-status" role="status">
              Live cards need JavaScript.
            </p>
            <div id="desk" class="cards" data-desk-src="/agent/events" aria-live="polite"></div>
            <p hidden id="notify-row">
              <button type="button" id="notify">
                Notify me when a call rings
              </button>
            </p>
          </section>
          <section aria-labelledby="calls-title" id="calls">
            <h2 id="calls-title">My calls</h2>
            <div id="my-calls" data-calls-src={list.first ? '/agent/calls' : undefined}>
              <CallsList ctx={ctx} list={list} />
            </div>
          </section>
          <TelHandler ctx={ctx} />
          <script src={ctx.console.assets.url('agent.js')} defer></script>
        </AgentLayout>,
      );
    }),
  );

  app.get(
    '/agent/calls',
    agentPage(ctx, async (c, who) =>
      renderFragment(c, ctx.console, <CallsList ctx={ctx} list={await myCalls(ctx, c, who)} />),
    ),
  );
}
