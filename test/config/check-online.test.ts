// `callrelay check --online`: each CRM called once with its token; failures say what the CRM said.

import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import { FakePipedrive } from '../../src/targets/pipedrive/fake.js';
import { loadConfig } from '../../src/config/load.js';
import { startRelay } from '../../src/runtime.js';
import { goldenCases, MAIN, sendFlowRequest, tempDir, writeRelayYaml } from '../support.js';

describe('callrelay check --online', () => {
  let hs: FakeHubspot;
  let pd: FakePipedrive;
  beforeAll(async () => {
    hs = await new FakeHubspot('hs-good-token-123').start();
    pd = await new FakePipedrive('pd-good-token-123').start();
  });
  afterAll(async () => {
    await hs.close();
    await pd.close();
  });

  // Not spawnSync: the fake CRMs answer from this process's event loop.
  const run = (
    hsToken: string,
    o: { hsUrl?: string; hsExtra?: string; pdExtra?: string; dir?: string } = {},
  ): Promise<{ status: number; stdout: string; stderr: string }> => {
    const config = writeRelayYaml(o.dir ?? tempDir(), {
      more: `targets:\n  - name: hubspot\n    type: hubspot\n    token: ${hsToken}\n    baseUrl: ${o.hsUrl ?? hs.url}\n${o.hsExtra ?? ''}  - name: pipedrive\n    type: pipedrive\n    token: pd-good-token-123\n    baseUrl: ${pd.url}\n${o.pdExtra ?? ''}  - name: hook\n    type: http\n    url: http://127.0.0.1:9/x\n`,
    });
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [MAIN, 'check', '--online', '--config', config],
        { encoding: 'utf8' },
        (err, stdout, stderr) => {
          resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
        },
      );
    });
  };

  it('says each token works', async () => {
    const r = await run('hs-good-token-123');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('ok  hubspot (hubspot): token accepted; owners and calls readable');
    expect(r.stdout).toContain(
      'ok  pipedrive (pipedrive): token accepted (user Relay Bot, company Acme, companyDomain acme)',
    );
    expect(r.stdout).toContain('--  hook (http): nothing to check');
  });

  it("fails with the CRM's reason, never the token", async () => {
    const r = await run('hs-wrong-token-99');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /^hubspot \(hubspot\): listing owners \(scope crm.objects.owners.read\): 401 INVALID_AUTHENTICATION: Authentication credentials not found\.$/m,
    );
    expect(`${String(r.stdout)}${String(r.stderr)}`).not.toContain('hs-wrong-token-99');
  });

  it('asks a dry run nothing, needs no token for it, and calls no agent a user', async () => {
    const config = writeRelayYaml(tempDir(), {
      more:
        'targets:\n' +
        ['hubspot', 'pipedrive']
          .map(
            (crm) =>
              `  - name: ${crm}\n    type: ${crm}\n    dryRun: true\n` +
              `    token: \${${crm.toUpperCase()}_TOKEN}\n` +
              '    agents:\n      "102": bob@acme-ofice.cz\n      "103": eva@acme.cz\n',
          )
          .join(''),
    });
    const { HUBSPOT_TOKEN: _h, PIPEDRIVE_TOKEN: _p, ...env } = process.env;
    const r = await new Promise<{ status: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        [MAIN, 'check', '--online', '--config', config],
        { encoding: 'utf8', env },
        (err, stdout, stderr) =>
          resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    for (const crm of ['hubspot', 'pipedrive'])
      expect(r.stdout).toContain(
        `--  ${crm} (${crm}, dry run): dry run, not asked: the sandbox answers every agent as a user`,
      );
    expect(r.stdout).not.toContain('agents are users');
  });

  it('names agents the CRM has no user for, by email or id, and says the others are fine', async () => {
    hs.owners.push({ id: '70001', email: 'alice@example.com', type: 'PERSON', archived: false });
    pd.users.push({ id: 17, email: 'alice@example.com', name: 'Alice' });
    const r = await run('hs-good-token-123', {
      hsExtra:
        '    agents:\n      "101": alice@example.com\n      "102": carol@example.com\n      "103": "70001"\n      "104": "99999"\n',
      pdExtra: '    agents:\n      "101": alice@example.com\n      "105": "17"\n',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      'hubspot (hubspot): agent 102 -> carol@example.com: no HubSpot user has this email: its calls go without an owner',
    );
    expect(r.stderr).toContain(
      'hubspot (hubspot): agent 104 -> 99999: no HubSpot user has this id',
    );
    expect(r.stderr).not.toMatch(/agent 10[13] /);
    expect(r.stdout).toContain('ok  pipedrive (pipedrive): all 2 agents are users');
  });

  it('names extensions seen in recent calls that have no mapping', async () => {
    const dir = tempDir();
    // A relay run that stored calls of extensions 202 and 117 (the 3CX samples' agents).
    const config = writeRelayYaml(dir, {});
    const relay = await startRelay(loadConfig(config, {}));
    for (const name of ['3cx-v2-incoming-answered', '3cx-v2-outgoing-missed']) {
      const flow = goldenCases().find((c) => c.flow.name === name)!.flow;
      for (const req of flow.requests) await sendFlowRequest(relay.port, '3cx', req);
    }
    await relay.pipeline.drain();
    await relay.close();
    const r = await run('hs-good-token-123', {
      dir,
      hsExtra: '    agents:\n      "202": alice@example.com\n',
    });
    expect(r.stdout).toContain(
      '--  hubspot (hubspot): extension 117 handled 1 of the last 2 calls and has no agents: entry',
    );
    expect(r.stdout).not.toContain('hubspot (hubspot): extension 202');
    expect(r.stdout).toContain(
      '--  pipedrive (pipedrive): extension 202 handled 1 of the last 2 calls',
    );
  });

  it('explains network failures: a host that does not resolve, a port nobody listens on', async () => {
    const dns = await run('hs-good-token-123', { hsUrl: 'https://api.hubapi.invalid' });
    expect(dns.status).toBe(1);
    expect(dns.stderr).toMatch(
      /hubspot \(hubspot\): listing owners \(scope crm.objects.owners.read\): (ENOTFOUND|EAI_AGAIN) api.hubapi.invalid: the relay cannot resolve HubSpot's host; check DNS or the proxy/,
    );
    const refused = await run('hs-good-token-123', { hsUrl: 'http://127.0.0.1:9' });
    expect(refused.stderr).toContain(
      'ECONNREFUSED 127.0.0.1:9: nothing accepts connections there; check the URL and port',
    );
  });
});
