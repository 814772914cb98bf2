// One call: what the relay concluded, the events that built it (by leg, with transfers), its
// recordings played through the relay, each target's delivery with every attempt, and the raw
// requests behind it. Also the delivery actions: retry now, deliver again.

import type { Context, Hono } from 'hono';
import type { Child } from 'hono/jsx';
import { NO_USER_OPERATION, skippedReason } from '../../domain/delivery.js';
import { RelayError } from '../../domain/errors.js';
import { audioType, toWebStream } from '../../lib/streams.js';
import type { CallRecord } from '../../domain/model.js';
import { ringTimeSec, talkTimeSec } from '../../domain/talk.js';
import type { AttemptRow, CallRow, DeliveryRow, InboxRow } from '../../store/types.js';
import { callHref } from './calls.js';
import {
  action,
  backPath,
  Csrf,
  Badge,
  Direction,
  done,
  DryRunBadge,
  duration,
  fetched,
  Layout,
  page,
  PostButton,
  render,
  Time,
  timeText,
  type ConsoleContext,
} from './kit.js';
import type { Session } from './session.js';
import type { ConsoleTarget } from './types.js';

/** Raw requests shown per call, and bytes of each body (the rest is counted, not shown). */
const MAX_REQUESTS = 100;
const MAX_BODY = 4096;
const MAX_ATTEMPTS = 50;

interface Delivery {
  row: DeliveryRow;
  attempts: AttemptRow[];
  link: ReturnType<ConsoleTarget['link']>;
}

/** What the newest run listed went without (an agent the CRM has no user for), once each. */
function notesOf(attempts: AttemptRow[]): string[] {
  const newest = attempts[0]?.rev;
  return [
    ...new Set(
      attempts
        .filter((a) => a.rev === newest && a.operation === NO_USER_OPERATION && a.error)
        .map((a) => a.error!),
    ),
  ];
}

async function oneCall(ctx: ConsoleContext, c: Context): Promise<CallRow> {
  const source = c.req.param('source')!;
  const callId = c.req.param('callId')!;
  const [row] = await ctx.opts.pipeline.store.getCalls(callId, source);
  if (!row)
    throw new RelayError('RELAY_ERR_CALL_NOT_FOUND', `no call "${callId}" from source ${source}`);
  return row;
}

const Fact = ({ label, children }: { label: string; children?: Child }): Child => (
  <>
    <dt>{label}</dt>
    <dd>{children ?? <span class="muted">–</span>}</dd>
  </>
);

/** 3CX scores sentiment 1 (very negative) to 5 (very positive). */
const SENTIMENT = ['very negative', 'negative', 'neutral', 'positive', 'very positive'];
const sentimentText = (n: number | undefined): string | undefined =>
  n === undefined ? undefined : (SENTIMENT[n - 1] ?? `scored ${n}`);

/** How a call ended, in words, where the phone system's reason is one an office knows. */
function endText(r: CallRecord): string | undefined {
  if (r.closedBy === 'relay')
    return 'the phone system never reported the end; the relay closed the call';
  const reason = r.endReason?.toLowerCase();
  if (reason === 'declined') return 'the other side declined the call';
  return undefined;
}

const STATUS: Record<CallRecord['status'], string> = {
  ringing: 'Ringing',
  'in-progress': 'In progress',
  ended: 'Ended',
  // Only a recording or an analysis came: no ring, answer or end says there was a call yet.
  incomplete: 'Incomplete (no call event yet)',
};

/** The phone system's and the store's own values, for whoever asks what the words stand for. */
function RawValues({ row }: { row: CallRow }): Child {
  const r = row.record;
  const raw: [string, string | null | undefined][] = [
    ['Status', `${r.status}${r.outcome ? `, ${r.outcome}` : ''}`],
    ["Phone system's status", r.providerStatus],
    ['End reason', r.endReason],
    ['Closed by', r.closedBy],
    ['Duration (total)', r.durationSec === null ? null : `${r.durationSec} s`],
    ['Talk (as sent)', r.talkSec === null ? null : `${r.talkSec} s`],
    ['Sentiment score', r.ai?.sentiment === undefined ? null : String(r.ai.sentiment)],
    ['Legs', [...new Set(r.events.map((e) => e.legId).filter((l) => l))].join(', ') || null],
    ['Revision', String(row.revision)],
  ];
  return (
    <details class="raw">
      <summary>Raw values</summary>
      <dl class="facts">
        {raw
          .filter(([, v]) => v)
          .map(([k, v]) => (
            <>
              <dt>{k}</dt>
              <dd>
                <code>{v}</code>
              </dd>
            </>
          ))}
      </dl>
    </details>
  );
}

function Summary({ row }: { row: CallRow }): Child {
  const r = row.record;
  const ring = ringTimeSec(r);
  return (
    <dl class="facts">
      <Fact label="Direction">
        <Direction dir={r.direction} />
      </Fact>
      <Fact label="Status">
        {STATUS[r.status]}
        {r.outcome && `, ${r.outcome}`}
      </Fact>
      <Fact label="External number">{r.externalE164 ?? r.externalNumber}</Fact>
      <Fact label="Dialled number (DID)">{r.did}</Fact>
      <Fact label="Agent">{r.agentName ? `${r.agentName} (${r.agent ?? '?'})` : r.agent}</Fact>
      <Fact label="Rang">{r.rang.length ? r.rang.join(', ') : undefined}</Fact>
      <Fact label="Started">
        <Time iso={r.startedAt} />
      </Fact>
      <Fact label="Answered">
        <Time iso={r.answeredAt} />
      </Fact>
      <Fact label="Ended">
        <Time iso={r.endedAt} />
      </Fact>
      <Fact label="Talk time">{duration(talkTimeSec(r))}</Fact>
      {ring !== null && <Fact label="Ring time">{duration(ring)}</Fact>}
      {endText(r) && <Fact label="How it ended">{endText(r)}</Fact>}
      <Fact label="Campaign">{r.campaign}</Fact>
      <Fact label="Placed by">{r.originatedBy}</Fact>
      <Fact label="Source / adapter">{`${r.source} / ${r.provider}`}</Fact>
      <Fact label="Last change">
        <Time iso={row.updatedAt} />
      </Fact>
      {(r.truncated || row.droppedEvents > 0) && (
        <Fact label="Events over the limit">
          {`${row.droppedEvents} kept as raw requests only (store.maxEventsPerCall)`}
        </Fact>
      )}
    </dl>
  );
}

/** The events of each leg in order of arrival, legs in order of their first event. */
function Timeline({ r }: { r: CallRecord }): Child {
  const groups = new Map<string, CallRecord['events']>();
  for (const e of r.events) {
    const key = e.legId ?? '';
    groups.set(key, [...(groups.get(key) ?? []), e]);
  }
  // "Leg -1" means nothing to an office: parts are numbered in order, the leg id kept in a title.
  const order = [...groups.keys()].filter((k) => k);
  const legName = (id: string): string =>
    !id ? 'The whole call' : order.length > 1 ? `Part ${order.indexOf(id) + 1}` : 'The call';
  return (
    <>
      {r.transfers.length > 0 && (
        <ul class="transfers" aria-label="Transfers">
          {r.transfers.map((t) => (
            <li>{`${t.kind} transfer: ${t.fromAgent ?? '?'} → ${t.toAgent ?? '?'}`}</li>
          ))}
        </ul>
      )}
      <div class="timeline">
        {[...groups].map(([legId, events]) => {
          const leg = r.legs.find((l) => l.legId === legId);
          return (
            <section class="leg" aria-label={legName(legId)}>
              <h3 title={legId ? `leg ${legId}` : undefined}>
                {legName(legId)}
                {leg && (
                  <span class="muted">
                    {` · agent ${leg.agent ?? '?'} · ${duration(leg.durationSec)}`}
                  </span>
                )}
              </h3>
              <ol>
                {events.map((e) => (
                  <li>
                    <strong>{e.type}</strong> <Time iso={e.receivedAt} />{' '}
                    <a class="muted" href={`#request-${e.inboxId}`}>
                      {`request #${e.inboxId}`}
                    </a>
                  </li>
                ))}
              </ol>
            </section>
          );
        })}
      </div>
    </>
  );
}

/**
 * Each recording as a player, or why there is none: a link the relay will not fetch says so at
 * once; one the phone system fails to give (404, an error) is said by console.js when playing
 * fails, instead of a silent 0:00 player.
 */
function Recordings(props: { r: CallRecord; problems: (string | undefined)[] }): Child {
  const { r } = props;
  if (!r.recordings.length) return <p class="muted">No recordings.</p>;
  return (
    <ul class="plain">
      {r.recordings.map((url, i) => {
        const problem = props.problems[i];
        return (
          <li>
            {problem ? (
              <p class="notice error">{`Recording ${i + 1} cannot be played: ${problem}`}</p>
            ) : (
              <>
                <audio
                  controls
                  preload="none"
                  src={`${callHref(r)}/recordings/${i}`}
                  aria-label={`Recording ${i + 1}`}
                  data-recording={`rec-${i}`}
                ></audio>
                <p class="notice error" id={`rec-${i}`} role="status" hidden></p>
              </>
            )}
            <div class="muted wrap">{url}</div>
          </li>
        );
      })}
    </ul>
  );
}

function Ai({ r }: { r: CallRecord }): Child {
  const ai = r.ai;
  if (!ai) return <p class="muted">No AI summary for this call.</p>;
  return (
    <dl class="facts">
      <Fact label="Summary">{ai.summary}</Fact>
      <Fact label="Mood of the call">{sentimentText(ai.sentiment)}</Fact>
      <Fact label="Transcription">
        {ai.transcription ? (
          <details>
            <summary>Show</summary>
            <pre>{ai.transcription}</pre>
          </details>
        ) : ai.hasTranscription ? (
          'sent by the phone system (not kept in the record)'
        ) : undefined}
      </Fact>
    </dl>
  );
}

const safeLink = (url: string | null | undefined): string | undefined =>
  url && /^https?:\/\//i.test(url) ? url : undefined;

function DeliveryCard(props: { d: Delivery; session: Session; back: string }): Child {
  const { row: d, attempts, link } = props.d;
  return (
    <section class="card" aria-labelledby={`dl-${d.id}`}>
      <h3 id={`dl-${d.id}`}>
        {d.target} <Badge d={d} /> {d.dryRun && <DryRunBadge run />}
      </h3>
      <dl class="facts">
        {notesOf(attempts).map((n) => (
          <Fact label="Owner">
            <span class="b-error">{n}</span>
          </Fact>
        ))}
        <Fact label="In the CRM">
          {skippedReason(d) !== undefined && `skipped: ${skippedReason(d)}`}
          {link &&
            (safeLink(link.url) ? (
              <a href={safeLink(link.url)} rel="noreferrer noopener" target="_blank">
                {link.id}
              </a>
            ) : (
              link.id
            ))}
        </Fact>
        <Fact label="Delivered">
          {d.doneRev
            ? d.doneRev >= d.wantRev
              ? 'the latest state of the call'
              : 'an earlier state; the latest goes next'
            : undefined}
          {d.doneRev > 0 && (
            <details class="raw">
              <summary>Raw values</summary>
              <code>{`revision ${d.doneRev} of ${d.wantRev}`}</code>
            </details>
          )}
        </Fact>
        {d.state !== 'done' && (
          <Fact label={d.state === 'dead' ? 'Gave up' : 'Next try'}>
            <Time iso={d.state === 'dead' ? d.updatedAt : d.dueAt} />
          </Fact>
        )}
        {d.lastError && (
          <Fact label="Last error">
            <span class="b-error">{d.lastError}</span>
          </Fact>
        )}
      </dl>
      <div class="actions">
        {d.state !== 'done' && (
          <PostButton
            session={props.session}
            action={`/console/deliveries/${d.id}/retry`}
            back={props.back}
            label="Retry now"
            kind="primary"
          />
        )}
        {d.state === 'done' && (
          <PostButton
            session={props.session}
            action={`/console/deliveries/${d.id}/redeliver`}
            back={props.back}
            label="Deliver again"
            confirm={`Send this call to ${d.target} again? Its copy there is updated in place.`}
          />
        )}
      </div>
      {attempts.length ? (
        <div class="scroll" role="region" aria-label={`Attempts for ${d.target}`} tabindex={0}>
          <table>
            <caption>{`Attempts, newest first (${attempts.length} shown)`}</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Operation</th>
                <th scope="col">HTTP</th>
                <th scope="col">Took</th>
                <th scope="col">Request id</th>
                <th scope="col">Result</th>
              </tr>
            </thead>
            <tbody>
              {attempts.map((a) => (
                <tr>
                  <td class="num">
                    <Time iso={a.startedAt} />
                  </td>
                  <td>
                    {a.operation}
                    {a.method && <div class="muted">{`${a.method} ${a.path ?? ''}`}</div>}
                    {a.sent && (
                      <details>
                        <summary>What the CRM would get</summary>
                        <pre>{prettyJson(a.sent)}</pre>
                      </details>
                    )}
                  </td>
                  <td class="num">{a.status === null ? 'no answer' : String(a.status)}</td>
                  <td class="num">{`${a.durationMs} ms`}</td>
                  <td>{a.requestId ?? <span class="muted">–</span>}</td>
                  <td>
                    <span class={`badge b-${attemptClass(a.result)}`}>{a.result}</span>
                    {a.retryAt && <div>{`next try ${timeText(a.retryAt)}`}</div>}
                    {a.error && <div>{a.error}</div>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <p class="muted">No attempts yet.</p>
      )}
    </section>
  );
}

const attemptClass = (r: AttemptRow['result']): string =>
  r === 'ok' || r === 'delivered' ? 'ok' : r === 'retry' ? 'retrying' : 'dead';

/** A stored body as text when it is UTF-8 (else a note), cut at MAX_BODY. */
/** A dry run's body, indented when it is JSON. */
function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function bodyText(body: Buffer): string {
  if (!body.length) return '(empty)';
  if (!isUtf8(body)) return `(${body.length} bytes of binary data)`;
  const text = body.toString('utf8');
  return body.length > MAX_BODY
    ? `${body.subarray(0, MAX_BODY).toString('utf8')}\n… ${body.length - MAX_BODY} more bytes`
    : text;
}

export function RawRequest({ req }: { req: InboxRow }): Child {
  return (
    <details id={`request-${req.id}`}>
      <summary>
        {`#${req.id} ${req.method} · `}
        <Time iso={req.receivedAt} />
        {` · ${req.state}${req.rule ? ` (rule ${req.rule})` : ''} · ${req.body.length} bytes`}
      </summary>
      {req.reasonCode && <p>{`${req.reasonCode}: ${req.reason ?? ''}`}</p>}
      {req.query && (
        <>
          <h4>Query</h4>
          <pre>{req.query}</pre>
        </>
      )}
      <h4>Headers</h4>
      <pre>
        {Object.entries(req.headers)
          .map(([k, v]) => `${k}: ${v}`)
          .join('\n') || '(none kept)'}
      </pre>
      <h4>Body{req.contentType && <span class="muted">{` (${req.contentType})`}</span>}</h4>
      <pre>{bodyText(req.body)}</pre>
    </details>
  );
}

export function mountCall(app: Hono, ctx: ConsoleContext): void {
  const store = ctx.opts.pipeline.store;
  const { redact } = ctx.opts;
  // Looked up per page: a reload replaces the list's entries.
  const targets = { get: (name: string) => ctx.opts.targets.find((t) => t.name === name) };

  app.get(
    '/console/calls/:source/:callId',
    page(ctx, async (c, session) => {
      const row = await oneCall(ctx, c);
      const r = row.record;
      const key = { source: r.source, callId: r.callId };
      const deliveries: Delivery[] = [];
      for (const d of await store.deliveriesOf([key])) {
        const attempts = await store.listAttempts({ deliveryId: d.id, limit: MAX_ATTEMPTS });
        // A dry run's copy is the sandbox's: no CRM has it to link to.
        const link = d.dryRun ? undefined : targets.get(d.target)?.link(d.remote);
        deliveries.push({ row: d, attempts, link });
      }
      deliveries.sort((a, b) => a.row.target.localeCompare(b.row.target));
      const ids = [...new Set(r.events.map((e) => e.inboxId))].sort((a, b) => a - b);
      const requests = ids.length
        ? await store.listInbox({ ids: ids.slice(0, MAX_REQUESTS), limit: MAX_REQUESTS })
        : [];
      // Stored texts and CRM answers are scrubbed before they are laid out (escaping could hide
      // a secret from the final pass over the HTML).
      const view = redact.value({ row, deliveries });
      const raw = requests.map(({ body, ...rest }) => ({
        ...redact.value(rest),
        body: isUtf8(body) ? Buffer.from(redact.text(body.toString('utf8'))) : body,
      }));
      const problemOf = ctx.opts.recordingProblem ?? (async () => undefined);
      const problems = await Promise.all(r.recordings.map((url) => problemOf(r.source, url)));
      const back = callHref(r);
      return render(
        c,
        ctx,
        <Layout
          ctx={ctx}
          title={`Call ${r.callId}`}
          nav="calls"
          session={session}
          flash={ctx.sessions.takeFlash(c)}
        >
          <p>
            <a href="/console">← Calls</a>
          </p>
          <h1>
            {`Call ${r.callId} `}
            <span class="muted">{`(${r.source})`}</span>
          </h1>
          <Summary row={view.row} />
          <RawValues row={view.row} />
          {ctx.opts.dial &&
            ctx.opts.canDial?.(r.source) &&
            (r.externalE164 ?? r.externalNumber) && (
              <form class="inline" method="post" action={`${callHref(r)}/dial`}>
                <Csrf session={session} />
                <label>
                  {'Call back from extension '}
                  <input name="agent" value={r.agent ?? ''} size={6} inputmode="numeric" required />
                </label>{' '}
                <button type="submit" class="primary">
                  {`Call ${r.externalE164 ?? r.externalNumber ?? ''}`}
                </button>
              </form>
            )}
          <h2>Deliveries</h2>
          {view.deliveries.length ? (
            <div class="stack">
              {view.deliveries.map((d) => (
                <DeliveryCard d={d} session={session} back={back} />
              ))}
            </div>
          ) : (
            <p class="muted">No target takes this call (routes in relay.yaml).</p>
          )}
          <h2>Recordings</h2>
          <Recordings r={view.row.record} problems={problems} />
          <h2>AI summary</h2>
          <Ai r={view.row.record} />
          <h2>Timeline</h2>
          <Timeline r={view.row.record} />
          <h2>Raw requests</h2>
          {ids.length > MAX_REQUESTS && (
            <p class="muted">{`The first ${MAX_REQUESTS} of ${ids.length} requests.`}</p>
          )}
          {raw.map((q) => (
            <RawRequest req={q} />
          ))}
        </Layout>,
      );
    }),
  );

  // Played through the relay: the browser needs no access to the PBX, and only a URL the call
  // itself names is ever fetched (by its position, so nothing else can be asked for).
  app.get(
    '/console/calls/:source/:callId/recordings/:n',
    fetched(ctx, async (c) => {
      const row = await oneCall(ctx, c);
      const n = Number(c.req.param('n'));
      const url = Number.isInteger(n) ? row.record.recordings[n] : undefined;
      if (url === undefined)
        throw new RelayError(
          'RELAY_ERR_NOT_FOUND',
          `the call has no recording ${c.req.param('n')}`,
        );
      let rec;
      try {
        rec = await ctx.opts.recording(row.record.source, url);
      } catch (err) {
        throw new RelayError(
          'RELAY_ERR_RECORDING_UNAVAILABLE',
          `the recording could not be fetched: ${(err as Error).message}`,
        );
      }
      return new Response(toWebStream(rec.body), {
        headers: {
          'content-type': audioType(rec.contentType),
          // Behind the session: no copy may outlive it (a shared browser, a proxy's cache).
          'cache-control': 'no-store',
        },
      });
    }),
  );

  // Call the caller back: the PBX rings the agent's extension, then dials the call's number.
  app.post(
    '/console/calls/:source/:callId/dial',
    action(ctx, async (c, _session, form) => {
      const [row] = await store.getCalls(c.req.param('callId')!, c.req.param('source'));
      if (!row) throw new RelayError('RELAY_ERR_CALL_NOT_FOUND');
      const r = row.record;
      const number = r.externalE164 ?? r.externalNumber;
      if (!ctx.opts.dial || !number)
        throw new RelayError('RELAY_ERR_BAD_REQUEST', 'this call cannot be called back from here');
      const placed = await ctx.opts.dial({
        source: r.source,
        agent: String(form.agent ?? '').trim(),
        number,
        by: 'api:console',
      });
      return done(
        c,
        ctx,
        callHref(r),
        'ok',
        `Calling ${placed.number}: pick up at extension ${String(form.agent).trim()}.`,
      );
    }),
  );

  for (const [path, verb] of [
    ['retry', 'Retry'],
    ['redeliver', 'Deliver again'],
  ] as const) {
    app.post(
      `/console/deliveries/:id/${path}`,
      action(ctx, async (c, _session, form) => {
        const id = Number(c.req.param('id'));
        const d = Number.isInteger(id) ? await store.getDelivery(id) : undefined;
        if (!d)
          throw new RelayError('RELAY_ERR_DELIVERY_NOT_FOUND', `no delivery ${c.req.param('id')}`);
        const back = backPath(form.back, callHref(d));
        const n =
          path === 'retry' ? await store.retryDeliveries([id]) : await store.redeliver([id]);
        ctx.opts.onDeliveriesDue();
        return n
          ? done(c, ctx, back, 'ok', `${verb}: the call goes to ${d.target} now.`)
          : done(
              c,
              ctx,
              back,
              'error',
              `${verb}: nothing to do; the delivery to ${d.target} is ${d.state}` +
                (d.state === 'due' ? ' and under way' : ''),
            );
      }),
    );
  }
}

function isUtf8(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}
