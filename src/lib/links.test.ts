// Signed links accept exactly the text this relay wrote: a token or signature spelled another way
// (padding, characters base64url does not have) is no link, so a limit counted per link cannot be
// walked around by respelling it.

import { describe, expect, it } from 'vitest';
import { dialSignature, dialSignatureOk, signLink, verifyLink } from './links.js';

const SECRET = 'a-link-secret-of-at-least-thirty-two-characters';

describe('signed links', () => {
  const token = signLink(SECRET, { k: 'r', s: '3cx', c: 'call-1', h: 'abc', e: 4102444800 });

  it('verifies the token as signed, and no other spelling of it', () => {
    expect(verifyLink(SECRET, token).ok).toBe(true);
    const [payload, sig] = token.split('.') as [string, string];
    for (const respelt of [
      `${token}=`,
      `${token}!`,
      `${token}=!=`,
      `${payload}=.${sig}`,
      `${payload}.${sig}==`,
      `${payload}.${sig.slice(0, -1)}${sig.at(-1) === 'A' ? 'B' : 'A'}`,
    ])
      expect(verifyLink(SECRET, respelt).ok, respelt).toBe(false);
  });

  it("verifies a dial link's signature as signed, and no other spelling of it", () => {
    const sig = dialSignature(SECRET, '3cx', '105', 4102444800);
    const q = { source: '3cx', agent: '105', until: 4102444800 };
    expect(dialSignatureOk(SECRET, { ...q, sig })).toBe(true);
    for (const respelt of [`${sig}=`, `${sig}!`, `${sig}.`, ` ${sig}`])
      expect(dialSignatureOk(SECRET, { ...q, sig: respelt }), respelt).toBe(false);
  });
});
