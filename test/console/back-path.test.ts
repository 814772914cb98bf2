// Where a POST or a sign-in goes back to: only a path of the console (or of the agent pages),
// never another site, never a header split.

import { describe, expect, it } from 'vitest';
import { agentBack } from '../../src/agents/kit.js';
import { backPath } from '../../src/http/console/kit.js';

describe('going back after a POST or a sign-in', () => {
  it('keeps a path of the console, else the default', () => {
    for (const ok of ['/console', '/console/setup', '/console?page=2', '/console#x'])
      expect(backPath(ok, '/console')).toBe(ok);
    for (const bad of [
      '//evil.example/console',
      'https://evil.example/console',
      '/consolex',
      '/agent',
      '/console/\r\nset-cookie: x=1',
      42,
      undefined,
    ])
      expect(backPath(bad, '/console')).toBe('/console');
  });

  it("keeps a path of the agent pages for an agent, never the console's or another site", () => {
    for (const ok of ['/agent', '/agent/dial?number=tel%3A%2B4930123', '/agent#calls'])
      expect(agentBack(ok)).toBe(ok);
    for (const bad of ['/console', '//evil.example/agent', '/agents', '/agent/\n', 'agent'])
      expect(agentBack(bad)).toBe('/agent');
  });
});
