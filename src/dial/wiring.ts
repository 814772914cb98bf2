// Click-to-call as the relay wires it: one dialer behind every path (the dial link's pages on
// every port, POST /api/dial, the console), its sources, number rules and limits read from
// relay.yaml at each call, so that a reload applies at once.

import type { Hono } from 'hono';
import type { DialRequest, DialResult } from '../domain/dial.js';
import { RelayError } from '../domain/errors.js';
import type { Redactor } from '../lib/redact.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { Logger } from '../telemetry/log.js';
import type { RelayMetrics } from '../telemetry/metrics.js';
import { mountDial } from './http.js';
import { Dialer, type DialSettings, type DialSource } from './service.js';

export interface DiallingOptions {
  pipeline: Pick<Pipeline, 'ingest'>;
  /** relay.yaml now (a reload changes it): its sources, dial settings and links. */
  config: () => { sources: readonly DialSource[]; dial: DialSettings; links?: unknown };
  /** The link secret now (server.urlSecret, or admin.token's). */
  secret: () => string;
  metrics: Pick<RelayMetrics, 'dials'>;
  redact: Redactor;
  log: Logger;
}

/** Who dials from the agent pages: their extension and, if relay.yaml names one, their source. */
export interface AgentDialler {
  extension: string;
  source?: string | undefined;
}

export class Dialling {
  readonly dialer: Dialer;

  constructor(private readonly o: DiallingOptions) {
    this.dialer = new Dialer({
      pipeline: o.pipeline,
      sources: () => o.config().sources,
      settings: () => o.config().dial,
      metrics: o.metrics,
    });
  }

  /** POST /api/dial. */
  api = (req: DialRequest): Promise<DialResult> => this.dialer.place(req, 'api');

  /** The console's call button. */
  console = (req: DialRequest): Promise<DialResult> => this.dialer.place(req, 'console');

  /**
   * The source whose PBX places an agent's calls from their page: the one their directory entry
   * names (relay.yaml checks it has pbx:), else the only source with pbx:.
   */
  agentSource = (agent: AgentDialler): string => {
    if (agent.source) return agent.source;
    const dialling = this.o.config().sources.filter((s) => s.pbx);
    if (dialling.length === 1) return dialling[0]!.name;
    throw new RelayError(
      'RELAY_ERR_DIAL_NOT_CONFIGURED',
      dialling.length
        ? `several sources can place calls (${dialling.map((s) => s.name).join(', ')}) and relay.yaml does not say which one dials for extension ${agent.extension} (agents[].source)`
        : undefined,
    );
  };

  /** An agent's number as it would be dialled from their own extension; counts nothing. */
  agentCheck = (
    agent: AgentDialler,
    number: string,
  ): { source: string; number: string; formatted: string } => {
    const source = this.agentSource(agent);
    const d = this.dialer.check(source, agent.extension, number);
    return { source, number: d.e164, formatted: d.formatted };
  };

  /** An agent's click-to-call: from their own extension, and the call says so. */
  agent = (agent: AgentDialler, number: string): Promise<DialResult> => {
    let source: string;
    try {
      source = this.agentSource(agent);
    } catch (err) {
      this.dialer.count('agent', 'refused', 'source');
      throw err;
    }
    return this.dialer.place(
      { source, agent: agent.extension, number, by: `agent:${agent.extension}` },
      'agent',
    );
  };

  /** Whether the console offers a call button for the source's calls (it has pbx:). */
  canDial = (source: string): boolean =>
    !!this.o.config().sources.find((s) => s.name === source)?.pbx;

  /** The dial link's pages, when links are on: answered on every port, as recording links are. */
  mount(app: Hono): void {
    if (this.o.config().links)
      mountDial(app, {
        secret: this.o.secret,
        dialer: this.dialer,
        redact: this.o.redact,
        log: this.o.log,
      });
  }
}
