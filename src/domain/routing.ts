// Routing as data: which targets a changed call goes to, and when. Pure functions over plain
// JSON, so the store can run them inside the fold transaction ("call changed -> due work"), even
// on its own thread. No zod or other heavy imports here.

import type { CallRecord } from './model.js';

export interface RouteFilter {
  direction?: ('inbound' | 'outbound')[];
  outcome?: ('answered' | 'missed' | 'busy' | 'failed')[];
  minDurationSec?: number;
  agents?: string[];
}

export interface Route {
  /** Source names; absent means every source. */
  sources?: string[];
  targets: string[];
  filter?: RouteFilter;
}

export interface TargetTiming {
  /** `ended`: only calls that ended (one activity per call); `change`: every change. */
  deliverOn: 'ended' | 'change';
  /** Wait this long after the call ended before the first delivery (recordings, AI arrive late). */
  settleSec: number;
}

export interface Routing {
  targets: Record<string, TargetTiming>;
  routes: Route[];
}

export const NO_ROUTING: Routing = { targets: {}, routes: [] };

/** Whether a call passes a route's filter. A filter on outcome or duration needs an ended call. */
export function matches(call: CallRecord, f: RouteFilter | undefined): boolean {
  if (!f) return true;
  if (f.direction && (!call.direction || !f.direction.includes(call.direction))) return false;
  if (f.outcome && (!call.outcome || !f.outcome.includes(call.outcome))) return false;
  if (f.minDurationSec !== undefined && (call.durationSec ?? 0) < f.minDurationSec) return false;
  if (f.agents && (!call.agent || !f.agents.includes(call.agent))) return false;
  return true;
}

/** The targets a call (in its current state) should reach, each with the earliest time to send. */
export function dueTargets(
  call: CallRecord,
  routing: Routing,
  now: Date,
): { target: string; dueAt: string }[] {
  // Only a recording or an analysis so far: no target hears of it before a real call event
  // makes it a call (a CRM would log it as a missed call).
  if (call.status === 'incomplete') return [];
  const out = new Map<string, string>();
  for (const r of routing.routes) {
    if (r.sources && !r.sources.includes(call.source)) continue;
    if (!matches(call, r.filter)) continue;
    for (const t of r.targets) {
      const timing = routing.targets[t];
      if (!timing || out.has(t)) continue;
      if (timing.deliverOn === 'ended' && call.status !== 'ended') continue;
      const ended = call.endedAt ? Date.parse(call.endedAt) : now.getTime();
      // A settle window counts from the end; never schedule into the past beyond now.
      const due = Math.max(now.getTime(), Math.min(ended, now.getTime()) + timing.settleSec * 1000);
      out.set(t, new Date(due).toISOString());
    }
  }
  return [...out].map(([target, dueAt]) => ({ target, dueAt }));
}

/**
 * When a call in its current state is due at `target` (undefined: the routes do not send it there
 * now). The rule live deliveries follow, asked for one target: backfill uses it.
 */
export function dueAt(
  call: CallRecord,
  routing: Routing,
  target: string,
  now: Date,
): string | undefined {
  return dueTargets(call, routing, now).find((t) => t.target === target)?.dueAt;
}
