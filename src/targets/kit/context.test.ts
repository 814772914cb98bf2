import { describe, expect, it } from 'vitest';
import { compileExpr } from '../../lib/expr.js';
import { CONTEXT_HELPERS, htmlToText } from './context.js';

const run = (src: string, input: Record<string, unknown> = {}): unknown =>
  compileExpr(src, CONTEXT_HELPERS).evaluate(input, {});

describe('target expression helpers', () => {
  it('formats talk time as mm:ss, minutes past an hour included', async () => {
    expect(await run('$mmss(185)')).toBe('03:05');
    expect(await run('$mmss(4503)')).toBe('75:03');
    expect(await run('$mmss(t)', { t: null })).toBeUndefined();
  });

  it('gives a time with its offset in a zone, and its day', async () => {
    expect(await run("$localTime('2026-03-11T19:00:00.250Z', 'Europe/Berlin')")).toBe(
      '2026-03-11T20:00:00+01:00',
    );
    expect(await run("$localTime('2026-03-11T19:00:00Z')")).toBe('2026-03-11T19:00:00+00:00');
    expect(await run("$day('2026-03-11T23:30:00Z', 'Europe/Berlin')")).toBe('2026-03-12');
  });

  it('takes numbers apart', async () => {
    expect(await run("$national('+4930123456')")).toBe('30123456');
    expect(await run("$digits('+49 (30) 123-456')")).toBe('4930123456');
    expect(await run("$cut('abcdef', 3)")).toBe('abc');
  });

  it('makes name-based UUIDs (version 5): the RFC vector, and a fixed default namespace', async () => {
    const dns = '6ba7b810-9dad-11d1-80b4-00c04fd430c8';
    expect(await run("$uuid('www.example.com', ns)", { ns: dns })).toBe(
      '2ed6657d-e927-568b-95e1-2665a8aea6a2',
    );
    // Pinned: a changed default would give every call a new id in the CRM.
    expect(await run("$uuid('callrelay:3cx:42')")).toBe('4ca3925d-c6ea-561d-a7b4-b00775685438');
    const other = await run("$uuid('callrelay:3cx:43')");
    expect(other).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(other).not.toBe('4ca3925d-c6ea-561d-a7b4-b00775685438');
    expect(await run('$uuid(k)', { k: null })).toBeUndefined();
    await expect(async () => run("$uuid('x', 'not-a-uuid')")).rejects.toThrow(/not a UUID/);
  });

  it('turns the built-in note into plain text', () => {
    expect(htmlToText('<b>Agent:</b> A &amp; B<br><small>callrelay x/1</small>')).toBe(
      'Agent: A & B\ncallrelay x/1',
    );
  });
});
