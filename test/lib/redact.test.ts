// The Redactor: configured secrets never survive into text or values, in any of the forms a CRM or
// a URL may carry them; short values and ordinary words are left alone.

import { describe, expect, it } from 'vitest';
import { REDACTED, Redactor } from '../../src/lib/redact.js';

describe('Redactor', () => {
  const r = new Redactor(['s3cr3t-token/+=', 'pat-eu1-abcdef', 'abc', 'pat-eu1-abcdef-longer']);

  it('replaces a secret raw, URL-encoded and base64-encoded', () => {
    expect(r.text('Bearer s3cr3t-token/+= was refused')).toBe(`Bearer ${REDACTED} was refused`);
    expect(r.text(`?api_token=${encodeURIComponent('s3cr3t-token/+=')}&x=1`)).toBe(
      `?api_token=${REDACTED}&x=1`,
    );
    const basic = Buffer.from('s3cr3t-token/+=').toString('base64');
    expect(r.text(`Authorization: Basic ${basic}`)).not.toContain(basic.slice(0, 12));
  });

  it('replaces a secret escaped inside a JSON string (a log line)', () => {
    const q = new Redactor(['tok"en\\value']);
    expect(q.text(JSON.stringify({ msg: 'sent tok"en\\value' }))).toBe(
      `{"msg":"sent ${REDACTED}"}`,
    );
  });

  it('replaces the longest secret whole when one contains another', () => {
    expect(r.text('pat-eu1-abcdef-longer')).toBe(REDACTED);
    expect(r.text('pat-eu1-abcdef!')).toBe(`${REDACTED}!`);
  });

  it('keeps only the current and the previous of the secrets that take turns under a key', () => {
    const q = new Redactor(['configured-secret']);
    const tokens = Array.from({ length: 50 }, (_, i) => `access-token-${1000 + i}`);
    for (const t of tokens) q.replace('crm access token', [t]);
    q.replace('crm refresh token', ['refresh-token-1']);
    // The same token again (read back from the store) is no new turn.
    q.replace('crm access token', [tokens[49]!]);
    expect(q.text(`${tokens[49]} ${tokens[48]} refresh-token-1 configured-secret`)).toBe(
      `${REDACTED} ${REDACTED} ${REDACTED} ${REDACTED}`,
    );
    expect(q.text(tokens[47]!)).toBe(tokens[47]);
    expect(q.text(tokens[0]!)).toBe(tokens[0]);
  });

  it('leaves values too short to be secrets, and text without secrets, unchanged', () => {
    expect(r.text('abc is fine')).toBe('abc is fine');
    expect(new Redactor([]).text('anything')).toBe('anything');
  });

  it('scrubs every string of a JSON value, keys included', () => {
    const v = r.value({
      a: ['x pat-eu1-abcdef y', 1, null, true],
      'pat-eu1-abcdef': { deep: 's3cr3t-token/+=' },
    });
    expect(JSON.stringify(v)).not.toMatch(/pat-eu1|s3cr3t/);
    expect(v.a).toEqual([`x ${REDACTED} y`, 1, null, true]);
  });
});
