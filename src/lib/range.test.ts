// Byte ranges as players send them, and slicing a stream to one.

import { describe, expect, it } from 'vitest';
import { parseRange, slice } from './range.js';

describe('parseRange', () => {
  it.each([
    ['bytes=0-', 1000, { start: 0, end: 999 }],
    ['bytes=0-99', 1000, { start: 0, end: 99 }],
    ['bytes=500-599', 1000, { start: 500, end: 599 }],
    ['bytes=900-5000', 1000, { start: 900, end: 999 }],
    ['bytes=-100', 1000, { start: 900, end: 999 }],
    ['bytes=-5000', 1000, { start: 0, end: 999 }],
    ['bytes=1000-', 1000, 'unsatisfiable'],
    ['bytes=-0', 1000, 'unsatisfiable'],
    ['bytes=5-1', 1000, undefined],
    ['bytes=0-1,5-9', 1000, undefined],
    ['items=0-1', 1000, undefined],
    [undefined, 1000, undefined],
    ['bytes=0-99', undefined, undefined],
  ] as const)('%s of %s bytes -> %j', (header, length, want) => {
    expect(parseRange(header, length)).toEqual(want);
  });
});

describe('slice', () => {
  it('cuts across chunk boundaries and stops reading after the end', async () => {
    const data = Buffer.from([...Array(100).keys()]);
    let read = 0;
    async function* chunks(): AsyncIterable<Uint8Array> {
      for (let i = 0; i < 100; i += 7) {
        read++;
        yield data.subarray(i, i + 7);
      }
    }
    const out: Uint8Array[] = [];
    for await (const c of slice(chunks(), 10, 30)) out.push(c);
    expect(Buffer.concat(out)).toEqual(data.subarray(10, 31));
    expect(read).toBe(5);
  });
});
