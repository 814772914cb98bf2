// How a batch answer is matched to its inputs (batch.ts): by objectWriteTraceId, or failing that
// by what the result itself says, and what an input the answer does not name comes to.

import { describe, expect, it } from 'vitest';
import { createdKey, outcomes, updatedKey, type BatchAnswer } from './batch.js';

const WHAT = 'creating 3 call engagements in one batch';
const tokens = ['callrelay:3cx:a', 'callrelay:3cx:b', 'callrelay:3cx:c'];

const summary = (o: ReturnType<typeof outcomes>) =>
  o.map((x) =>
    x.ok
      ? x.value
      : `${x.error.retryable ? 'retry' : 'dead'}${x.error.ambiguous ? ' ambiguous' : ''}: ${x.error.message}`,
  );

describe('matching a batch answer to its inputs', () => {
  it('finds created calls by hs_call_external_id when the results do not echo the trace id', () => {
    const body: BatchAnswer = {
      results: [
        { id: '903', properties: { hs_call_external_id: tokens[2] } },
        { id: '901', properties: { hs_call_external_id: tokens[0] } },
        { id: '902', properties: { hs_call_external_id: tokens[1] } },
      ],
    };
    expect(summary(outcomes(tokens, body, createdKey, WHAT))).toEqual(['901', '902', '903']);
  });

  it('finds updated calls by their id when the results do not echo the trace id', () => {
    const body: BatchAnswer = { results: [{ id: '12' }, { id: '11' }] };
    expect(summary(outcomes(['11', '12'], body, updatedKey, WHAT))).toEqual(['11', '12']);
  });

  it('gives an error that names no input to the one input not written', () => {
    const body: BatchAnswer = {
      results: [
        { id: '901', objectWriteTraceId: tokens[0] },
        { id: '903', objectWriteTraceId: tokens[2] },
      ],
      errors: [{ category: 'VALIDATION_ERROR', message: 'Property values were not valid' }],
    };
    expect(summary(outcomes(tokens, body, createdKey, WHAT))).toEqual([
      '901',
      `dead: ${WHAT}: VALIDATION_ERROR: Property values were not valid`,
      '903',
    ]);
  });

  it('retries, without looking first, inputs refused by errors that differ and name none', () => {
    const body: BatchAnswer = {
      results: [{ id: '901', objectWriteTraceId: tokens[0] }],
      errors: [
        { category: 'VALIDATION_ERROR', message: 'bad duration' },
        { category: 'RATE_LIMITS', message: 'secondly limit' },
      ],
    };
    const [, b, c] = summary(outcomes(tokens, body, createdKey, WHAT));
    expect(b).toBe(
      `retry: ${WHAT}: HubSpot refused 2 inputs without naming them (VALIDATION_ERROR, RATE_LIMITS)`,
    );
    expect(c).toBe(b);
  });

  it('leaves inputs perhaps written when the unnamed error is of a kind that may have written', () => {
    const body: BatchAnswer = {
      results: [{ id: '901', objectWriteTraceId: tokens[0] }],
      errors: [
        { category: 'INTERNAL_ERROR', message: 'try again' },
        { category: 'INTERNAL_ERROR', message: 'try again' },
      ],
    };
    const [, b, c] = summary(outcomes(tokens, body, createdKey, WHAT));
    expect(b).toBe(
      `retry ambiguous: ${WHAT}: HubSpot's answer did not say which input failed (INTERNAL_ERROR)`,
    );
    expect(c).toBe(b);
  });

  it('counts an input as perhaps written when a result could not be matched to its input', () => {
    // A result it cannot place may be that input's: only a search can tell (create-once).
    const body: BatchAnswer = {
      results: [{ id: '901', objectWriteTraceId: tokens[0] }, { id: '999' }],
      errors: [{ category: 'VALIDATION_ERROR', message: 'Property values were not valid' }],
    };
    const [, b, c] = summary(outcomes(tokens, body, createdKey, WHAT));
    expect(b).toBe(`retry ambiguous: ${WHAT}: HubSpot's answer did not mention ${tokens[1]}`);
    expect(c).toBe(`retry ambiguous: ${WHAT}: HubSpot's answer did not mention ${tokens[2]}`);
  });

  it('names the input of an error that names it, whatever else the answer holds', () => {
    const body: BatchAnswer = {
      results: [{ id: '902', objectWriteTraceId: tokens[1] }],
      errors: [
        {
          category: 'OBJECT_NOT_FOUND',
          message: 'resource not found',
          context: { objectWriteTraceId: [tokens[0]!] },
        },
      ],
    };
    expect(summary(outcomes(tokens, body, createdKey, WHAT))).toEqual([
      `dead: ${WHAT}: OBJECT_NOT_FOUND: resource not found`,
      '902',
      `retry ambiguous: ${WHAT}: HubSpot's answer did not mention ${tokens[2]}`,
    ]);
  });
});
