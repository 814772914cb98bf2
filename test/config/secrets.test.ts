// secretsOf: every secret a relay.yaml configures is found by field name (tokens, passwords,
// signing secrets of every signature scheme, header values, URL passwords), and nothing that is
// not a secret.

import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { secretsOf } from '../../src/config/secrets.js';
import { sourceToken, tempDir, TOKENS, writeRelayYaml } from '../support.js';

describe('secretsOf', () => {
  it('finds the secrets of sources, targets, admin, metrics and the store URL', () => {
    const file = writeRelayYaml(tempDir(), {
      store: 'postgres: postgres://relay:pg-pass-word-1@127.0.0.1:5432/relay',
      server:
        '  publicUrl: https://relay.example.test\n  urlSecret: link-secret-8-0123456789-0123456789\n',
      threecx:
        '    recordings:\n      bearer: pbx-bearer-token-1\n      basic: { user: admin, password: pbx-pass-2 }\n' +
        '    signature: { header: X-Sig, secret: source-signing-secret-7 }\n' +
        '    pbx: { url: "https://pbx.example.test:5001", key: webapi-key-9 }\n',
      more: `targets:
  - name: hubspot
    type: hubspot
    token: pat-hubspot-token-1
  - name: pipedrive
    type: pipedrive
    token: pipedrive-token-22
  - name: hook
    type: http
    url: https://user:url-password-3@example.com/in
    secret: whsec_signing-secret-0000000
    headers: { X-Api-Key: header-key-4, X-Acme-Sig: header-value-6 }
metrics:
  token: metrics-token-5
`,
    });
    const got = secretsOf(loadConfig(file, {}));
    for (const s of [
      TOKENS.admin,
      sourceToken('3cx'),
      'pbx-bearer-token-1',
      'pbx-pass-2',
      'link-secret-8-0123456789-0123456789',
      'webapi-key-9',
      'pat-hubspot-token-1',
      'pipedrive-token-22',
      'url-password-3',
      'whsec_signing-secret-0000000',
      'header-key-4',
      'header-value-6',
      'metrics-token-5',
      'pg-pass-word-1',
      // As Basic credentials carry them (base64 of the pair holds neither half alone).
      'admin:pbx-pass-2',
      'source-signing-secret-7',
    ])
      expect(got, s).toContain(s);
    for (const notSecret of [
      'admin',
      'relay',
      'user',
      'hubspot',
      'https://user:url-password-3@example.com/in',
    ])
      expect(got).not.toContain(notSecret);
  });

  it("finds every signature preset's secret (a Twilio Auth Token, a whsec_, a payload token)", () => {
    const presets: [string, string][] = [
      ['twilio', 'twilio-auth-token-secret-1\n      publicUrl: https://relay.example.test'],
      ['standard-webhooks', '"whsec_c3RhbmRhcmQtd2ViaG9va3Mta2V5"'],
      ['stripe', 'stripe-signing-secret-2'],
      ['payload-token', 'aircall-payload-token-3'],
      ['zoom', 'zoom-secret-token-4'],
    ];
    const file = writeRelayYaml(tempDir(), {
      more: presets
        .map(
          ([scheme, secret], i) =>
            `  - name: signed-${i}\n    adapter: 3cx\n    token: ${sourceToken('3cx')}\n` +
            `    signature:\n      scheme: ${scheme}\n      secret: ${secret}\n`,
        )
        .join(''),
    });
    const got = secretsOf(loadConfig(file, {}));
    for (const s of [
      'twilio-auth-token-secret-1',
      'whsec_c3RhbmRhcmQtd2ViaG9va3Mta2V5',
      'stripe-signing-secret-2',
      'aircall-payload-token-3',
      'zoom-secret-token-4',
    ])
      expect(got, s).toContain(s);
    expect(got).not.toContain('https://relay.example.test');
  });
});
