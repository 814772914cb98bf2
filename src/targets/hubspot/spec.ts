// HubSpot: call engagements, contacts by phone, owners, missed-call tasks.
// The target's configuration and defaults, which is all config/ reads (target.ts is the
// implementation).

import { z } from 'zod';
import { AgentsSchema } from '../kit/agents.js';
import { checkShape, type ShapePlaces } from '../kit/shape.js';
import type { CommonTargetConfig, TargetSpec } from '../types.js';

const Guid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, {
  message: 'expected a call outcome GUID',
});

const configSchema = z.strictObject({
  type: z.literal('hubspot'),
  token: z
    .string()
    .min(10)
    .meta({ description: 'Private app access token (scopes: see README). Use ${ENV_VAR}.' }),
  baseUrl: z
    .url()
    .default('https://api.hubapi.com')
    .meta({ description: 'Override for proxies, sandboxes and tests.' }),
  portalId: z.coerce
    .string()
    .regex(/^\d+$/, { message: 'expected the numeric HubSpot account id' })
    .optional()
    .meta({
      description:
        'Your HubSpot account id (top right of HubSpot): the console then links each call to the ' +
        'contact whose timeline shows it.',
    }),
  appUrl: z.url().default('https://app.hubspot.com').meta({
    description: 'HubSpot web app (EU data centre: https://app-eu1.hubspot.com), for links.',
  }),
  agents: AgentsSchema.meta({
    description:
      "Extension -> HubSpot owner: a user's email (looked up via the owners API) or a numeric owner id.",
  }),
  dispositions: z
    .strictObject({
      answered: Guid.optional(),
      missed: Guid.optional(),
      busy: Guid.optional(),
      failed: Guid.optional(),
    })
    .default({})
    .meta({
      description:
        'Outcome -> hs_call_disposition GUID (defaults: Connected, No answer, Busy, No answer).',
    }),
  createContacts: z
    .boolean()
    .default(false)
    .meta({ description: 'Create a contact for callers no contact has the number of.' }),
  missedCallTask: z.boolean().default(false).meta({
    description: 'Also create a follow-up task for the agent of a missed (or busy, failed) call.',
  }),
  searchRateLimit: z
    .strictObject({ requests: z.number().int().positive(), perSeconds: z.number().positive() })
    .default({ requests: 5, perSeconds: 1 })
    .meta({ description: 'CRM search limit (HubSpot: 5 per second).' }),
  cacheSec: z.number().min(0).default(600).meta({
    description: 'How long contact and owner lookups are remembered (misses: a fifth of it).',
  }),
  searchLagSec: z.number().min(0).default(30).meta({
    description:
      'How long HubSpot search may lag behind a create (used after an ambiguous create).',
  }),
  title: z.string().optional().meta({
    description:
      'JSONata over the call context (docs/targets.md) for hs_call_title; `title` there is the built-in one.',
  }),
  body: z.string().optional().meta({
    description:
      'JSONata over the call context for hs_call_body (HTML); `body` there is the built-in note.',
  }),
  properties: z.string().optional().meta({
    description:
      'JSONata giving an object of extra or overriding call properties (values become strings; null drops one), e.g. { "call_queue": call.legs[0].queue }.',
  }),
  associate: z
    .array(z.enum(['company', 'deal']))
    .default([])
    .meta({
      description:
        "Also associate the call with the contact's primary company and/or its most recently updated open deal.",
    }),
});

/** The fields that hold JSONata. */
export const HUBSPOT_EXPRESSIONS = ['title', 'body', 'properties'] as const;

export type HubspotConfig = z.infer<typeof configSchema> &
  CommonTargetConfig & {
    /** Where each expression is written (prepare, below). */
    shapePlaces?: ShapePlaces;
  };

export const hubspotSpec: TargetSpec = {
  type: 'hubspot',
  configSchema,
  defaults: {
    deliverOn: 'ended',
    settleSec: 0,
    rateLimit: { requests: 100, perSeconds: 10 },
    // Deliveries in flight at once. Under a backlog the creates and updates among them that wait
    // for the window share one batch request (batch.ts), so this is also the largest batch.
    concurrency: 100,
  },
  prepare(config, at) {
    const { issues, places } = checkShape(config, HUBSPOT_EXPRESSIONS, at);
    return { issues, config: { shapePlaces: places } };
  },
  // Contacts are searched and made with the token's contacts scopes (docs/targets.md).
  contacts: () => ({ find: true, create: true }),
};
