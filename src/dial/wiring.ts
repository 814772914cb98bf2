// Click-to-call as the relay wires it: one dialer behind every path (the dial link's pages on
// every port, POST /api/dial, the console), its sources, number rules and limits read from
// relay.yaml at each call, so that a reload applies at once.

import type { Hono } from 'hono';
import type { DialRequest, DialResult } from '../domain/dial.js';
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
