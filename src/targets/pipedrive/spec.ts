// Pipedrive: one call log per call, persons by phone, recording upload, notes.
// The target's configuration and defaults, which is all config/ reads (target.ts is the
// implementation).

import { z } from 'zod';
import { AgentsSchema } from '../kit/agents.js';
import { checkShape, type ShapePlaces } from '../kit/shape.js';
import type { CommonTargetConfig, TargetSpec } from '../types.js';

export const OUTCOMES = [
  'connected',
  'no_answer',
  'left_message',
  'left_voicemail',
  'wrong_number',
  'busy',
] as const;

const configSchema = z.strictObject({
  type: z.literal('pipedrive'),
  companyDomain: z
    .string()
    .regex(/^[a-z0-9-]+$/i, { message: 'expected the part before .pipedrive.com' })
    .optional()
    .meta({
      description:
        'Your Pipedrive company domain (<domain>.pipedrive.com; `check --online` prints it): ' +
        'the console then links each call to the person whose history shows it.',
    }),
  token: z.string().min(10).meta({
    description: 'Pipedrive API token (Settings > Personal preferences > API). Use ${ENV_VAR}.',
  }),
  baseUrl: z
    .url()
    .default('https://api.pipedrive.com')
    .meta({ description: 'Or https://<company>.pipedrive.com; overridable for tests.' }),
  agents: AgentsSchema.meta({
    description: 'Extension -> Pipedrive user: email (looked up) or numeric user id.',
  }),
  outcomes: z
    .strictObject({
      answered: z.enum(OUTCOMES).optional(),
      missed: z.enum(OUTCOMES).optional(),
      busy: z.enum(OUTCOMES).optional(),
      failed: z.enum(OUTCOMES).optional(),
    })
    .default({})
    .meta({
      description:
        'Call outcome -> Pipedrive outcome (defaults: connected, no_answer, busy, no_answer).',
    }),
  missedCallActivity: z.boolean().default(false).meta({
    description: 'Also create a follow-up call activity for a missed (or busy, failed) call.',
  }),
  uploadRecordings: z.boolean().default(true).meta({
    description: "Upload the recording (from hosts the source's recordings.allowHosts lists).",
  }),
  searchRateLimit: z
    .strictObject({ requests: z.number().int().positive(), perSeconds: z.number().positive() })
    .default({ requests: 10, perSeconds: 2 }),
  cacheSec: z.number().min(0).default(600),
  subject: z.string().optional().meta({
    description:
      "JSONata over the call context (docs/targets.md) for the call log's subject; `title` there is the built-in one.",
  }),
  note: z.string().optional().meta({
    description:
      "JSONata over the call context for the call log's note (HTML); `body` there is the built-in note.",
  }),
  fields: z.string().optional().meta({
    description:
      'JSONata giving an object of extra or overriding call-log fields (null drops one), e.g. { "deal_id": 42 }.',
  }),
  deal: z.enum(['open']).optional().meta({
    description: "open: put the call log on the person's most recently updated open deal.",
  }),
});

/** The fields that hold JSONata. */
export const PIPEDRIVE_EXPRESSIONS = ['subject', 'note', 'fields'] as const;

export type PipedriveConfig = z.infer<typeof configSchema> &
  CommonTargetConfig & {
    /** Where each expression is written (prepare, below). */
    shapePlaces?: ShapePlaces;
  };

export const pipedriveSpec: TargetSpec = {
  type: 'pipedrive',
  configSchema,
  // Lite plan, API token: 20 requests per 2-second window; raise rateLimit for bigger plans.
  defaults: {
    deliverOn: 'ended',
    settleSec: 60,
    rateLimit: { requests: 20, perSeconds: 2 },
    concurrency: 2,
  },
  prepare(config, at) {
    const { issues, places } = checkShape(config, PIPEDRIVE_EXPRESSIONS, at);
    return { issues, config: { shapePlaces: places } };
  },
  // Persons are searched and made with the token's own rights (docs/targets.md).
  contacts: () => ({ find: true, create: true }),
};
