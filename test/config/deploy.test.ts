// The Compose deployment's relay.yaml (deploy/relay.postgres.yaml): the CRM comes from .env, so a
// Pipedrive user edits nothing under deploy/, and going live without a token is refused.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ROOT } from '../support.js';

const FILE = join(ROOT, 'deploy', 'relay.postgres.yaml');
// What compose.yaml passes from .env (each token as `openssl rand -hex 32` makes one).
const ENV = {
  DATABASE_URL: 'postgres://callrelay:pw@postgres:5432/callrelay',
  CALLRELAY_ADMIN_TOKEN: 'a3f09c1d7be24e6a9c05d8f1b2e7463a',
  CALLRELAY_3CX_TOKEN: '5d1e8b7f20c94a3e8f6d1c0b9a2e7f43',
  CALLRELAY_METRICS_TOKEN: 'e92c4a1f7d3b40568c2e9f1a0b7d6c35',
};

describe('deploy/relay.postgres.yaml', () => {
  it('takes the CRM, its token and the dry run from the environment', () => {
    const hubspot = loadConfig(FILE, ENV).targets[0]!;
    expect(hubspot).toMatchObject({ name: 'hubspot', type: 'hubspot', dryRun: true });
    // Compose passes an unset variable as an empty one: the defaults hold for those too.
    const empty = { CALLRELAY_CRM: '', CALLRELAY_CRM_TOKEN: '', CALLRELAY_CRM_DRY_RUN: '' };
    expect(loadConfig(FILE, { ...ENV, ...empty }).targets[0]).toMatchObject(hubspot);

    const token = '0123456789abcdef0123456789abcdef01234567';
    const live = { ...ENV, CALLRELAY_CRM: 'pipedrive', CALLRELAY_CRM_DRY_RUN: 'false' };
    expect(loadConfig(FILE, { ...live, CALLRELAY_CRM_TOKEN: token }).targets[0]).toMatchObject({
      name: 'pipedrive',
      type: 'pipedrive',
      dryRun: false,
      token,
    });
    expect(() => loadConfig(FILE, live)).toThrow(
      /relay\.postgres\.yaml:\d+:\d+ targets\.0\.token is the example default of \$\{CALLRELAY_CRM_TOKEN\}/,
    );
  });
});
