// The target registry: one line per CRM. Each type lives in its own folder: spec.ts (config and
// defaults), target.ts (the implementation, on the shared kit/), mapping.ts where what is sent
// needs building, and its tests with a fake of the CRM (fake.ts, never built into dist/). Config
// reads the specs; an implementation is imported only when the relay delivers, so that reading
// relay.yaml never loads an HTTP client or a CRM's code.

import { z } from 'zod';
import { httpSpec } from './http/spec.js';
import { hubspotSpec } from './hubspot/spec.js';
import { pipedriveSpec } from './pipedrive/spec.js';
import { restSpec } from './rest/spec.js';
import type { TargetModule, TargetSpec } from './types.js';

interface Entry {
  spec: TargetSpec;
  load(): Promise<TargetModule>;
}

// Each module's create() takes its own config type, which the config schema has validated.
const entry = (spec: TargetSpec, load: () => Promise<unknown>): Entry => ({
  spec,
  load: load as () => Promise<TargetModule>,
});

const REGISTRY: Entry[] = [
  entry(hubspotSpec, () => import('./hubspot/target.js')),
  entry(pipedriveSpec, () => import('./pipedrive/target.js')),
  entry(httpSpec, () => import('./http/target.js')),
  entry(restSpec, () => import('./rest/target.js')),
];

export const TARGET_SPECS: TargetSpec[] = REGISTRY.map((e) => e.spec);

const Common = {
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, { message: 'lower-case letters, digits, - and _' }),
  deliverOn: z.enum(['ended', 'change']).optional().meta({
    description: '`ended`: once the call ended (then on later changes); `change`: every change.',
  }),
  settleSec: z
    .number()
    .min(0)
    .optional()
    .meta({ description: 'Wait after the call ended before the first delivery.' }),
  rateLimit: z
    .strictObject({ requests: z.number().int().positive(), perSeconds: z.number().positive() })
    .optional()
    .meta({
      description: "At most this many requests per window (default: the CRM's documented limit).",
    }),
  concurrency: z.number().int().min(1).max(64).optional(),
  timeoutSec: z.number().positive().default(15),
  dryRun: z
    .boolean()
    .default(false)
    .meta({
      description:
        'Build every request as for the CRM, but answer it in the relay instead of sending it (a ' +
        'sandbox, as an empty account would answer). The requests show among the attempts, with ' +
        'their bodies: `callrelay calls ID`, the console, GET /api/deliveries/ID/attempts.',
    }),
  retryForHours: z
    .number()
    .positive()
    .default(24)
    .meta({ description: 'Keep retrying this long before the dead-letter list.' }),
};

/** A target as written in relay.yaml (defaults not yet filled in). */
export type TargetConfigInput = {
  name: string;
  type: string;
  deliverOn?: 'ended' | 'change';
  settleSec?: number;
  rateLimit?: { requests: number; perSeconds: number };
  concurrency?: number;
  timeoutSec: number;
  retryForHours: number;
  dryRun: boolean;
} & Record<string, unknown>;

export const TargetConfigSchema = z.discriminatedUnion(
  'type',
  TARGET_SPECS.map((t) => t.configSchema.extend(Common)) as unknown as [
    z.ZodObject,
    ...z.ZodObject[],
  ],
) as unknown as z.ZodType<TargetConfigInput>;

export function targetSpec(type: string): TargetSpec | undefined {
  return TARGET_SPECS.find((t) => t.type === type);
}

/** The implementation of a target type (imported on first use). */
export function loadTarget(type: string): Promise<TargetModule> {
  const e = REGISTRY.find((x) => x.spec.type === type);
  if (!e) return Promise.reject(new Error(`no target type "${type}"`));
  return e.load();
}
