// `callrelay map FLOW --target NAME`: the flow's calls through a target of relay.yaml as a dry
// run, printing the requests it would send with their bodies (shaped ones included), without the
// CRM's credentials and without sending anything.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAIN, ROOT, tempDir, writeRelayYaml } from '../support.js';

const cli = (args: string[]) => {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: 'utf8',
    // No CRM token in the environment: a dry run needs none.
    env: { PATH: process.env.PATH, TZ: 'UTC' },
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
};

const FLOW = join(ROOT, 'adapters/cases/3cx/3cx-v1-incoming-answered.json');

describe('callrelay map --target', () => {
  const config = writeRelayYaml(tempDir(), {
    more: `targets:
  - name: hubspot
    type: hubspot
    token: \${HUBSPOT_TOKEN}
    title: '"Anruf · " & title'
    properties: |
      { "call_queue": call.rang[0] }
  - name: pipedrive
    type: pipedrive
    token: \${PIPEDRIVE_TOKEN}
    subject: '"Anruf · " & title'
    fields: '{ "from_phone_number": $national(external) }'
`,
  });

  it('prints each request a HubSpot target would send for each call, shaped bodies included', () => {
    const r = cli(['map', FLOW, '--target', 'hubspot', '-c', config]);
    expect(r.err).toBe('');
    expect(r.status).toBe(0);
    expect(r.out).toContain(
      'flow 3cx-v1-incoming-answered through source 3cx (adapter 3cx) into target hubspot, as a dry run',
    );
    expect(r.out).toContain('call 3cx/230115121143_9');
    expect(r.out).toContain(
      '  POST /crm/v3/objects/contacts/search  (looking up a caller by phone)',
    );
    expect(r.out).toContain('  POST /crm/v3/objects/calls  (creating the call engagement)');
    expect(r.out).toContain('"call_queue": "800"');
    expect(r.out).toMatch(/"hs_call_title": "Anruf · Inbound call from \+420774852629/);

    const json = JSON.parse(cli(['map', FLOW, '--target', 'hubspot', '-c', config, '--json']).out);
    expect(json).toMatchObject({ flow: '3cx-v1-incoming-answered', target: 'hubspot' });
    const [call] = json.calls;
    expect(call).toMatchObject({ source: '3cx', callId: '230115121143_9', routed: true });
    const create = call.requests.find(
      (q: { method: string; path: string }) =>
        q.method === 'POST' && q.path === '/crm/v3/objects/calls',
    );
    expect(create.body.properties).toMatchObject({
      call_queue: '800',
      hs_call_external_id: 'callrelay:3cx:230115121143_9',
      hs_call_direction: 'INBOUND',
    });
  });

  it('does the same for a Pipedrive target: the call log with its shaped subject and fields', () => {
    const r = cli(['map', FLOW, '--target', 'pipedrive', '-c', config, '--json']);
    expect(r.status).toBe(0);
    const [call] = JSON.parse(r.out).calls;
    const log = call.requests.find((q: { path: string }) => q.path === '/api/v1/callLogs');
    expect(log.body).toMatchObject({
      outcome: 'connected',
      from_phone_number: '774852629',
      subject: expect.stringMatching(/^Anruf · Inbound call from/),
    });
  });

  it('names the targets there are when the one asked for is not in relay.yaml', () => {
    const r = cli(['map', FLOW, '--target', 'zoho', '-c', config]);
    expect(r.status).toBe(1);
    expect(r.err).toMatch(/no target "zoho" in .*relay\.yaml \(targets: hubspot, pipedrive\)/);
  });
});
