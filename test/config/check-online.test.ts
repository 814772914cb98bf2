// `callrelay check --online`: each CRM called once with its token; failures say what the CRM said.

import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import { FakePipedrive } from '../../src/targets/pipedrive/fake.js';
import { MAIN, tempDir, writeRelayYaml } from '../support.js';

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
  const run = (hsToken: string): Promise<{ status: number; stdout: string; stderr: string }> => {
    const config = writeRelayYaml(tempDir(), {
      more: `targets:\n  - name: hubspot\n    type: hubspot\n    token: ${hsToken}\n    baseUrl: ${hs.url}\n  - name: pipedrive\n    type: pipedrive\n    token: pd-good-token-123\n    baseUrl: ${pd.url}\n  - name: hook\n    type: http\n    url: http://127.0.0.1:9/x\n`,
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
});
