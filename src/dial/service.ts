// Placing a call (click-to-call), whichever way it is asked for: the source and agent checked, the
// number checked against dial.allowTypes and dial.allowCountries (policy.ts), each link's and each
// agent's calls a minute counted (one agent's allowance is shared by every path), then the PBX
// asked (makecall) and its answer stored as a pbx-response request, which the adapter maps to an
// `originated` event: the call's webhooks that carry the same chid fold into a call whose
// originatedBy says who placed it. Every outcome is counted in callrelay_dial_total.

import { RelayError } from '../domain/errors.js';
import type { DialRequest, DialResult, NumberType } from '../domain/dial.js';
import { KeyedBuckets } from '../lib/buckets.js';
import { makecall, MakecallError, type MakecallSettings } from '../pbx/makecall.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { RelayMetrics } from '../telemetry/metrics.js';
import { checkNumber, DialRefused, type Dialable } from './policy.js';

export type DialPath = 'link' | 'api' | 'console' | 'agent';

export interface DialSettings {
  allowTypes: NumberType[];
  allowCountries?: string[] | undefined;
  perLinkPerMinute: number;
  perAgentPerMinute: number;
}

export interface DialSource {
  name: string;
  defaultCountry?: string | undefined;
  pbx?: MakecallSettings | undefined;
}

export interface DialerOptions {
  pipeline: Pick<Pipeline, 'ingest'>;
  /** Read at each call: a reload's sources and settings apply at once. */
  sources: () => readonly DialSource[];
  settings: () => DialSettings;
  metrics?: Pick<RelayMetrics, 'dials'> | undefined;
  now?: () => number;
}

type Result = 'placed' | 'refused' | 'rate_limited' | 'failed';

export class Dialer {
  private limits: { link: KeyedBuckets; agent: KeyedBuckets; rates: string } | undefined;

  constructor(private readonly o: DialerOptions) {}

  count(path: DialPath, result: Result, reason = 'none'): void {
    this.o.metrics?.dials.inc({ path, result, reason });
  }

  /**
   * The number as it would be dialled for `source`, or the refusal (a RelayError): for a page
   * that shows the number before anyone confirms it. Counts nothing.
   */
  check(sourceName: string, agent: string, number: string): Dialable {
    const source = this.source(sourceName);
    if (!/^\d{1,10}$/.test(agent))
      throw new DialRefused(
        'agent',
        'RELAY_ERR_BAD_REQUEST',
        `agent must be an extension (digits), got "${agent}"`,
      );
    return checkNumber(number, source, this.o.settings());
  }

  /** Places the call; `link`: the signature of the dial link it came from (its own limit). */
  async place(req: DialRequest, path: DialPath, link?: string): Promise<DialResult> {
    let dialable: Dialable;
    try {
      dialable = this.check(req.source, req.agent, req.number);
    } catch (err) {
      this.count(path, 'refused', refusal(err));
      throw err;
    }
    const source = this.source(req.source);
    const wait = this.take(`${source.name}|${req.agent}`, link);
    if (wait) {
      this.count(path, 'rate_limited');
      const sec = Math.ceil(wait / 1000);
      throw new RelayError(
        'RELAY_ERR_DIAL_RATE_LIMITED',
        `too many calls from ${link ? 'this link' : `extension ${req.agent}`} in the last minute; try again in ${sec} s`,
        { headers: { 'retry-after': String(sec) } },
      );
    }
    let placed;
    try {
      placed = await makecall(source.pbx!, req.agent, dialable.e164.slice(1));
    } catch (err) {
      this.count(path, 'failed');
      if (err instanceof MakecallError) throw new RelayError('RELAY_ERR_PBX_FAILED', err.message);
      throw err;
    }
    this.count(path, 'placed');
    const { id } = await this.o.pipeline.ingest({
      source: source.name,
      kind: 'pbx-response',
      receivedAt: new Date().toISOString(),
      method: 'GET',
      // The request made (its key left out) and who made it: the adapter reads originatedby.
      query: `${placed.query}&${new URLSearchParams({ originatedby: req.by }).toString()}`,
      contentType: 'application/json',
      headers: {},
      body: placed.body,
    });
    return { chid: placed.chid, id, number: dialable.e164 };
  }

  private source(name: string): DialSource & { pbx: MakecallSettings } {
    const source = this.o.sources().find((s) => s.name === name);
    if (!source) throw new DialRefused('source', 'RELAY_ERR_UNKNOWN_SOURCE', `no source "${name}"`);
    if (!source.pbx)
      throw new DialRefused(
        'source',
        'RELAY_ERR_BAD_REQUEST',
        `source ${source.name} has no pbx: (url and key) in relay.yaml, so it cannot place calls`,
      );
    return source as DialSource & { pbx: MakecallSettings };
  }

  /** 0 and a use counted against the agent (and the link), or the milliseconds to wait. */
  private take(agentKey: string, link: string | undefined): number {
    const s = this.o.settings();
    const rates = `${s.perLinkPerMinute}/${s.perAgentPerMinute}`;
    // New rates after a reload: counting starts afresh.
    if (this.limits?.rates !== rates)
      this.limits = {
        link: new KeyedBuckets(s.perLinkPerMinute, undefined, 10_000, this.o.now),
        agent: new KeyedBuckets(s.perAgentPerMinute, undefined, 10_000, this.o.now),
        rates,
      };
    const { link: links, agent: agents } = this.limits;
    const keys = link ? [link] : [];
    const wait = Math.max(links.waitAll(keys), agents.waitAll([agentKey]));
    if (wait) return wait;
    links.takeAll(keys);
    agents.take(agentKey);
    return 0;
  }
}

/** The metric's reason for a refusal before the PBX was asked. */
const refusal = (err: unknown): string => (err instanceof DialRefused ? err.reason : 'none');
