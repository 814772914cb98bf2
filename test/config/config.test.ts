// relay.yaml and adapter files: errors name file:line:col; ${ENV} substitution; `callrelay check`;
// the JSON Schemas in config/ match the code.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jsonSchemas, renderSchema } from '../../src/config/json-schemas.js';
import { defaultConfigPath, loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/lib/yaml.js';
import { AGENT_VALUE_HINT, isAgentValue } from '../../src/targets/kit/agents.js';
import { loadAdapter } from '../../src/ingest/adapter.js';
import { ADAPTER_NAMES, ADAPTERS, MAIN, ROOT, tempDir } from '../support.js';

function configErrors(yaml: string, env: Record<string, string> = {}): string[] {
  const dir = tempDir();
  const file = join(dir, 'relay.yaml');
  writeFileSync(file, yaml);
  try {
    loadConfig(file, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.line}:${i.col} ${i.message}`);
    throw err;
  }
  return [];
}

const base = (extra = ''): string => `admin:
  token: admin-token-1234
adapters: ${ADAPTERS}
sources:
  - name: pbx
    adapter: 3cx
    token: pbx-token-1234${extra}
`;

describe('relay.yaml', () => {
  it('takes an unquoted ${VAR} of digits as text where the field is text, as a number where not', () => {
    const dir = tempDir();
    const file = join(dir, 'relay.yaml');
    // A token of digits (as some providers issue them), longer than a number holds exactly.
    writeFileSync(
      file,
      `server:\n  port: \${PORT}\nadmin:\n  token: \${ADMIN}\nadapters: ${ADAPTERS}\n` +
        'sources:\n  - name: pbx\n    adapter: 3cx\n    token: ${PBX}\n',
    );
    const cfg = loadConfig(file, {
      PORT: '8089',
      ADMIN: '98765432109876543210',
      PBX: '123456789012345678901234',
    });
    expect(cfg.server.port).toBe(8089);
    expect(cfg.adminToken).toBe('98765432109876543210');
    expect(cfg.sources[0]!.token).toBe('123456789012345678901234');
    // A field that wants a number still says so.
    expect(
      configErrors(base().replace('admin:', 'server:\n  port: ${PORT}\nadmin:'), { PORT: 'true' }),
    ).toEqual(['2:9 server.port: Invalid input: expected number, received boolean']);
  });

  it('loads the shipped relay.yaml with defaults from the environment', () => {
    const cfg = loadConfig(join(ROOT, 'relay.yaml'), { CALLRELAY_3CX_TOKEN: 'from-env-token-1' });
    expect(cfg.sources.map((s) => s.name)).toEqual(['3cx', 'callerdesk']);
    expect(cfg.sources[0]!.token).toBe('from-env-token-1');
    expect(cfg.server.port).toBe(8080);
    expect(cfg.server.bodyLimit).toBe(1024 * 1024);
    expect('sqlite' in cfg.store && cfg.store.sqlite).toBe(join(ROOT, 'data', 'relay.db'));
    expect(cfg.envFallbacks.map((f) => f.name)).toEqual([
      'PORT',
      'HOST',
      'CALLRELAY_ADMIN_TOKEN',
      'CALLRELAY_METRICS_TOKEN',
      'CALLRELAY_CALLERDESK_TOKEN',
      'HUBSPOT_TOKEN',
    ]);
    // The shipped target is a dry run: it needs no token, and its placeholder is no example token.
    expect(cfg.targets).toMatchObject([{ name: 'hubspot', type: 'hubspot', dryRun: true }]);
    // Until the tokens are set, only this machine can reach it.
    expect(cfg.server.host).toBe('127.0.0.1');
    expect(cfg.exampleTokens.map((i) => i.message)).toEqual([
      'admin.token is the example default of ${CALLRELAY_ADMIN_TOKEN}',
      'metrics.token is the example default of ${CALLRELAY_METRICS_TOKEN}',
      'sources.1.token is the example default of ${CALLRELAY_CALLERDESK_TOKEN}',
    ]);
    // Callerdesk's adapter supplies the time zone and country the source leaves out.
    expect(cfg.sources[1]).toMatchObject({ timezone: 'Asia/Kolkata', defaultCountry: 'IN' });
  });

  it('one agent directory feeds every target that maps agents; a target entry wins', () => {
    const yaml = `${base()}agents:
  - { extension: "101", name: Alice, email: alice@example.com }
  - { extension: 102, name: Bob, email: bob@example.com }
  - { extension: "103", name: Carol }
targets:
  - name: hubspot
    type: hubspot
    dryRun: true
    token: dry-run-token-1234
    agents:
      "102": bob@crm-alias.example.com
      "104": dave@example.com
  - name: pipedrive
    type: pipedrive
    dryRun: true
    token: dry-run-token-1234
  - name: hook
    type: http
    url: https://example.com/in
`;
    const dir = tempDir();
    writeFileSync(join(dir, 'relay.yaml'), yaml);
    const cfg = loadConfig(join(dir, 'relay.yaml'), {});
    const agentsOf = (name: string): unknown => cfg.targets.find((t) => t.name === name)!.agents;
    expect(agentsOf('hubspot')).toEqual({
      '101': 'alice@example.com',
      '102': 'bob@crm-alias.example.com',
      '104': 'dave@example.com',
    });
    expect(agentsOf('pipedrive')).toEqual({
      '101': 'alice@example.com',
      '102': 'bob@example.com',
    });
    expect(agentsOf('hook')).toBeUndefined();
    // An extension listed twice, and an email that is none, are named at their place.
    expect(
      configErrors(
        `${base()}agents:\n  - { extension: "101", email: a@example.com }\n  - { extension: "101", email: nope }\n`,
      ),
    ).toEqual([
      '10:18 agents.1.extension: extension "101" is listed twice (also entry 1)',
      '10:32 agents.1.email: expected an email address, such as alice@example.com',
    ]);
  });

  it("an agent's click-to-call source: one with pbx:, named when several have one", () => {
    const pbx = (name: string): string => `
  - name: ${name}
    adapter: 3cx
    token: ${name}-token-1234
    pbx: { url: "https://pbx.example.com", key: webapi-key-1234 }`;
    const agents = (...lines: string[]): string => `agents:\n${lines.join('\n')}\n`;
    // One source with pbx:: it dials for everyone; none: agents are fine, nobody dials.
    expect(configErrors(`${base(pbx('office'))}${agents('  - { extension: "101" }')}`)).toEqual([]);
    expect(configErrors(`${base()}${agents('  - { extension: "101" }')}`)).toEqual([]);
    expect(
      configErrors(
        `${base(pbx('office') + pbx('branch'))}${agents(
          '  - { extension: "101", source: branch }',
          '  - { extension: "102" }',
          '  - { extension: "103", source: pbx }',
          '  - { extension: "104", source: ofice }',
        )}`,
      ),
    ).toEqual([
      '18:5 several sources can place calls (office, branch): say which one dials for extension 102 with source:',
      '19:33 source pbx has no pbx: (url and key), so it cannot place calls (sources with pbx: office, branch)',
      '20:33 no source "ofice" under sources: (did you mean "office"?)',
    ]);
  });

  it("an agent's groups are the queues and ring groups they answer, named at their place when wrong", () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'relay.yaml'),
      `${base()}agents:\n  - { extension: "101", groups: ["800", 801] }\n  - { extension: "102" }\n`,
    );
    expect(loadConfig(join(dir, 'relay.yaml'), {}).agents).toEqual([
      { extension: '101', groups: ['800', '801'] },
      { extension: '102' },
    ]);
    expect(configErrors(`${base()}agents:\n  - { extension: "101", groups: ["8 00"] }\n`)).toEqual([
      '9:34 agents.0.groups.0: a group number has no spaces',
    ]);
  });

  it("an agent's sources are sources of relay.yaml, a slip named with the near name", () => {
    const brno = `
  - name: brno
    adapter: 3cx
    token: brno-token-1234`;
    const dir = tempDir();
    writeFileSync(
      join(dir, 'relay.yaml'),
      `${base(brno)}agents:\n  - { extension: "101", sources: [pbx] }\n  - { extension: "102" }\n`,
    );
    expect(loadConfig(join(dir, 'relay.yaml'), {}).agents).toEqual([
      { extension: '101', sources: ['pbx'] },
      { extension: '102' },
    ]);
    expect(
      configErrors(
        `${base(brno)}agents:\n  - { extension: "101", sources: [pbx, bnro] }\n  - { extension: "102", sources: [] }\n`,
      ),
    ).toEqual([
      '13:34 agents.1.sources: list at least one source, or leave sources: out for every one',
    ]);
    expect(
      configErrors(`${base(brno)}agents:\n  - { extension: "101", sources: [pbx, brnno] }\n`),
    ).toEqual([
      '12:40 no source "brnno" under sources: (did you mean "brno"?) (sources: pbx, brno)',
    ]);
  });

  it('crm.joinCallsOf names another source, suggesting the near name', () => {
    const journal = (of: string): string =>
      base(`
  - name: pbx-journal
    adapter: 3cx-crm-template
    token: journal-token-1234
    crm:
      lookup: [] # journaling only: base() has no target that looks contacts up
      joinCallsOf: ${of}`);
    expect(configErrors(journal('pbx'))).toEqual([]);
    expect(configErrors(journal('pbxx'))).toEqual([
      '13:20 no source "pbxx" under sources: (did you mean "pbx"?)',
    ]);
    expect(configErrors(journal('addon'))).toEqual(['13:20 no source "addon" under sources:']);
    expect(configErrors(journal('pbx-journal'))).toEqual([
      "13:20 joinCallsOf names the source itself: name the source of the same PBX's WebAPI add-on",
    ]);
    // Without lookup: [] a crm: wants a target that can answer 3CX's lookups.
    expect(
      configErrors(
        journal('pbx').replace(
          '      lookup: [] # journaling only: base() has no target that looks contacts up\n',
          '',
        ),
      ),
    ).toEqual([
      expect.stringMatching(
        /^12:7 crm: answers 3CX from targets that look contacts up.*say lookup: \[\]$/,
      ),
    ]);
    const dir = tempDir();
    writeFileSync(join(dir, 'relay.yaml'), journal('pbx'));
    expect(loadConfig(join(dir, 'relay.yaml'), {}).sources[1]!.crm).toMatchObject({
      joinCallsOf: 'pbx',
      joinWithinSec: 10,
    });
  });

  it('refuses a target that sends with the placeholder credential, naming the place', () => {
    const dir = tempDir();
    const file = join(dir, 'relay.yaml');
    const yaml = readFileSync(join(ROOT, 'relay.yaml'), 'utf8');
    const sending = yaml.replace('    dryRun: true\n', '');
    writeFileSync(file, sending);
    const line = sending.split('\n').findIndex((l) => l.includes('${HUBSPOT_TOKEN:-')) + 1;
    expect(() => loadConfig(file, {})).toThrow(
      `relay.yaml:${line}:12 targets.0.token is the example default of \${HUBSPOT_TOKEN}: set HUBSPOT_TOKEN`,
    );
    // Set, it is fine; commands that only read the store never need it.
    expect(loadConfig(file, { HUBSPOT_TOKEN: 'pat-na1-0123456789' }).targets[0]!.dryRun).toBe(
      false,
    );
    expect(loadConfig(file, {}, { readOnly: true }).targets).toHaveLength(1);
  });

  it('finds the file through RELAY_CONFIG, else ./config/relay.yaml, else ./relay.yaml', () => {
    // A folder of its own: what init wrote into this clone (if anything) decides nothing here.
    const cwd = tempDir();
    expect(defaultConfigPath({ RELAY_CONFIG: '/etc/callrelay/relay.yaml' }, cwd)).toBe(
      '/etc/callrelay/relay.yaml',
    );
    expect(defaultConfigPath({}, cwd)).toBe(join(cwd, 'relay.yaml'));
    mkdirSync(join(cwd, 'config'));
    writeFileSync(join(cwd, 'config', 'relay.yaml'), base());
    expect(defaultConfigPath({}, cwd)).toBe(join(cwd, 'config', 'relay.yaml'));
    expect(defaultConfigPath({ RELAY_CONFIG: 'other.yaml' }, cwd)).toBe(join(cwd, 'other.yaml'));
    const dir = tempDir();
    writeFileSync(join(dir, 'other.yaml'), base('\n    evnt: x'));
    const r = spawnSync(process.execPath, [MAIN, 'check'], {
      encoding: 'utf8',
      cwd: dir,
      env: { ...process.env, RELAY_CONFIG: join(dir, 'other.yaml') },
    });
    expect(r.stderr.trim()).toBe('other.yaml:8:5 unknown field "evnt"');
  });

  it('refuses an agent that is neither an email nor a numeric user id, naming the place', () => {
    const target = (agents: string): string =>
      base() +
      `targets:\n  - name: pd\n    type: pipedrive\n    token: pd-token-1234\n    agents:\n${agents}`;
    expect(configErrors(target('      "101": bob\n      "102": bob@acme-ofice\n'))).toEqual([
      `13:14 targets.0.agents.101: ${AGENT_VALUE_HINT}`,
      `14:14 targets.0.agents.102: ${AGENT_VALUE_HINT}`,
    ]);
    // An email or an id, the id quoted or not, is fine.
    expect(
      configErrors(target('      "101": bob@acme.cz\n      "102": 17\n      "103": "18"\n')),
    ).toEqual([]);
    expect(['bob@acme.cz', '17', 'a.b+c@x.co.uk'].map(isAgentValue)).toEqual([true, true, true]);
    expect(['bob', 'bob@acme', '@acme.cz', 'bob@@acme.cz', '1 7', ''].map(isAgentValue)).toEqual([
      false,
      false,
      false,
      false,
      false,
      false,
    ]);
  });

  it('names line and column of an unknown field', () => {
    expect(configErrors(base('\n    evnt: x'))).toEqual(['8:5 unknown field "evnt"']);
  });

  it('names the place of a bad value', () => {
    const errs = configErrors(
      `server:\n  port: 99999\n${base('\n    timezone: Mars/Olympus\n    defaultCountry: XX')}`,
    );
    expect(errs).toEqual([
      expect.stringMatching(/^2:9 server.port: /),
      expect.stringMatching(/^10:15 sources.0.timezone: expected an IANA time zone/),
      expect.stringMatching(
        /^11:21 sources.0.defaultCountry: expected a two-letter ISO 3166 country code/,
      ),
    ]);
  });

  it('names the place of an address that is not one (allowIps, trustProxy)', () => {
    const errs = configErrors(
      `server:\n  trustProxy: [10.0.0.0/8, proxy.local]\n${base('\n    allowIps: [10.0.0.0/33]')}`,
    );
    expect(errs).toEqual([
      expect.stringMatching(/^2:28 server.trustProxy.1: expected an IP address or a CIDR block/),
      expect.stringMatching(/^10:16 sources.0.allowIps.0: expected an IP address or a CIDR block/),
    ]);
  });

  it('says its version', () => {
    const version = (
      JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
    ).version;
    for (const flag of ['--version', '-v']) {
      const r = spawnSync(process.execPath, [MAIN, flag], { encoding: 'utf8' });
      expect(r.stdout, flag).toBe(`callrelay ${version}\n`);
      expect(r.status).toBe(0);
    }
  });

  // Seven callrelay commands one after another: seconds each on two busy cores.
  it('lets commands that only read the store run without the CRM and admin secrets', () => {
    const dir = tempDir();
    const file = join(dir, 'relay.yaml');
    writeFileSync(
      file,
      `store:\n  sqlite: ./relay.db\nadmin:\n  token: \${CR_TEST_ADMIN}\nadapters: ${ADAPTERS}\n` +
        'sources:\n  - name: pbx\n    adapter: 3cx\n    token: ${CR_TEST_PBX}\n' +
        'targets:\n  - name: hubspot\n    type: hubspot\n    token: ${CR_TEST_HS}\n' +
        '  - name: hook\n    type: http\n    url: ${CR_TEST_HOOK_URL}\n',
    );
    const env = { ...process.env };
    for (const k of ['CR_TEST_ADMIN', 'CR_TEST_PBX', 'CR_TEST_HS', 'CR_TEST_HOOK_URL'])
      delete env[k];
    const run = (...args: string[]): { status: number | null; out: string } => {
      const r = spawnSync(process.execPath, [MAIN, ...args, '--config', file], {
        encoding: 'utf8',
        env,
      });
      return { status: r.status, out: r.stdout + r.stderr };
    };
    for (const cmd of ['calls', 'deliveries', 'dead', 'unmapped'])
      expect(run(cmd), cmd).toMatchObject({ status: 0 });
    // Serving needs them all, and says which is missing and where.
    for (const cmd of ['start', 'check']) {
      const r = run(cmd);
      expect(r.status, cmd).toBe(1);
      expect(r.out, cmd).toMatch(
        /environment variable CR_TEST_HS is not set \(used by targets\.0\.token\)/,
      );
    }
    // The store itself cannot be guessed.
    writeFileSync(file, `store:\n  postgres: \${CR_TEST_DB}\n${base()}`);
    expect(run('calls').out).toMatch(
      /environment variable CR_TEST_DB is not set \(used by store\.postgres\)/,
    );
  }, 120_000);

  it('names a missing environment variable and where it is used', () => {
    expect(configErrors(base().replace('pbx-token-1234', '${PBX_TOKEN}'))).toEqual([
      '7:12 environment variable PBX_TOKEN is not set (used by sources.0.token)',
    ]);
    expect(
      configErrors(base().replace('pbx-token-1234', '${PBX_TOKEN}'), { PBX_TOKEN: 'set-in-env-1' }),
    ).toEqual([]);
  });

  it('turns an unquoted ${PORT} into a number, and keeps a quoted one a string', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'relay.yaml'), `server:\n  port: \${PORT}\n${base()}`);
    expect(loadConfig(join(dir, 'relay.yaml'), { PORT: '9090' }).server.port).toBe(9090);
    expect(configErrors(`server:\n  port: "\${PORT}"\n${base()}`, { PORT: '9090' })).toEqual([
      expect.stringMatching(/^2:9 server.port: Invalid input: expected number/),
    ]);
  });

  it('rejects duplicate sources, unknown adapters, short tokens, both stores', () => {
    const errs = configErrors(
      `store:\n  sqlite: a.db\n  postgres: postgres://x\nadmin:\n  token: short\nadapters: ${ADAPTERS}\nsources:\n  - { name: a, adapter: 3cx, token: aaaaaaaa1 }\n  - { name: a, adapter: nope, token: aaaaaaaa2 }\n`,
    );
    expect(errs.join('\n')).toMatch(/2:3 store: choose one of store.sqlite and store.postgres/);
    expect(errs.join('\n')).toMatch(/5:10 admin.token: a token needs at least 8 characters/);
    expect(errs.join('\n')).toMatch(/9:13 sources.1.name: duplicate source name "a"/);
    const errs2 = configErrors(base().replace('adapter: 3cx', 'adapter: nope'));
    const known = ADAPTER_NAMES.join(', ');
    expect(errs2).toEqual([`6:14 no adapter "nope" in ${ADAPTERS} (known: ${known})`]);
  });

  it('reports YAML syntax errors with their position', () => {
    expect(configErrors('sources: [\n  - a\n')[0]).toMatch(/^\d+:\d+ /);
  });

  it('explains the ${VAR}-in-a-flow-mapping trap, and accepts the quoted form', () => {
    expect(
      configErrors(
        `admin: { token: \${ADMIN} }\n${base().replace('admin:\n  token: admin-token-1234\n', '')}`,
        { ADMIN: 'x'.repeat(10) },
      )[0],
    ).toMatch(/^1:\d+ .*quote \$\{VAR\} references: "\$\{VAR\}"\)$/);
    expect(
      configErrors(
        `admin: { token: "\${ADMIN}" }\n${base().replace('admin:\n  token: admin-token-1234\n', '')}`,
        { ADMIN: 'x'.repeat(10) },
      ),
    ).toEqual([]);
  });
});

describe('adapter files', () => {
  function adapterErrors(yaml: string): string[] {
    const file = join(tempDir(), 'x.yaml');
    writeFileSync(file, yaml);
    try {
      loadAdapter(file);
    } catch (err) {
      if (err instanceof ConfigError)
        return err.issues.map((i) => `${i.line}:${i.col} ${i.message}`);
      throw err;
    }
    return [];
  }
  const head = 'adapter: x\nversion: 1\nevents:\n';

  it('names unknown fields and missing rule types', () => {
    expect(
      adapterErrors(`${head}  - name: r\n    evnt: x\n    when: "true"\n    type: ringing\n`),
    ).toEqual(['5:5 unknown field "evnt"']);
    expect(adapterErrors(`${head}  - name: r\n    when: "true"\n`)).toEqual([
      expect.stringMatching(
        /^4:5 events.0: a rule needs exactly one of `type`, `emit` or `ignore: true`/,
      ),
    ]);
    expect(
      adapterErrors(
        `${head}  - name: r\n    when: "true"\n    type: ringing\n    fields:\n      agnet: user\n`,
      ),
    ).toEqual(['8:7 unknown field "agnet"']);
  });

  it("refuses a rule that makes the relay's own close of a call", () => {
    expect(adapterErrors(`${head}  - name: r\n    when: "true"\n    type: closed\n`)).toEqual([
      expect.stringMatching(/^6:11 .*"ringing"/),
    ]);
  });

  it('points into the expression for syntax errors, upper-case fields, unknown functions and maps', () => {
    const errs = adapterErrors(
      `${head}  - name: r\n    when: event = = 'x'\n    type: ringing\n    fields:\n      agent: User\n      did: $nope(did)\n      outcome: $mapValue(x, 'missing')\n`,
    );
    expect(errs[0]).toMatch(/^5:\d+ expression error: /);
    expect(errs.slice(1)).toEqual([
      '8:14 field "User" never matches: request keys are lower-cased, write "user"',
      '9:12 unknown function $nope',
      '10:16 $mapValue: no map named "missing" under maps:',
    ]);
  });
});

describe('adapter files with schema and expression errors', () => {
  it('reports both in one load, in file order', () => {
    const file = join(tempDir(), 'x.yaml');
    writeFileSync(
      file,
      [
        'adapter: x',
        'version: 2',
        'fields:',
        '  callId: Id',
        '  agnet: $nope(user)',
        'events:',
        '  - name: r',
        "    when: event = = 'x'",
        '    type: ringing',
        '  - name: t',
        "    when: event = 'transfer'",
        '    emit:',
        '      - type: ended',
        '        when: $exists(From)',
        '        fields:',
        "          legId: $mapValue(a, 'legs')",
        '      - type: sideways',
        '',
      ].join('\n'),
    );
    let issues: string[] = [];
    try {
      loadAdapter(file);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      issues = err.issues.map((i) => `${i.line}:${i.col} ${i.message}`);
    }
    expect(issues).toEqual([
      '2:10 version: Invalid input: expected 1',
      '4:11 field "Id" never matches: request keys are lower-cased, write "id"',
      '5:3 unknown field "agnet"',
      expect.stringMatching(/^8:\d+ expression error: /),
      '14:23 field "From" never matches: request keys are lower-cased, write "from"',
      '16:18 $mapValue: no map named "legs" under maps:',
      expect.stringMatching(/^17:15 events\.1\.emit\.1\.type: /),
    ]);
  });
});

describe('callrelay check', () => {
  it('passes on the shipped configuration', () => {
    const out = execFileSync(
      process.execPath,
      [MAIN, 'check', '--config', join(ROOT, 'relay.yaml')],
      { encoding: 'utf8' },
    );
    expect(out).toMatch(/ok {2}.*relay\.yaml: 2 source\(s\): 3cx -> 3cx, callerdesk -> callerdesk/);
  });

  it('exits non-zero naming file:line:col', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'relay.yaml'), base('\n    evnt: x'));
    const r = spawnSync(process.execPath, [MAIN, 'check', '--config', join(dir, 'relay.yaml')], {
      encoding: 'utf8',
      cwd: dir,
    });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('relay.yaml:8:5 unknown field "evnt"');
  });

  it("shows relay.yaml's schema errors and its adapters' expression errors in one run", () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'adapters'));
    writeFileSync(
      join(dir, 'adapters', 'bad.yaml'),
      'adapter: bad\nversion: 1\nevents:\n  - name: r\n    when: Event = 1\n    type: ringing\n',
    );
    writeFileSync(
      join(dir, 'relay.yaml'),
      base('\n    evnt: x').replace(`adapters: ${ADAPTERS}`, 'adapters: ./adapters'),
    );
    const r = spawnSync(process.execPath, [MAIN, 'check', '--config', join(dir, 'relay.yaml')], {
      encoding: 'utf8',
      cwd: dir,
    });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      'relay.yaml:8:5 unknown field "evnt"',
      'adapters/bad.yaml:5:11 field "Event" never matches: request keys are lower-cased, write "event"',
    ]);
  });

  it('checks single adapter files', () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, 'bad.yaml'),
      'adapter: bad\nversion: 1\nevents:\n  - name: r\n    when: Event = 1\n    type: ringing\n',
    );
    // A schema error does not hide the expression errors: one run shows both.
    writeFileSync(
      join(dir, 'worse.yaml'),
      'adapter: worse\nversion: 1\nevents:\n  - name: r\n    when: Event = 1\n    type: rnging\n',
    );
    const r = spawnSync(
      process.execPath,
      [MAIN, 'check', join(dir, 'bad.yaml'), join(dir, 'worse.yaml'), join(ADAPTERS, '3cx.yaml')],
      { encoding: 'utf8', cwd: dir },
    );
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      'bad.yaml:5:11 field "Event" never matches: request keys are lower-cased, write "event"',
      'worse.yaml:5:11 field "Event" never matches: request keys are lower-cased, write "event"',
      expect.stringMatching(/^worse\.yaml:6:11 events\.0\.type: /),
    ]);
    expect(r.stdout).toMatch(/ok {2}.*3cx\.yaml \(adapter 3cx\)/);
  });
});

describe('JSON Schemas in config/', () => {
  it('are up to date with the code (regenerate with npm run schemas)', () => {
    for (const [file, schema] of Object.entries(jsonSchemas())) {
      expect(readFileSync(join(ROOT, 'config', file), 'utf8'), file).toBe(renderSchema(schema));
    }
  });
});

describe('the README', () => {
  it('has a complete example relay.yaml that loads', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const example = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)]
      .map((m) => m[1]!)
      .find((y) => y.includes('type: pipedrive'))!;
    const dir = tempDir();
    writeFileSync(
      join(dir, 'relay.yaml'),
      example.replace(
        'store: { sqlite: ./data/relay.db }',
        'store: { sqlite: ./data/relay.db }\nadapters: ' + ADAPTERS,
      ),
    );
    const env = Object.fromEntries(
      [
        'CALLRELAY_ADMIN_TOKEN',
        'CALLRELAY_3CX_TOKEN',
        'PBX_USER',
        'PBX_PASSWORD',
        'HUBSPOT_TOKEN',
        'PIPEDRIVE_TOKEN',
        'WEBHOOK_SECRET',
      ].map((k) => [k, `${k.toLowerCase()}-value-123456`]),
    );
    const cfg = loadConfig(join(dir, 'relay.yaml'), env);
    expect(cfg.targets.map((t) => [t.name, t.type])).toEqual([
      ['hubspot', 'hubspot'],
      ['pipedrive', 'pipedrive'],
      ['webhook', 'http'],
    ]);
    expect(cfg.routing.routes[1]).toEqual({
      targets: ['pipedrive'],
      filter: { direction: ['inbound'], outcome: ['answered'], minDurationSec: 5 },
    });
    expect(cfg.routing.targets.pipedrive).toEqual({ deliverOn: 'ended', settleSec: 60 });
  });
});
