// Any HTTP endpoint: CloudEvents 1.0 or a JSONata template, Standard Webhooks signing.
// The target's configuration and defaults, which is all config/ reads (target.ts is the
// implementation).

import { z } from 'zod';
import type { CommonTargetConfig, TargetSpec } from '../types.js';

const configSchema = z.strictObject({
  type: z.literal('http'),
  url: z.url({ protocol: /^https?$/ }).meta({ description: 'Where to POST the events.' }),
  secret: z
    .string()
    .min(16, { message: 'a signing secret needs at least 16 characters' })
    .optional()
    .meta({
      description: 'Standard Webhooks secret ("whsec_<base64>" or any string); signs each request.',
    }),
  headers: z
    .record(z.string(), z.string())
    .optional()
    .meta({ description: 'Extra request headers (e.g. an API key).' }),
  template: z.string().optional().meta({
    description: 'JSONata over {call, event}: the body to send instead of the CloudEvent.',
  }),
});

export type HttpConfig = z.infer<typeof configSchema> & CommonTargetConfig;

export const httpSpec: TargetSpec = {
  type: 'http',
  configSchema,
  defaults: {
    deliverOn: 'change',
    settleSec: 0,
    rateLimit: { requests: 50, perSeconds: 1 },
    concurrency: 8,
  },
};
