// /metrics: Prometheus text from prom-client; after a 3CX flow the ingest and delivery counters
// moved by exactly what happened, the store gauges read the store, labels never carry call ids
// or numbers, and metrics.token guards it when set.

import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { readFlow } from '../../src/flows.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import {
  ADAPTERS,
  sendFlowRequest,
  settleDeliveries,
  sourceToken,
  tempDir,
  writeRelayYaml,
} from '../support.js';

const HS_TOKEN = 'pat-eu1-metrics-token-0002';
const METRICS_TOKEN = 'metrics-scrape-token-99';
const flow = readFlow(join(ADAPTERS, 'cases/3cx/3cx-get-incoming-answered.json'));

/** The value of one sample (`name{labels}`), 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([^{\s]+)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return 0;
}

describe('/metrics', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function open(metrics = ''): Promise<{ hs: FakeHubspot; relay: Relay }> {
    const hs = await new FakeHubspot(HS_TOKEN).start();
    const config = writeRelayYaml(tempDir(), {
      more: `targets:\n  - name: hubspot\n    type: hubspot\n    token: ${HS_TOKEN}\n    baseUrl: ${hs.url}\n    searchLagSec: 0.3\n${metrics}`,
    });
    const relay = await startRelay(loadConfig(config, {}), undefined, {
      delivery: { pollMs: 20, backoff: { baseMs: 40, maxMs: 80 } },
    });
    cleanup.push(
      () => hs.close(),
      () => relay.close(),
    );
    return { hs, relay };
  }

  const scrape = async (relay: Relay, token?: string): Promise<string> => {
    const res = await fetch(`http://127.0.0.1:${relay.port}/metrics`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    return res.text();
  };

  it('counts a flow: requests by result, ack and commit times, CRM requests, one delivery', async () => {
    const { hs, relay } = await open();
    const before = await scrape(relay);
    const mapped = (t: string): number =>
      sample(t, 'callrelay_ingest_requests_total', { source: '3cx', result: 'mapped' });
    const sent = flow.requests.filter((r) => r.direction !== 'to-pbx');
    for (const r of flow.requests) await sendFlowRequest(relay.port, '3cx', r);
    // One refused request: a wrong token is counted as unauthorized, not as traffic.
    await fetch(`http://127.0.0.1:${relay.port}/hooks/3cx/not-the-token`, { method: 'POST' });
    // An unknown source is not a label (anyone can put any name in a URL).
    await fetch(`http://127.0.0.1:${relay.port}/hooks/nosuch-source/x`, { method: 'POST' });
    await settleDeliveries(relay);
    const after = await scrape(relay);

    expect(mapped(after) - mapped(before)).toBe(sent.length);
    expect(
      sample(after, 'callrelay_ingest_requests_total', { source: '3cx', result: 'unauthorized' }),
    ).toBe(1);
    expect(after).not.toContain('nosuch-source');
    expect(sample(after, 'callrelay_ingest_ack_seconds_count', { source: '3cx' })).toBe(
      sent.length + 1,
    );
    expect(sample(after, 'callrelay_store_commit_seconds_count')).toBe(sent.length);
    // One delivered run per revision the target was sent (the call ended, then its recording).
    const runs = (await relay.store.listAttempts({ limit: 1000 })).filter(
      (a) => a.result === 'delivered',
    ).length;
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(
      sample(after, 'callrelay_delivery_attempts_total', {
        target: 'hubspot',
        outcome: 'delivered',
        status_class: '2xx',
      }),
    ).toBe(runs);
    // Every request the fake HubSpot answered is counted once, by status class.
    const crm = hs.log.length;
    const counted = ['2xx', '4xx', '5xx'].reduce(
      (n, c) =>
        n + sample(after, 'callrelay_crm_requests_total', { target: 'hubspot', status_class: c }),
      0,
    );
    expect(counted).toBe(crm);
    expect(sample(after, 'callrelay_delivery_latency_seconds_count', { target: 'hubspot' })).toBe(
      runs,
    );
    expect(sample(after, 'callrelay_deliveries', { target: 'hubspot', state: 'due' })).toBe(0);
    expect(sample(after, 'callrelay_fold_lag_seconds')).toBe(0);
    expect(sample(after, 'callrelay_store_up')).toBe(1);
    // The SQLite store's own thread: a heap of its own, which nodejs_* (the HTTP thread) is not.
    const used = sample(after, 'callrelay_store_thread_heap_bytes', { kind: 'used' });
    expect(used).toBeGreaterThan(0);
    expect(used).toBeLessThanOrEqual(
      sample(after, 'callrelay_store_thread_heap_bytes', { kind: 'total' }),
    );
    expect(used).not.toBe(sample(after, 'nodejs_heap_size_used_bytes'));
    expect(sample(after, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    // No call ids, numbers or tokens in any label.
    const callId = String(flow.expect!.calls[0]!.callId);
    for (const bad of [callId, '420774852629', sourceToken('3cx'), HS_TOKEN])
      expect(after).not.toContain(bad);
    for (const line of after.split('\n').filter((l) => l && !l.startsWith('#')))
      expect(line).toMatch(/^(callrelay_|process_|nodejs_)[a-z0-9_]+(\{.*\})? \S+$/);
  });

  it('retries and dead letters show per target, with the oldest due age', async () => {
    const { hs, relay } = await open('    retryForHours: 0.0003\n');
    for (let i = 0; i < 500; i++)
      hs.faults.push({ match: 'POST /crm/v3/objects/calls', fault: { status: 500 } });
    for (const r of flow.requests) await sendFlowRequest(relay.port, '3cx', r);
    await relay.pipeline.drain();
    let text = '';
    for (let i = 0; i < 300; i++) {
      text = await scrape(relay);
      if (sample(text, 'callrelay_deliveries', { target: 'hubspot', state: 'dead' }) === 1) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(sample(text, 'callrelay_deliveries', { target: 'hubspot', state: 'dead' })).toBe(1);
    expect(
      sample(text, 'callrelay_delivery_attempts_total', {
        target: 'hubspot',
        outcome: 'retry',
        status_class: '5xx',
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      sample(text, 'callrelay_delivery_attempts_total', {
        target: 'hubspot',
        outcome: 'dead',
        status_class: '5xx',
      }),
    ).toBe(1);
  });

  it('asks for metrics.token when one is set, and is off when disabled', async () => {
    const { relay } = await open(`metrics:\n  token: ${METRICS_TOKEN}\n`);
    const denied = await fetch(`http://127.0.0.1:${relay.port}/metrics`);
    expect(denied.status).toBe(401);
    expect(((await denied.json()) as { error: { code: string } }).error.code).toBe(
      'RELAY_ERR_UNAUTHORIZED',
    );
    expect(await scrape(relay, METRICS_TOKEN)).toContain('callrelay_build_info');

    const off = await open('metrics:\n  enabled: false\n');
    const res = await fetch(`http://127.0.0.1:${off.relay.port}/metrics`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
      'RELAY_ERR_METRICS_DISABLED',
    );
  });
});

describe('the Grafana dashboard', () => {
  it('queries only metrics the relay exports', async () => {
    const { RelayMetrics } = await import('../../src/telemetry/metrics.js');
    const { readFileSync } = await import('node:fs');
    const { ROOT } = await import('../support.js');
    const names = new Set(
      (await new RelayMetrics('test').registry.getMetricsAsJSON()).map((m) => m.name),
    );
    const dashboard = readFileSync(join(ROOT, 'docs/grafana/callrelay-dashboard.json'), 'utf8');
    const used = [...dashboard.matchAll(/\b((?:callrelay|process)_[a-z_]+)/g)].map((m) => m[1]!);
    expect(used.length).toBeGreaterThan(10);
    for (const n of new Set(used))
      expect(names.has(n.replace(/_(bucket|count|sum)$/, '')), n).toBe(true);
  });
});
