// JSON Schemas generated from the zod schemas, written to config/ for editors
// (yaml-language-server) and integrators. `callrelay schemas --write` regenerates them; a test
// fails when they are stale.

import { z } from 'zod';
import { CallEventSchema, CallRecordSchema, MODEL_VERSION } from '../domain/model.js';
import { AdapterFileSchema } from '../ingest/adapter.js';
import { RestRecipeSchema } from '../targets/rest/spec.js';
import { RelayConfigSchema } from './schema.js';

const ID_BASE = 'https://callrelay.dev/schemas';

export function jsonSchemas(): Record<string, unknown> {
  const make = (schema: z.ZodType, id: string, io: 'input' | 'output'): unknown => ({
    ...z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }),
    $id: `${ID_BASE}/${id}`,
  });
  return {
    'relay.schema.json': make(RelayConfigSchema, 'relay.schema.json', 'input'),
    'adapter.schema.json': make(AdapterFileSchema, 'adapter.schema.json', 'input'),
    'recipe.schema.json': make(RestRecipeSchema, 'recipe.schema.json', 'input'),
    'call-event.schema.json': make(
      CallEventSchema,
      `v${MODEL_VERSION}/call-event.schema.json`,
      'output',
    ),
    'call-record.schema.json': make(
      CallRecordSchema,
      `v${MODEL_VERSION}/call-record.schema.json`,
      'output',
    ),
  };
}

export function renderSchema(s: unknown): string {
  return `${JSON.stringify(s, null, 2)}\n`;
}
