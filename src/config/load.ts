// Reads relay.yaml into a resolved configuration: `${ENV}` substituted, validated, paths resolved
// against the file's folder, and every source's adapter loaded and checked. All errors come back
// together as one ConfigError naming file:line:col.

import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CountryCode } from 'libphonenumber-js';
import type { Document } from 'yaml';
import {
  adapterFileName,
  loadAdapter,
  loadAdapterDir,
  type LoadedAdapter,
  type SourceSettings,
} from '../ingest/adapter.js';
import type { Route, Routing } from '../domain/routing.js';
import { certificateProblem } from '../lib/certificates.js';
import { nearest } from '../lib/near.js';
import { targetSpec } from '../targets/registry.js';
import type { CommonTargetConfig } from '../targets/types.js';
import { RelayConfigSchema, type RelayConfigParsed, type SourceGuardSettings } from './schema.js';
import {
  ConfigError,
  issueAt,
  loadYamlFile,
  validateYaml,
  type ConfigIssue,
  type LoadedYaml,
} from '../lib/yaml.js';

/** The adapters that ship with callrelay (../../adapters from dist/config or src/config). */
export const BUNDLED_ADAPTERS = fileURLToPath(new URL('../../adapters', import.meta.url));

export interface ResolvedSource extends SourceSettings {
  token: string;
  /** Checks at the webhook edge beyond the token (http/guard.ts). */
  guard: SourceGuardSettings;
  /** Click-to-call through the PBX (3CX makecall), if configured. */
  pbx?: { url: string; key: string; timeoutSec: number };
  /** 3CX's CRM integration answered by the relay (callerid/, journal joins), if configured. */
  crm?: NonNullable<RelayConfigParsed['sources'][number]['crm']>;
  adapter: LoadedAdapter;
  recordings: {
    archive: boolean;
    allowHosts: string[];
    allowPrivateAddresses: boolean;
    bearer?: string;
    basic?: { user: string; password: string };
    maxMB: number;
  };
}

export interface RelayConfig {
  file: string;
  /** The recording archive, when a source archives its recordings. */
  archive: { dir: string; keepDays: number } | undefined;
  /** Signed links to the relay (recordings), when server.publicUrl is set. */
  links: { publicUrl: string; secret: string; ttlDays: number | undefined } | undefined;
  /** `tls`: absolute paths of a pair that was readable and matching when loaded. */
  server: RelayConfigParsed['server'];
  store: ({ sqlite: string; maxSizeMB?: number; busyTimeoutMs: number } | { postgres: string }) & {
    maxEventsPerCall: number;
    keepRequestsDays: number;
  };
  adminToken: string | undefined;
  /** Console sessions (admin.sessionIdleMin, admin.sessionMaxHours). */
  sessions: { idleMs: number; maxMs: number };
  logLevel: RelayConfigParsed['log']['level'];
  logFormat: RelayConfigParsed['log']['format'];
  /** Bytes of log output held for a slow reader (telemetry/sink.ts). */
  logBufferLimit: number;
  adaptersDir: string;
  sources: ResolvedSource[];
  /** The people on the phones (relay.yaml agents:): the targets' user mapping, the agent pages. */
  agents: RelayConfigParsed['agents'];
  /** Agents' company sign-in (auth.oidc), with its redirect URI on server.publicUrl. */
  oidc: (NonNullable<RelayConfigParsed['auth']['oidc']> & { redirectUri: string }) | undefined;
  /** Targets with the type's defaults filled in. */
  targets: (CommonTargetConfig & Record<string, unknown>)[];
  routing: Routing;
  delivery: { leaseSec: number; keepAttemptsDays: number };
  calls: { closeAfterMin: number };
  /** Click-to-call's number policy, link lifetime and rate limits. */
  dial: RelayConfigParsed['dial'];
  metrics: { enabled: boolean; token?: string };
  /** `${VAR:-default}` references that fell back to the default (start warns about them). */
  envFallbacks: LoadedYaml['envFallbacks'];
  /** Tokens that are the example defaults of relay.yaml (their variables are unset), placed. */
  exampleTokens: ConfigIssue[];
  /** Admin, metrics and source tokens too short or too plain for a relay others reach, placed. */
  weakTokens: ConfigIssue[];
  /** metrics.enabled without metrics.token, placed (refused when others can reach the relay). */
  openMetrics: ConfigIssue | undefined;
}

/** Loopback only: nobody else can reach the relay (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  return /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/i.test(host.trim());
}

/**
 * The example tokens of a relay.yaml are public (they are in the repository): a relay that others
 * can reach must not accept them. A config error naming each, unless it listens on loopback only.
 */
export function exposedExampleTokens(cfg: RelayConfig): ConfigError | undefined {
  if (!cfg.exampleTokens.length || isLoopbackHost(cfg.server.host)) return undefined;
  return new ConfigError(
    cfg.exampleTokens.map((i) => ({
      ...i,
      message:
        `${i.message}, while server.host ${cfg.server.host} lets others reach the relay: set the ` +
        'variable, or listen on 127.0.0.1 to try it (start --insecure-example-tokens runs anyway)',
    })),
  );
}

/** Why a token is too easy to guess for a relay others can reach; undefined if it is not. */
export function tokenWeakness(token: string): string | undefined {
  if (token.length < 24) return `it has ${token.length} characters, fewer than 24`;
  if (new Set(token).size < 8) return 'it has fewer than 8 different characters';
  const classes = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^a-zA-Z0-9]/].filter((r) => r.test(token));
  if (classes.length < 2)
    return 'it is all one kind of character (only lower-case letters, only capitals, or only digits)';
  return undefined;
}

const MAKE_ONE =
  'make one with `openssl rand -hex 32` (or `npx callrelay init`, which writes fresh ones to .env)';

/**
 * A relay others can reach (server.host not loopback) needs tokens nobody can guess, and
 * metrics.token while /metrics is on: a config error naming each place, else undefined.
 */
export function exposedWeakSecrets(cfg: RelayConfig): ConfigError | undefined {
  if (isLoopbackHost(cfg.server.host)) return undefined;
  const issues = [...cfg.weakTokens, ...(cfg.openMetrics ? [cfg.openMetrics] : [])];
  if (!issues.length) return undefined;
  return new ConfigError(
    issues.map((i) => ({
      ...i,
      message: `${i.message}, while server.host ${cfg.server.host} lets others reach the relay: ${MAKE_ONE}, or listen on 127.0.0.1`,
    })),
  );
}

/**
 * The relay.yaml a command reads without --config: $RELAY_CONFIG, else ./config/relay.yaml (what
 * `callrelay init` writes) when it exists, else ./relay.yaml (the quick start's).
 */
export function defaultConfigPath(
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): string {
  if (env.RELAY_CONFIG) return resolve(cwd, env.RELAY_CONFIG);
  const own = resolve(cwd, 'config', 'relay.yaml');
  return existsSync(own) ? own : resolve(cwd, 'relay.yaml');
}

/**
 * A dry-run target's credential (targets[i].token, ...): a sandbox answers its requests, so a
 * variable left unset there stands for nothing (HubSpot's and Pipedrive's alike).
 */
/** A target's credential field; `auth` holds a REST recipe's, whatever the recipe names them. */
const CREDENTIAL_KEY = /token|secret|key|password|^auth$/i;

function dryRunCredential(p: (string | number)[], doc: Document): boolean {
  const [top, i, key] = p;
  return (
    top === 'targets' &&
    typeof i === 'number' &&
    typeof key === 'string' &&
    CREDENTIAL_KEY.test(key) &&
    doc.getIn(['targets', i, 'dryRun']) === true
  );
}

/** What a configured target can do for 3CX's CRM lookups, as its type's spec says. */
const contactsOf = (t: CommonTargetConfig & Record<string, unknown>): ContactAbility =>
  targetSpec(t.type)?.contacts?.(t) ?? { find: false, create: false };

export interface ContactAbility {
  find: boolean;
  create: boolean;
}

/**
 * sources[].crm: the targets crm.lookup and crm.createIn name exist (a slip gets a suggestion),
 * and, with `capabilities`, can look contacts up or create them, and a crm: without lookup has a
 * target that can look contacts up. Commands that only read (`3cx-template`) leave the
 * capabilities out: printing the template needs no working CRM.
 */
/** The adapter of the 3CX CRM template's journal posts (adapters/3cx-crm-template.yaml). */
export const JOURNAL_ADAPTER = '3cx-crm-template';

export function crmIssues(
  y: LoadedYaml,
  sources: readonly { crm?: { lookup?: string[] | undefined; createIn?: string | undefined } }[],
  targets: readonly (CommonTargetConfig & Record<string, unknown>)[],
  can: (t: CommonTargetConfig & Record<string, unknown>) => ContactAbility,
  opts: { capabilities: boolean },
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const names = targets.map((t) => t.name);
  const finders = targets.filter((t) => can(t).find).map((t) => t.name);
  const creators = targets.filter((t) => can(t).create).map((t) => t.name);
  const listed = (l: string[]): string => (l.length ? l.join(', ') : 'none');
  /** The target a name means, or an issue at `path`. */
  const named = (name: string, path: (string | number)[]) => {
    const t = targets.find((x) => x.name === name);
    if (!t) {
      const near = nearest(name, names);
      issues.push(
        issueAt(
          y,
          path,
          `no target "${name}" under targets:${near ? ` (did you mean "${near}"?)` : ''} (targets: ${listed(names)})`,
        ),
      );
    }
    return t;
  };
  sources.forEach((s, i) => {
    if (!s.crm) return;
    s.crm.lookup?.forEach((name, j) => {
      const path = ['sources', i, 'crm', 'lookup', j];
      const t = named(name, path);
      if (t && opts.capabilities && !can(t).find)
        issues.push(
          issueAt(
            y,
            path,
            `target "${name}" (${t.type}) cannot look contacts up; those that can: ${listed(finders)}`,
          ),
        );
    });
    if (s.crm.createIn !== undefined) {
      const path = ['sources', i, 'crm', 'createIn'];
      const t = named(s.crm.createIn, path);
      if (t && opts.capabilities && !can(t).create)
        issues.push(
          issueAt(
            y,
            path,
            `target "${t.name}" (${t.type}) cannot create contacts; those that can: ${listed(creators)}`,
          ),
        );
    }
    if (!s.crm.lookup && opts.capabilities && !finders.length)
      issues.push(
        issueAt(
          y,
          ['sources', i, 'crm'],
          'crm: answers 3CX from targets that look contacts up (hubspot, pipedrive, a recipe ' +
            `with a contact lookup), and none of targets: can (targets: ${listed(names)}); ` +
            'for journaling only, say lookup: []',
        ),
      );
  });
  return issues;
}

/**
 * Which source places an agent's click-to-call (agents/dial.tsx): the one they name, which must
 * have pbx:, or else the only source with pbx:. Ambiguous (several have one) is an error at the
 * agent; none with pbx: is fine (their page says click-to-call is not set up). And the sources
 * an agent's calls come through (sources:) must exist.
 */
function agentSourceIssues(y: LoadedYaml, cfg: RelayConfigParsed): ConfigIssue[] {
  const dialling = cfg.sources.filter((s) => s.pbx).map((s) => s.name);
  const names = cfg.sources.map((s) => s.name);
  const issues: ConfigIssue[] = [];
  cfg.agents.forEach((a, i) => {
    // The sources their calls come through (calls.ts): each one under sources:.
    a.sources?.forEach((name, j) => {
      if (names.includes(name)) return;
      const near = nearest(name, names);
      issues.push(
        issueAt(
          y,
          ['agents', i, 'sources', j],
          `no source "${name}" under sources:${near ? ` (did you mean "${near}"?)` : ''} (sources: ${names.join(', ')})`,
        ),
      );
    });
    if (a.source === undefined) {
      if (dialling.length > 1)
        issues.push(
          issueAt(
            y,
            ['agents', i],
            `several sources can place calls (${dialling.join(', ')}): say which one dials for extension ${a.extension} with source:`,
          ),
        );
      return;
    }
    if (dialling.includes(a.source)) return;
    const near = nearest(a.source, names);
    issues.push(
      issueAt(
        y,
        ['agents', i, 'source'],
        names.includes(a.source)
          ? `source ${a.source} has no pbx: (url and key), so it cannot place calls${dialling.length ? ` (sources with pbx: ${dialling.join(', ')})` : ''}`
          : `no source "${a.source}" under sources:${near ? ` (did you mean "${near}"?)` : ''}`,
      ),
    );
  });
  return issues;
}

/**
 * `readOnly`: for commands that only read (and queue in) the store, a variable left unset outside
 * `store` (a CRM token, the admin token) is not an error; only `start` and `check` need them all.
 */
export function loadConfig(
  path: string,
  env: NodeJS.ProcessEnv = process.env,
  opts: { readOnly?: boolean } = {},
): RelayConfig {
  const abs = resolve(path);
  const y = loadYamlFile(abs, {
    env,
    unsetAllowed: (p, doc) => (opts.readOnly && p[0] !== 'store') || dryRunCredential(p, doc),
  });
  const dir = dirname(abs);
  const rel = (p: string): string => (isAbsolute(p) ? p : resolve(dir, p));
  const adaptersDirOf = (given: unknown): string =>
    typeof given === 'string' && given
      ? rel(given)
      : existsSync(resolve(dir, 'adapters'))
        ? resolve(dir, 'adapters')
        : BUNDLED_ADAPTERS;
  let cfg;
  try {
    cfg = validateYaml(y, RelayConfigSchema);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // The adapters' errors too, so that one `check` shows everything there is to fix.
    const given = (y.value as { adapters?: unknown } | null)?.adapters;
    try {
      loadAdapterDir(adaptersDirOf(given));
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      throw new ConfigError([...err.issues, ...e.issues]);
    }
    throw err;
  }
  const adaptersDir = adaptersDirOf(cfg.adapters);

  const issues: ConfigIssue[] = [];
  let byName = new Map<string, LoadedAdapter>();
  try {
    byName = loadAdapterDir(adaptersDir);
    if (adaptersDir !== BUNDLED_ADAPTERS)
      for (const [n, a] of loadAdapterDir(BUNDLED_ADAPTERS)) if (!byName.has(n)) byName.set(n, a);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    issues.push(...err.issues);
  }
  const byFile = new Map([...byName.values()].map((a) => [adapterFileName(a), a]));

  const sources: ResolvedSource[] = [];
  cfg.sources.forEach((s, i) => {
    let adapter: LoadedAdapter | undefined;
    if (/[\\/]|\.ya?ml$/.test(s.adapter)) {
      try {
        adapter = loadAdapter(rel(s.adapter));
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        issues.push(...err.issues);
        return;
      }
    } else adapter = byName.get(s.adapter) ?? byFile.get(s.adapter);
    if (!adapter) {
      const known = [...byName.keys()].sort().join(', ') || 'none';
      issues.push(
        issueAt(
          y,
          ['sources', i, 'adapter'],
          `no adapter "${s.adapter}" in ${adaptersDir} (known: ${known})`,
        ),
      );
      return;
    }
    // The template journals calls to the URL of the source it was made for: the source that
    // answers 3CX's lookups must also understand its ReportCall posts.
    if (s.crm && adapter.name !== JOURNAL_ADAPTER)
      issues.push(
        issueAt(
          y,
          ['sources', i, 'adapter'],
          `crm: is 3CX's CRM template integration, which journals calls to this source: its adapter must be ${JOURNAL_ADAPTER}, not ${adapter.name}. For the WebAPI add-on keep a source of its own, and name it in crm.joinCallsOf (docs/3cx-template.md)`,
        ),
      );
    if (s.signature?.scheme === 'twilio' && !s.signature.publicUrl && !cfg.server.publicUrl)
      issues.push(
        issueAt(
          y,
          ['sources', i, 'signature'],
          'Twilio signs the URL it calls: set server.publicUrl (or signature.publicUrl) to the ' +
            'address Twilio reaches the relay at, e.g. https://relay.example.com',
        ),
      );
    sources.push({
      name: s.name,
      token: s.token,
      adapter,
      recordings: s.recordings,
      ...(s.pbx ? { pbx: s.pbx } : {}),
      ...(s.crm ? { crm: s.crm } : {}),
      guard: {
        allowIps: s.allowIps,
        // Twilio signs the URL it called: the relay's public one, unless the source names its own.
        signature:
          s.signature?.scheme === 'twilio'
            ? { ...s.signature, publicUrl: s.signature.publicUrl ?? cfg.server.publicUrl }
            : s.signature,
        rateLimit: s.rateLimit,
      },
      timezone: s.timezone ?? adapter.def.defaults.timezone ?? 'UTC',
      defaultCountry: (s.defaultCountry ?? adapter.def.defaults.defaultCountry) as
        CountryCode | undefined,
    });
  });
  // The agent directory: every target that maps extensions to CRM users gets its entries with an
  // email, and its own `agents` entries win (a CRM where someone has another address).
  const directory = Object.fromEntries(
    cfg.agents.filter((a) => a.email).map((a) => [a.extension, a.email!]),
  );
  const targets = cfg.targets.map((given, i) => {
    const spec = targetSpec(given.type)!;
    const raw =
      'agents' in spec.configSchema.shape
        ? {
            ...given,
            agents: { ...directory, ...(given as { agents?: Record<string, string> }).agents },
          }
        : given;
    const prepared = spec.prepare?.(raw, {
      yaml: y,
      path: ['targets', i],
      configDir: dirname(abs),
    });
    if (prepared) issues.push(...prepared.issues);
    const t = { ...raw, ...prepared?.config };
    const d = { ...spec.defaults, ...prepared?.defaults };
    return {
      ...t,
      deliverOn: t.deliverOn ?? d.deliverOn,
      settleSec: t.settleSec ?? d.settleSec,
      rateLimit: t.rateLimit ?? d.rateLimit,
      concurrency: t.concurrency ?? d.concurrency,
    } as CommonTargetConfig & Record<string, unknown>;
  });
  // A CRM credential that fell back to relay.yaml's default is a placeholder for dry runs: a
  // target that really sends needs the variable set.
  if (!opts.readOnly)
    for (const f of y.envFallbacks) {
      const [top, i, key] = f.path;
      if (top !== 'targets' || typeof i !== 'number' || targets[i]?.dryRun !== false) continue;
      if (typeof key === 'string' && CREDENTIAL_KEY.test(key))
        issues.push(
          issueAt(
            y,
            f.path,
            `${f.path.join('.')} is the example default of \${${f.name}}: set ${f.name} (in the environment or .env), or dryRun: true to try without the CRM`,
          ),
        );
    }
  const targetNames = new Set(targets.map((t) => t.name));
  const sourceNames = new Set(cfg.sources.map((s) => s.name));
  (cfg.routes ?? []).forEach((r, i) => {
    r.targets.forEach((t, j) => {
      if (!targetNames.has(t))
        issues.push(issueAt(y, ['routes', i, 'targets', j], `no target "${t}" under targets:`));
    });
    r.sources?.forEach((s, j) => {
      if (!sourceNames.has(s))
        issues.push(issueAt(y, ['routes', i, 'sources', j], `no source "${s}" under sources:`));
    });
  });
  // A journal joins the calls of another source (the add-on's): one that exists, and not itself.
  cfg.sources.forEach((s, i) => {
    const of = s.crm?.joinCallsOf;
    if (of === undefined || (of !== s.name && sourceNames.has(of))) return;
    const near = nearest(
      of,
      [...sourceNames].filter((n) => n !== s.name),
    );
    issues.push(
      issueAt(
        y,
        ['sources', i, 'crm', 'joinCallsOf'],
        of === s.name
          ? `joinCallsOf names the source itself: name the source of the same PBX's WebAPI add-on`
          : `no source "${of}" under sources:${near ? ` (did you mean "${near}"?)` : ''}`,
      ),
    );
  });
  issues.push(...crmIssues(y, cfg.sources, targets, contactsOf, { capabilities: !opts.readOnly }));
  issues.push(...agentSourceIssues(y, cfg));
  const tls = cfg.server.tls && { cert: rel(cfg.server.tls.cert), key: rel(cfg.server.tls.key) };
  if (tls) {
    const problem = certificateProblem(tls);
    if (problem) issues.push(issueAt(y, ['server', 'tls', problem.field], problem.message));
  }
  if (cfg.server.publicUrl && !cfg.server.urlSecret && !cfg.admin.token)
    issues.push(
      issueAt(
        y,
        ['server', 'publicUrl'],
        'recording links under publicUrl are signed with server.urlSecret (or admin.token): set one',
      ),
    );
  const oidc = cfg.auth.oidc;
  if (oidc) {
    // The provider sends the agent back to a fixed address, and sessions are keyed by the token.
    if (!cfg.server.publicUrl)
      issues.push(
        issueAt(
          y,
          ['auth', 'oidc'],
          'company sign-in needs server.publicUrl: the provider sends agents back to ' +
            '<publicUrl>/agent/oidc/callback',
        ),
      );
    if (!cfg.admin.token)
      issues.push(
        issueAt(
          y,
          ['auth', 'oidc'],
          'company sign-in needs admin.token: agent sessions are keyed by it (without it the ' +
            'console and agent pages are off)',
        ),
      );
    const issuer = new URL(oidc.issuer);
    if (issuer.protocol !== 'https:' && !isLoopbackHost(issuer.hostname))
      issues.push(
        issueAt(
          y,
          ['auth', 'oidc', 'issuer'],
          'the issuer must be https (http only for a provider on this machine: 127.0.0.1, localhost)',
        ),
      );
  }
  if (issues.length) throw new ConfigError(issues);
  const routes: Route[] = cfg.routes ?? (targets.length ? [{ targets: [...targetNames] }] : []);
  // Target credentials are checked above: a fallback there is a dry run's placeholder.
  const exampleTokens = y.envFallbacks.filter(
    (f) => f.path.at(-1) === 'token' && f.path[0] !== 'targets',
  );

  return {
    file: y.file,
    server: { ...cfg.server, tls },
    links: cfg.server.publicUrl
      ? {
          publicUrl: cfg.server.publicUrl.replace(/\/+$/, ''),
          // A secret of its own for links, derived when not given: the admin token itself
          // never becomes a signing key that an outsider could test guesses against.
          secret:
            cfg.server.urlSecret ??
            createHmac('sha256', cfg.admin.token!).update('callrelay links').digest('base64url'),
          ttlDays: cfg.server.linkTtlDays,
        }
      : undefined,
    store: cfg.store.postgres
      ? {
          postgres: cfg.store.postgres,
          maxEventsPerCall: cfg.store.maxEventsPerCall,
          keepRequestsDays: cfg.store.keepRequestsDays,
        }
      : {
          sqlite: rel(cfg.store.sqlite ?? 'data/relay.db'),
          maxSizeMB: cfg.store.maxSizeMB,
          busyTimeoutMs: cfg.store.busyTimeoutMs,
          maxEventsPerCall: cfg.store.maxEventsPerCall,
          keepRequestsDays: cfg.store.keepRequestsDays,
        },
    archive: sources.some((s) => s.recordings.archive)
      ? {
          dir: rel(
            cfg.store.recordingsDir ??
              (cfg.store.postgres
                ? 'recordings'
                : join(dirname(cfg.store.sqlite ?? 'data/relay.db'), 'recordings')),
          ),
          keepDays: cfg.store.keepRecordingsDays,
        }
      : undefined,
    adminToken: cfg.admin.token,
    sessions: {
      idleMs: cfg.admin.sessionIdleMin * 60_000,
      maxMs: cfg.admin.sessionMaxHours * 3600_000,
    },
    logLevel: cfg.log.level,
    logFormat: cfg.log.format,
    logBufferLimit: cfg.log.bufferLimit,
    adaptersDir,
    sources,
    agents: cfg.agents,
    oidc:
      oidc && cfg.server.publicUrl
        ? {
            ...oidc,
            redirectUri: `${cfg.server.publicUrl.replace(/\/+$/, '')}/agent/oidc/callback`,
          }
        : undefined,
    targets,
    routing: {
      targets: Object.fromEntries(
        targets.map((t) => [t.name, { deliverOn: t.deliverOn, settleSec: t.settleSec }]),
      ),
      routes,
    },
    delivery: cfg.delivery,
    calls: cfg.calls,
    dial: cfg.dial,
    metrics: cfg.metrics,
    envFallbacks: y.envFallbacks,
    exampleTokens: exampleTokens.map((f) =>
      issueAt(y, f.path, `${f.path.join('.')} is the example default of \${${f.name}}`),
    ),
    weakTokens: (
      [
        [['admin', 'token'], cfg.admin.token],
        [['metrics', 'token'], cfg.metrics.token],
        ...cfg.sources.map((s, i) => [['sources', i, 'token'], s.token] as const),
      ] as const
    ).flatMap(([path, token]) => {
      const weak = token === undefined ? undefined : tokenWeakness(token);
      // An example default is reported as such (start --insecure-example-tokens may allow it).
      const example = exampleTokens.some((f) => f.path.join('.') === path.join('.'));
      return weak && !example
        ? [issueAt(y, path, `${path.join('.')} is easy to guess: ${weak}`)]
        : [];
    }),
    openMetrics:
      cfg.metrics.enabled && !cfg.metrics.token
        ? issueAt(
            y,
            // Where the reader can fix it: the metrics section, or the host that exposes it.
            (y.value as { metrics?: unknown } | null)?.metrics ? ['metrics'] : ['server', 'host'],
            '/metrics is on without metrics.token: set one (Prometheus sends it as a bearer ' +
              'token), or metrics.enabled: false',
          )
        : undefined,
  };
}
