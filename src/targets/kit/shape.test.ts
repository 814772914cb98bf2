// A target's expressions at delivery: values as the CRMs take them, and every failure a dead
// letter that names the expression's place.

import { describe, expect, it } from 'vitest';
import type { CallContext } from './context.js';
import { DeliveryError } from './errors.js';
import { asStrings, Shape } from './shape.js';

const ctx = {
  call: { agent: '102', rang: ['800', '102'], campaign: null },
  title: 'Inbound call',
  talkSec: 65,
} as unknown as CallContext;

const refusal = async (p: Promise<unknown>): Promise<DeliveryError> => {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DeliveryError);
  expect((err as DeliveryError).retryable).toBe(false);
  return err as DeliveryError;
};

describe('Shape', () => {
  const places = { title: 'relay.yaml:12:14', properties: 'relay.yaml:14:7' };

  it('evaluates only what is configured; nothing keeps the built-in text', async () => {
    const s = new Shape({ title: '"Anruf " & $mmss(talkSec)', body: undefined }, places);
    expect(s.has('title')).toBe(true);
    expect(s.has('body')).toBe(false);
    expect(await s.text('title', ctx)).toBe('Anruf 01:05');
    expect(await s.text('body', ctx)).toBeUndefined();
    expect(await new Shape({ title: 'call.campaign' }).text('title', ctx)).toBeUndefined();
  });

  it('says where an expression is when its value cannot be sent or it fails', async () => {
    const s = new Shape(
      { title: 'call.rang', properties: '"not an object"', body: '$number("x")' },
      { ...places, body: 'relay.yaml:13:7' },
    );
    expect((await refusal(s.text('title', ctx))).message).toBe(
      'relay.yaml:12:14 title: expected a text, got an object or list',
    );
    expect((await refusal(s.fields('properties', ctx))).message).toMatch(
      /^relay\.yaml:14:7 properties: expected an object of fields/,
    );
    expect((await refusal(s.text('body', ctx))).message).toMatch(/^relay\.yaml:13:7 body: /);
  });

  it('makes HubSpot property values strings: lists as multi-select, null kept to drop one', () => {
    const refuse = (why: string) => new Error(why);
    expect(
      asStrings({ a: 3, b: true, c: ['x', 'y'], d: null, e: undefined, f: 'z' }, refuse),
    ).toEqual({ a: '3', b: 'true', c: 'x;y', d: null, f: 'z' });
    expect(() => asStrings({ o: { x: 1 } }, refuse)).toThrow('"o" is an object');
  });
});
