// The architecture as rules (`npm run lint`): no import cycles, type-only imports included, and
// dependencies that point one way. From the bottom up:
//   domain/, lib/, telemetry/  leaves: import nothing else of the relay
//   store/                     rows in, rows out: only the domain
//   ingest/                    adapters: domain and lib
//   targets/                   CRMs and their kit: domain, lib, telemetry
//   config/                    relay.yaml: adapters and target specs, never a target's code
//   pipeline/, delivery/, http/, flows.ts: the parts above, never each other's insides
//   dial/                      click-to-call: the PBX, the pipeline, and http/'s origin check
//   listen/                    the HTTP listeners: ports, TLS, connection limits, graceful close
//   reload/                    reloading relay.yaml: config only, the parts are the wiring's
//   recordings/                recording links: the archive, the kit's PBX fetch, http/'s links
//   agents/                    the agents' pages: the console's sessions and kit, http/'s checks
//   cli/, runtime.ts, main.ts  wire everything; nothing imports them

const layer = (name, from, allowed, comment) => ({
  name,
  severity: 'error',
  comment,
  from: { path: `^src/${from}` },
  to: { path: '^src/', pathNot: [`^src/${from}`, ...allowed.map((a) => `^src/${a}`)] },
});

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle (type-only imports count too).',
      from: {},
      to: { circular: true },
    },
    layer('domain-is-a-leaf', 'domain/', [], 'The domain imports nothing else of the relay.'),
    layer('lib-is-a-leaf', 'lib/', [], 'Generic helpers know nothing of calls.'),
    layer('telemetry-is-a-leaf', 'telemetry/', [], 'Logging knows nothing of calls.'),
    layer('pbx-asks-the-pbx', 'pbx/', ['lib/'], 'Requests to the PBX know nothing of the relay.'),
    layer(
      'store-reads-and-writes-rows',
      'store/',
      ['domain/', 'lib/'],
      'The store only reads and writes rows of the domain.',
    ),
    layer(
      'ingest-maps-requests',
      'ingest/',
      ['domain/', 'lib/'],
      'Adapters depend on nothing that delivers or stores.',
    ),
    layer(
      'targets-share-a-kit',
      'targets/',
      ['domain/', 'lib/', 'telemetry/'],
      'Targets never reach into the store, the engine or config.',
    ),
    layer(
      'config-reads-specs',
      'config/',
      ['domain/', 'lib/', 'ingest/', 'targets/(registry|types)\\.ts$', 'targets/[^/]+/spec\\.ts$'],
      'relay.yaml knows target specs, never their implementations.',
    ),
    layer(
      'pipeline',
      'pipeline/',
      ['domain/', 'lib/', 'ingest/', 'store/', 'config/', 'telemetry/'],
      'The pipeline maps and commits; it does not deliver or serve.',
    ),
    layer(
      'delivery',
      'delivery/',
      ['domain/', 'lib/', 'store/', 'targets/(types|registry)\\.ts$', 'targets/kit/', 'telemetry/'],
      'The engine drives targets through their interface.',
    ),
    layer(
      'http',
      'http/',
      ['domain/', 'lib/', 'store/', 'pipeline/', 'telemetry/'],
      'HTTP serves the pipeline and the store.',
    ),
    layer(
      'dial',
      'dial/',
      [
        'domain/',
        'lib/',
        'telemetry/',
        'pbx/',
        'pipeline/',
        'http/origin\\.ts$',
        'http/console/index\\.ts$',
      ],
      "Click-to-call asks the PBX and stores its answer; of http/ only the console's CSP and the origin check.",
    ),
    layer(
      'callerid',
      'callerid/',
      [
        'domain/',
        'lib/',
        'telemetry/',
        'targets/types\\.ts$',
        'targets/kit/lookup\\.ts$',
        'http/auth\\.ts$',
      ],
      "3CX's CRM integration asks targets through their interface; of http/ only the token checks.",
    ),
    layer(
      'recordings',
      'recordings/',
      [
        'domain/',
        'lib/',
        'config/',
        'pipeline/archive\\.ts$',
        'http/links\\.ts$',
        'targets/kit/',
        'targets/types\\.ts$',
      ],
      'Recording links read the archive or ask the PBX through the kit; of http/ only the link shape.',
    ),
    layer(
      'agents',
      'agents/',
      ['domain/', 'lib/', 'telemetry/', 'store/types\\.ts$', 'http/'],
      "The agents' pages share the console's sessions and kit; the rest comes in as functions.",
    ),
    layer(
      'reload',
      'reload/',
      ['config/', 'telemetry/'],
      "Reloading knows relay.yaml; what each part does with it is the wiring's.",
    ),
    layer(
      'listen',
      'listen/',
      ['config/', 'http/(connections|tls)\\.ts$', 'lib/', 'telemetry/'],
      "The listeners know relay.yaml's server section and http/'s connection limits and TLS.",
    ),
    {
      name: 'nothing-imports-the-wiring',
      severity: 'error',
      comment: 'cli/, runtime.ts and main.ts assemble the relay; nothing below them imports them.',
      from: { path: '^src/', pathNot: '^src/(cli/|main\\.ts$|runtime\\.ts$)' },
      to: { path: '^src/(cli/|main\\.ts$|runtime\\.ts$)' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Tests and fake CRMs (src/targets/*/fake.ts) are test code, outside the layers.
    exclude: { path: ['\\.test\\.ts$', 'fake\\.ts$'] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
