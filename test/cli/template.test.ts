// `callrelay 3cx-template`: the template for a source with crm:, its hook URL from
// server.publicUrl or --url, and clear refusals (exit 2) without either, or for a source without
// crm:. Runs the built CLI (npm run build first).

import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ADAPTERS, MAIN, tempDir } from '../support.js';

function relayYaml(o: { publicUrl?: boolean; crm?: string } = {}): string {
  const dir = tempDir();
  const file = join(dir, 'relay.yaml');
  writeFileSync(
    file,
    `server:
  host: 127.0.0.1
${o.publicUrl === false ? '' : '  publicUrl: https://relay.example.com/\n'}admin:
  token: admin-token-1234
adapters: ${ADAPTERS}
sources:
  - name: pbx
    adapter: 3cx-crm-template
    token: pbx-token-1234
    defaultCountry: CZ
    crm: ${o.crm ?? '{}'}
  - name: desk
    adapter: callerdesk
    token: desk-token-1234
targets:
  - name: webhook
    type: http
    url: https://example.com/in
`,
  );
  return file;
}

const cli = (args: string[]) => {
  const r = spawnSync(process.execPath, [MAIN, '3cx-template', ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, TZ: 'UTC' },
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
};

describe('callrelay 3cx-template', () => {
  it("prints the source's template with its hook URL from server.publicUrl", () => {
    const r = cli(['--source', 'pbx', '-c', relayYaml()]);
    expect(r.err).toBe('');
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/^<\?xml version="1.0" encoding="utf-8"\?>\n/);
    expect(r.out).toContain('Default="https://relay.example.com/hooks/pbx"');
    expect(r.out).toContain('Country="CZ"');
    expect(r.out).toContain('Url="[RelayUrl]/crm/lookup/[Number]"');
    expect(r.out).toContain('<Scenario Id="ReportCall" Type="REST">');
    // Contact creation only where crm.createIn says.
    expect(r.out).not.toContain('CreateContactRecordFromClient');
    // The token is the admin's to enter in 3CX: never in the file.
    expect(r.out).not.toContain('pbx-token-1234');
  });

  it('takes --url (the relay, or the hook URL itself) over server.publicUrl, and writes -o', () => {
    const file = relayYaml({ publicUrl: false, crm: '{ createIn: webhook }' });
    const r = cli(['--source', 'pbx', '-c', file, '--url', 'https://pbx-relay.example.org/']);
    expect(r.status).toBe(0);
    expect(r.out).toContain('Default="https://pbx-relay.example.org/hooks/pbx"');
    expect(r.out).toContain('<Scenario Id="CreateContactRecordFromClient" Type="REST">');
    const out = join(tempDir(), 'callrelay.xml');
    const w = cli([
      '--source',
      'pbx',
      '-c',
      file,
      '--url',
      'https://x.example/hooks/pbx',
      '-o',
      out,
    ]);
    expect(w.status).toBe(0);
    expect(w.out).toBe('');
    expect(w.err).toContain('Admin > Integrations > CRM');
    expect(readFileSync(out, 'utf8')).toContain('Default="https://x.example/hooks/pbx"');
  });

  it('exits 2 without server.publicUrl or --url, saying to set one', () => {
    const r = cli(['--source', 'pbx', '-c', relayYaml({ publicUrl: false })]);
    expect(r.status).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toContain('set server.publicUrl');
    expect(r.err).toContain('--url');
  });

  it('exits 2 for a source without crm:, or none of that name', () => {
    const file = relayYaml();
    const noCrm = cli(['--source', 'desk', '-c', file]);
    expect(noCrm.status).toBe(2);
    expect(noCrm.err).toContain('source desk has no crm:');
    const none = cli(['--source', 'nope', '-c', file]);
    expect(none.status).toBe(2);
    expect(none.err).toContain('no source "nope"');
    expect(none.err).toContain('sources: pbx, desk');
  });
});
