// The target registry: one line per CRM. Each type lives in its own folder (config schema,
// client, mapping, tests); the common fields every target has are added here.

import { z } from 'zod';
import { httpTarget } from './http/index.js';
import { hubspotTarget } from './hubspot/index.js';
import { pipedriveTarget } from './pipedrive/index.js';
import type { TargetType } from './types.js';

export const TARGET_TYPES: TargetType<never>[] = [
  hubspotTarget,
  pipedriveTarget,
  httpTarget,
] as TargetType<never>[];

const Common = {
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, { message: 'lower-case letters, digits, - and _' }),
  deliverOn: z
    .enum(['ended', 'change'])
    .optional()
    .meta({
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
} & Record<string, unknown>;

export const TargetConfigSchema = z.discriminatedUnion(
  'type',
  TARGET_TYPES.map((t) => t.configSchema.extend(Common)) as unknown as [
    z.ZodObject,
    ...z.ZodObject[],
  ],
) as unknown as z.ZodType<TargetConfigInput>;

export function targetType(type: string): TargetType<never> | undefined {
  return TARGET_TYPES.find((t) => t.type === type);
}
