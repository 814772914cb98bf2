import { describe, expect, it } from 'vitest';
import { exprIssueAt, parseYaml } from './yaml.js';

describe('exprIssueAt', () => {
  const y = parseYaml(
    [
      'targets:',
      '  - name: hubspot',
      '    title: "\'Call \' & $nope(call.callId)"',
      '    body: |',
      '      "first line"',
      '      & $oops(call)',
      '    properties: |',
      '      {',
      '        "call_queue": $nah(call)',
      '      }',
    ].join('\n'),
    'relay.yaml',
  );

  it('places an offset in a quoted scalar past the quote', () => {
    // `$nope` starts at offset 10 of the expression; the scalar's quote is at column 12.
    expect(exprIssueAt(y, ['targets', 0, 'title'], 10, 'x')).toMatchObject({ line: 3, col: 23 });
  });

  it('places an offset in a block scalar on its own line and column', () => {
    const offset = '"first line"\n& '.length;
    expect(exprIssueAt(y, ['targets', 0, 'body'], offset, 'x')).toMatchObject({ line: 6, col: 9 });
  });

  it('places an offset on a block line indented deeper than the block', () => {
    const offset = '{\n  "call_queue": '.length;
    expect(exprIssueAt(y, ['targets', 0, 'properties'], offset, 'x')).toMatchObject({
      line: 9,
      col: 23,
    });
  });

  it('falls back to the scalar itself without an offset', () => {
    expect(exprIssueAt(y, ['targets', 0, 'body'], undefined, 'x')).toMatchObject({ line: 4 });
  });
});
