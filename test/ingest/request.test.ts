// What an adapter sees of a request (src/ingest/request.ts): keys lower-cased, the first of two
// spellings kept, and every field name a field, whatever Object.prototype calls its own.

import { describe, expect, it } from 'vitest';
import { parseRequest } from '../../src/ingest/request.js';

const json = (body: string, query = '') =>
  parseRequest({ query, contentType: 'application/json', body: Buffer.from(body) });

describe('request fields', () => {
  it('lower-cases keys at every depth, the first spelling of a key winning', () => {
    const { fields } = json(
      '{"Event":"Ringing","event":"ignored","Call":{"Legs":[{"Ext":"101"}]}}',
    );
    expect(fields).toEqual({ event: 'Ringing', call: { legs: [{ ext: '101' }] } });
  });

  it('keeps fields named like Object.prototype members, as fields', () => {
    // Lower-cased, only "constructor" and "__proto__" are such names.
    const { fields } = json('{"Constructor":"a","__proto__":{"polluted":true}}', 'x=1');
    expect(Object.keys(fields).sort()).toEqual(['__proto__', 'constructor', 'x']);
    expect(fields.constructor).toBe('a');
    expect(Object.getPrototypeOf(fields)).toBe(Object.prototype);
    expect((fields as { polluted?: boolean }).polluted).toBeUndefined();
  });

  it('reads form fields with the same rule', () => {
    const r = parseRequest({
      query: '',
      contentType: 'application/x-www-form-urlencoded',
      body: Buffer.from('Constructor=x&constructor=y&Event=hangup'),
    });
    expect(r.fields).toEqual({ constructor: 'x', event: 'hangup' });
  });
});
