// The shape of relay.yaml, as a zod schema: it validates the file at start and in `callrelay
// check`, and generates config/relay.schema.json for editors.

import { z } from 'zod';
import { DEFAULT_DIAL_TYPES, NUMBER_TYPES } from '../domain/dial.js';
import { DEFAULT_MAX_EVENTS_PER_CALL } from '../domain/inbox.js';
import { Country, TimeZone } from '../domain/values.js';
import { parseHostRule } from '../lib/hosts.js';
import { parseCidr } from '../lib/ips.js';
import { SIGNATURE_SCHEMES, standardWebhooksKey } from '../lib/signature.js';
import { TargetConfigSchema } from '../targets/registry.js';

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  kib: 1024,
  mb: 1e6,
  mib: 1024 ** 2,
  gb: 1e9,
  gib: 1024 ** 3,
};

export function parseSize(v: number | string): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v > 0 ? v : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v);
  const unit = SIZE_UNITS[(m?.[2] || 'b').toLowerCase()];
  return m && unit ? Math.floor(Number(m[1]) * unit) : undefined;
}

const Size = z
  .union([z.number().int().positive(), z.string()])
  .refine((v) => parseSize(v) !== undefined, {
    message: 'expected a size such as 1048576, "512KiB" or "1MiB"',
  })
  .transform((v) => parseSize(v)!)
  .meta({ description: 'Bytes, or a string with a unit: B, KB, KiB, MB, MiB, GB, GiB.' });

const Cidrs = z
  .array(
    z.string().refine((e) => parseCidr(e) !== undefined, {
      message:
        'expected an IP address or a CIDR block: "203.0.113.7", "10.0.0.0/8", "2001:db8::/32"',
    }),
  )
  .meta({ description: 'IPv4 and IPv6 addresses and CIDR blocks.' });

const Token = z
  .string()
  .min(8, { message: 'a token needs at least 8 characters' })
  .meta({ description: 'Shared secret. Use ${ENV_VAR} rather than writing it here.' });

const Secret = z.string().min(8).meta({ description: 'The signing secret. Use ${ENV_VAR}.' });
const Tolerance = z.number().int().positive().default(300).meta({
  description: "How far the signed time may be from the relay's clock, in seconds.",
});

/** sources[].signature: the generic HMAC (no scheme), or a provider's own way of signing. */
const SourceSignature = z
  .discriminatedUnion(
    'scheme',
    [
      z.strictObject({
        scheme: z.literal('hmac').optional().meta({ description: 'The generic HMAC (default).' }),
        header: z.string().min(1).meta({ description: 'Header with the signature.' }),
        algorithm: z.enum(['sha1', 'sha256', 'sha512']).default('sha256'),
        encoding: z.enum(['hex', 'base64']).default('hex'),
        secret: Secret,
        prefix: z
          .string()
          .optional()
          .meta({ description: 'Text before the digest in the header, e.g. "sha256=".' }),
        timestampHeader: z.string().optional().meta({
          description:
            'Header with the signing time (Unix seconds); the signed text is then "<time>.<body>".',
        }),
        toleranceSec: Tolerance,
      }),
      z.strictObject({
        scheme: z.literal('twilio').meta({
          description: 'X-Twilio-Signature: HMAC-SHA1 of the URL Twilio called and its parameters.',
        }),
        secret: Secret.meta({ description: "The Twilio account's Auth Token. Use ${ENV_VAR}." }),
        publicUrl: z
          .url({ protocol: /^https?$/ })
          .optional()
          .meta({
            description:
              'The relay as Twilio calls it (default: server.publicUrl); the URL checked is this ' +
              "plus the request's path and query, so a proxy in front changes nothing.",
          }),
      }),
      z.strictObject({
        scheme: z.literal('standard-webhooks').meta({
          description: 'webhook-id, webhook-timestamp, webhook-signature (v1, HMAC-SHA256).',
        }),
        secret: Secret.refine((s) => standardWebhooksKey(s).length > 0, {
          message: 'expected a Standard Webhooks secret: "whsec_" and base64',
        }).meta({ description: 'The endpoint secret, "whsec_<base64>". Use ${ENV_VAR}.' }),
        toleranceSec: Tolerance,
      }),
      z.strictObject({
        scheme: z.literal('stripe').meta({
          description: 'A header "t=<time>,v1=<hex>": HMAC-SHA256 of "<time>.<body>".',
        }),
        secret: Secret,
        header: z.string().min(1).default('Stripe-Signature'),
        toleranceSec: Tolerance,
      }),
      z.strictObject({
        scheme: z.literal('payload-token').meta({
          description: 'A token inside the JSON body (Aircall: "token"), compared with the secret.',
        }),
        secret: Secret.meta({ description: 'The token the provider sends. Use ${ENV_VAR}.' }),
        path: z
          .string()
          .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, {
            message: 'a dotted path of field names, e.g. "token" or "meta.token"',
          })
          .default('token')
          .meta({ description: 'Where the token is in the JSON body (default "token").' }),
      }),
      z.strictObject({
        scheme: z.literal('zoom').meta({
          description:
            'x-zm-signature "v0=<hex>", and the answer to Zoom\'s endpoint.url_validation.',
        }),
        secret: Secret.meta({ description: "The Zoom app's Secret Token. Use ${ENV_VAR}." }),
        toleranceSec: Tolerance,
      }),
    ],
    {
      error: (iss) => {
        if (iss.code !== 'invalid_union') return undefined;
        const given = (iss.input as { scheme?: unknown } | undefined)?.scheme;
        return `unknown signature scheme ${JSON.stringify(given)}; supported: ${SIGNATURE_SCHEMES.join(', ')}`;
      },
    },
  )
  .meta({
    description:
      'For providers that sign: a request whose signature does not hold gets 401 and is not ' +
      'stored (the token is still required). Without scheme: an HMAC of the raw body with the ' +
      'secret (docs/signatures.md has the presets).',
  });

export const SourceConfig = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, {
        message: 'lower-case letters, digits, - and _ (it is part of the URL)',
      })
      .meta({ description: 'Part of the webhook URL: /hooks/<name>.' }),
    adapter: z
      .string()
      .min(1)
      .meta({ description: 'Adapter name (adapters/<name>.yaml) or a path to an adapter file.' }),
    token: Token.meta({
      description:
        'Accepted in the path (/hooks/<name>/<token>), as Authorization: Bearer, or as ?token=.',
    }),
    timezone: TimeZone.optional().meta({
      description: "The provider's local time zone (default: the adapter's, else UTC).",
    }),
    defaultCountry: Country.optional().meta({
      description: "Country for numbers sent without a country code (default: the adapter's).",
    }),
    allowIps: Cidrs.min(1)
      .optional()
      .meta({
        description:
          "Only these senders (the PBX, the provider's published ranges) may post; others get 403 " +
          'before their token is looked at. The sender is the connecting address, or what ' +
          'server.trustProxy proxies report. Default: any address.',
      }),
    signature: SourceSignature.optional(),
    rateLimit: z
      .strictObject({
        perSecond: z.number().positive(),
        burst: z.number().int().positive().optional().meta({
          description: "Requests allowed at once above the rate (default: one second's worth).",
        }),
      })
      .optional()
      .meta({
        description:
          'Webhooks with the right token beyond this rate get 429 with Retry-After (the sender ' +
          'retries), per instance. Requests without the token are not counted, so they cannot ' +
          "use up the real sender's allowance.",
      }),
    recordings: z
      .strictObject({
        allowHosts: z
          .array(
            z.string().refine((h) => parseHostRule(h) !== undefined, {
              message:
                'expected a host, optionally with a port, an http:// prefix and a plain path ' +
                '(no "..", "%2F"): "pbx.example.com", "pbx.example.com:5001", ' +
                '"http://192.168.1.10:5000", "*.example.com", ' +
                '"https://pbx.example.com:5001/webapi/recording/"',
            }),
          )
          .default([])
          .meta({
            description:
              'Where recordings may be fetched from (for targets that upload them); none: never ' +
              'fetch. Scheme, host and port must all match: HTTPS on 443 unless an entry names a ' +
              'port, plain HTTP only for an entry written "http://host[:port]". An entry with a ' +
              'path ("https://pbx:5001/webapi/recording/") allows only URLs under it, whole ' +
              "segments: the PBX's credentials go nowhere else on it.",
          }),
        allowPrivateAddresses: z
          .boolean()
          .default(false)
          .meta({
            description:
              'Let a host named by DNS resolve to a loopback or private address (a PBX on the LAN ' +
              'by name). An entry that is an IP address allows that address anyway.',
          }),
        bearer: z.string().optional().meta({
          description: 'Authorization: Bearer for the PBX, if its recording URLs need it.',
        }),
        basic: z
          .strictObject({ user: z.string(), password: z.string() })
          .optional()
          .meta({ description: 'HTTP Basic credentials for the PBX.' }),
        maxMB: z.number().positive().default(50).meta({
          description: 'Larger recordings are not fetched (the URL still goes to the CRM).',
        }),
        archive: z
          .boolean()
          .default(false)
          .meta({
            description:
              'Fetch each recording once when a call announces it and keep it (store.recordingsDir) ' +
              "for store.keepRecordingsDays: links play it after the PBX's own retention.",
          }),
      })
      .prefault({})
      .meta({ description: "Fetching this source's recordings (Pipedrive uploads the audio)." }),
    pbx: z
      .strictObject({
        url: z.url({ protocol: /^https?$/ }).meta({
          description: "The PBX's web address, as in https://pbx.example.com:5001 (3CX WebAPI).",
        }),
        key: z.string().min(4).meta({
          description: "The WebAPI key of the add-on's ini file. Use ${ENV_VAR}.",
        }),
        timeoutSec: z.number().positive().default(10),
      })
      .optional()
      .meta({
        description:
          'Click-to-call through this PBX (3CX makecall): POST /api/dial, callrelay dial, dial ' +
          'links; which numbers it may dial is under dial:.',
      }),
    crm: z
      .strictObject({
        lookup: z
          .array(z.string())
          .optional()
          .meta({
            description:
              'The targets whose contacts answer, asked in this order until one knows the number ' +
              '(default: every target that can look contacts up, in relay.yaml order). []: ' +
              'journaling only; every lookup answers "not found".',
          }),
        cacheSec: z
          .number()
          .min(0)
          .default(300)
          .meta({
            description:
              'How long an answer is remembered (a miss: a fifth as long, so that a contact just ' +
              'added is found soon). 0: ask the CRM every time.',
          }),
        answerWithinMs: z
          .number()
          .int()
          .min(50)
          .max(30_000)
          .default(2000)
          .meta({
            description:
              'A CRM that has not answered by then gives "not found" (3CX shows the bare number ' +
              'rather than an error); its answer, when it comes, is remembered for the next ring.',
          }),
        createIn: z
          .string()
          .optional()
          .meta({
            description:
              "The target where 3CX's Web Client may create contacts (CreateContactRecordFromClient). " +
              'Default: off.',
          }),
        joinCallsOf: z
          .string()
          .optional()
          .meta({
            description:
              "The source of the same PBX's WebAPI add-on, if it also feeds the relay: a journaled " +
              'call (ReportCall) that matches one of its calls (same external number and agent, ' +
              'start within joinWithinSec) folds into that call instead of making a second record.',
          }),
        joinWithinSec: z.number().min(0).max(600).default(10).meta({
          description: 'How far apart the two starts of one call may be (clocks, rounding).',
        }),
      })
      .optional()
      .meta({
        description:
          "3CX's own CRM integration answered by the relay (docs/3cx-template.md): caller names " +
          'and contact links from the CRM targets at ring time, contact search, and call ' +
          'journaling without the WebAPI add-on. `callrelay 3cx-template --source NAME` prints ' +
          'the template to upload.',
      }),
  })
  .meta({ description: 'A telephony system that posts webhooks to the relay.' });

const uniqueNames =
  (what: string) =>
  (list: { name: string }[], ctx: z.RefinementCtx): void => {
    const seen = new Set<string>();
    list.forEach((s, i) => {
      if (seen.has(s.name))
        ctx.addIssue({
          code: 'custom',
          path: [i, 'name'],
          message: `duplicate ${what} name "${s.name}"`,
        });
      seen.add(s.name);
    });
  };

export const RouteSchema = z
  .strictObject({
    sources: z
      .array(z.string())
      .min(1)
      .optional()
      .meta({ description: 'Source names (default: every source).' }),
    targets: z.array(z.string()).min(1).meta({ description: 'Target names.' }),
    filter: z
      .strictObject({
        direction: z
          .array(z.enum(['inbound', 'outbound']))
          .min(1)
          .optional(),
        outcome: z
          .array(z.enum(['answered', 'missed', 'busy', 'failed']))
          .min(1)
          .optional(),
        minDurationSec: z.number().min(0).optional(),
        agents: z
          .array(z.coerce.string())
          .min(1)
          .optional()
          .meta({ description: 'Only calls handled last by these agents.' }),
      })
      .optional(),
  })
  .meta({
    description:
      'Which calls go where, e.g. only answered inbound calls longer than 5 s to Pipedrive.',
  });

export const RelayConfigSchema = z
  .strictObject({
    $schema: z.string().optional(),
    server: z
      .strictObject({
        port: z.number().int().min(0).max(65535).default(8080),
        host: z.string().default('0.0.0.0'),
        bodyLimit: Size.default(1024 * 1024),
        requestTimeoutSec: z
          .number()
          .positive()
          .max(3600)
          .default(30)
          .meta({
            description:
              'A request (headers and body) must arrive within this; a client that dribbles is ' +
              'cut off (408) instead of holding memory and a connection.',
          }),
        trustProxy: Cidrs.default([]).meta({
          description:
            'Proxies (load balancer, reverse proxy) whose X-Forwarded-For is believed for a ' +
            "source's allowIps and the throttle of wrong admin tokens; from any other peer the " +
            'header is ignored. Default: none.',
        }),
        maxConnections: z
          .number()
          .int()
          .positive()
          .default(512)
          .meta({
            description:
              'Open connections at most. When all are taken, a new one takes the place of one ' +
              'that has gone over a second without a request (headers dribbling in, or idle), ' +
              'or is refused (senders retry).',
          }),
        maxConnectionsPerAddress: z
          .number()
          .int()
          .positive()
          .default(64)
          .meta({
            description:
              'Open connections one client address may hold; more from it are refused, so that ' +
              'one slow or greedy client cannot take the connections webhooks need. Proxies in ' +
              'trustProxy are exempt (everyone comes through them): only maxConnections bounds them.',
          }),
        bodyIdleSec: z
          .number()
          .positive()
          .max(3600)
          .default(10)
          .meta({
            description:
              'A request body that goes this long without a byte arriving is cut off (408), ' +
              'rather than holding its connection until requestTimeoutSec.',
          }),
        bodyMinRate: z
          .number()
          .int()
          .min(0)
          .default(500)
          .meta({
            description:
              'Bytes a second a request body must average, after a grace of bodyIdleSec, or it is ' +
              'cut off (408): a body dribbled a byte a second never goes idle, but is cut by ' +
              'this. 0: no minimum. The default is far below any real link.',
          }),
        webhookReserve: z
          .union([z.number().int().min(0), z.string().regex(/^(100|[1-9]?\d)%$/)])
          .default('25%')
          .meta({
            description:
              'Of maxConnections, how many (a count, or a share such as "25%") only webhooks ' +
              '(/hooks/...) and /healthz, /readyz may use: other requests under way hold at ' +
              'most maxConnections minus this; one more is answered 503 (RELAY_ERR_BUSY) and ' +
              'its connection closed, so clients of the console cannot take every connection. ' +
              '0: no reserve.',
          }),
        consolePort: z
          .number()
          .int()
          .min(0)
          .max(65535)
          .optional()
          .meta({
            description:
              'Serve the console and the admin API (/console, /api) on this port instead, with ' +
              'connections of its own (maxConnections each); server.port then takes webhooks, ' +
              'links, health and metrics only, and stays serviceable while the console is busy ' +
              'or attacked. Keep it off the internet (firewall, or a host of its own).',
          }),
        publicUrl: z
          .url({ protocol: /^https?$/ })
          .optional()
          .meta({
            description:
              'The relay as the internet reaches it (https://relay.example.com). Set, CRMs get ' +
              'recording links to the relay (<publicUrl>/recordings/<signed token>), which plays ' +
              'them from the PBX without showing its address or credentials.',
          }),
        urlSecret: z
          .string()
          .min(32, { message: 'a link secret needs at least 32 characters' })
          .optional()
          .meta({
            description:
              'Signs the links under publicUrl (default: derived from admin.token). Changing it ' +
              'revokes every link given out.',
          }),
        linkTtlDays: z
          .number()
          .positive()
          .optional()
          .meta({
            description:
              'Recording links expire this long after they were made (default: 365 days for a ' +
              'source that archives its recordings, 90 for one that does not).',
          }),
        tls: z
          .strictObject({
            cert: z.string().min(1).meta({
              description: 'PEM certificate chain (leaf first), relative to relay.yaml.',
            }),
            key: z.string().min(1).meta({ description: 'PEM private key of the certificate.' }),
          })
          .optional()
          .meta({
            description:
              'Serve HTTPS with these files, read again when they change (certbot renewals): no ' +
              'restart. Without it the relay speaks plain HTTP (put a proxy in front: docs/https.md).',
          }),
      })
      .prefault({}),
    store: z
      .strictObject({
        sqlite: z
          .string()
          .optional()
          .meta({ description: 'Path of the SQLite file, relative to relay.yaml.' }),
        maxSizeMB: z.number().positive().optional().meta({
          description:
            'SQLite: stop accepting (503) once the file reaches this size, before the disk is full.',
        }),
        busyTimeoutMs: z.number().int().min(0).default(5000).meta({
          description: "SQLite: how long a write waits for another process's lock before 503.",
        }),
        maxEventsPerCall: z
          .number()
          .int()
          .min(10)
          .max(100_000)
          .default(DEFAULT_MAX_EVENTS_PER_CALL)
          .meta({
            description:
              'Distinct events a call keeps; later ones are kept as raw requests only and the ' +
              'record is marked truncated, so that one runaway call cannot slow the others.',
          }),
        recordingsDir: z
          .string()
          .optional()
          .meta({
            description:
              'Where archived recordings are kept (sources[].recordings.archive), relative to ' +
              'relay.yaml; default: recordings/ beside the SQLite file, else beside relay.yaml.',
          }),
        keepRecordingsDays: z.number().min(0).default(365).meta({
          description: 'Archived recordings older than this are deleted; 0 keeps them.',
        }),
        keepRequestsDays: z
          .number()
          .min(0)
          .default(90)
          .meta({
            description:
              'Raw requests and events of calls ended and unchanged this long (and unmapped or ' +
              'ignored requests this old) are deleted; call records and their CRM ids stay. ' +
              '0 keeps everything.',
          }),
        postgres: z
          .string()
          .regex(/^postgres(ql)?:\/\//, { message: 'expected a postgres:// URL' })
          .optional()
          .meta({
            description: 'postgres:// URL (several instances share it). Use ${DATABASE_URL}.',
          }),
      })
      .refine((s) => !(s.sqlite && s.postgres), {
        message: 'choose one of store.sqlite and store.postgres',
      })
      .prefault({}),
    admin: z
      .strictObject({
        token: Token.optional().meta({
          description: 'Bearer token for /api/*. Without it the admin API is off.',
        }),
        sessionIdleMin: z
          .number()
          .positive()
          .max(7 * 24 * 60)
          .default(60)
          .meta({ description: 'A console session ends after this many minutes unused.' }),
        sessionMaxHours: z
          .number()
          .positive()
          .max(30 * 24)
          .default(12)
          .meta({
            description: 'A console session ends this many hours after sign-in, used or not.',
          }),
      })
      .prefault({}),
    auth: z
      .strictObject({
        oidc: z
          .strictObject({
            issuer: z.url({ protocol: /^https?$/ }).meta({
              description:
                'The OpenID Connect provider (https://accounts.google.com, ' +
                'https://login.microsoftonline.com/<tenant>/v2.0). http only for a loopback issuer.',
            }),
            clientId: z.string().min(1).meta({ description: "The relay's client ID there." }),
            clientSecret: z.string().min(1).meta({
              description:
                "The relay's client secret there. Use ${ENV_VAR} rather than writing it here.",
            }),
            scopes: z.string().min(1).default('openid email profile').meta({
              description: 'Scopes asked for (space-separated); openid and email are needed.',
            }),
            label: z.string().min(1).max(40).optional().meta({
              description:
                'The sign-in button says "Sign in with <label>" (default: the issuer\'s host).',
            }),
            domains: z
              .array(
                z.string().regex(/^[a-z0-9.-]+\.[a-z]{2,}$/i, {
                  message: 'expected a domain, such as example.com',
                }),
              )
              .min(1)
              .optional()
              .meta({
                description:
                  'Only emails of these domains may sign in (besides being in agents:). Default: ' +
                  'any. Needed for providers that do not say whether an email is verified ' +
                  '(email_verified; Microsoft Entra): without it their sign-ins are refused.',
              }),
          })
          .optional()
          .meta({
            description:
              'Agents sign in with their company account (OpenID Connect: Google Workspace, ' +
              'Microsoft Entra, ...), matched to agents: by email. The redirect URI to register ' +
              'is <server.publicUrl>/agent/oidc/callback.',
          }),
      })
      .prefault({})
      .meta({ description: 'How agents sign in to their page (docs/agents-sign-in.md).' }),
    log: z
      .strictObject({
        level: z
          .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
          .default('info'),
        format: z
          .enum(['auto', 'json', 'pretty'])
          .default('auto')
          .meta({
            description:
              'json: a JSON object per line (for log collectors); pretty: one readable line per ' +
              'entry; auto: pretty when the output is a terminal, else json.',
          }),
        bufferLimit: Size.default(8 * 1024 * 1024).meta({
          description:
            'Log output waiting for a reader that does not keep up (a full pipe) is held up to ' +
            'this size; further lines are dropped and counted (callrelay_log_lines_dropped_total, ' +
            'and a warning once the reader catches up) rather than stalling the relay.',
        }),
      })
      .prefault({}),
    adapters: z.string().optional().meta({
      description: 'Folder of adapter files, relative to relay.yaml (default: adapters).',
    }),
    sources: z
      .array(SourceConfig)
      .min(1, { message: 'at least one source is needed' })
      .superRefine(uniqueNames('source')),
    agents: z
      .array(
        z.strictObject({
          extension: z.coerce
            .string()
            .regex(/^\S+$/, { message: 'an extension has no spaces' })
            .meta({ description: 'The extension on the PBX (as its webhooks name it).' }),
          name: z.string().min(1).optional(),
          email: z
            .email({ message: 'expected an email address, such as alice@example.com' })
            .optional()
            .meta({
              description:
                "The person's email: targets find their CRM user by it (a target's own agents " +
                'entry for the extension wins).',
            }),
          source: z
            .string()
            .min(1)
            .optional()
            .meta({
              description:
                "The source (with pbx:) whose phone system places this agent's click-to-call " +
                'from their page. Default: the only source with pbx:; needed when several have one.',
            }),
          groups: z
            .array(z.coerce.string().regex(/^\S+$/, { message: 'a group number has no spaces' }))
            .optional()
            .meta({
              description:
                'Queues and ring groups the person answers (their numbers, as the webhooks name ' +
                "them): calls ringing there show on the person's agent page too.",
            }),
          sources: z
            .array(z.string().min(1))
            .min(1, { message: 'list at least one source, or leave sources: out for every one' })
            .optional()
            .meta({
              description:
                "The sources (PBXs) the person's calls come through: their agent page shows only " +
                "those sources' calls. Default: every source. List both sources of one 3CX (its " +
                'CRM template journal and its WebAPI add-on). Needed when two PBXs share extension ' +
                'numbers.',
            }),
        }),
      )
      .default([])
      .superRefine((list, ctx) => {
        const seen = new Map<string, number>();
        list.forEach((a, i) => {
          if (seen.has(a.extension))
            ctx.addIssue({
              code: 'custom',
              path: [i, 'extension'],
              message: `extension "${a.extension}" is listed twice (also entry ${seen.get(a.extension)! + 1})`,
            });
          else seen.set(a.extension, i);
        });
        // One person, one entry: company sign-in finds an agent by email, and sessions are bound
        // to it.
        const emails = new Map<string, number>();
        list.forEach((a, i) => {
          const email = a.email?.toLowerCase();
          if (email === undefined) return;
          if (emails.has(email))
            ctx.addIssue({
              code: 'custom',
              path: [i, 'email'],
              message: `email "${a.email}" is listed twice (also entry ${emails.get(email)! + 1})`,
            });
          else emails.set(email, i);
        });
      })
      .meta({
        description:
          'The people on the phones, once for every target: extension, name, email. Targets map ' +
          'extensions to CRM users from it unless their own agents entry says otherwise.',
      }),
    targets: z
      .array(TargetConfigSchema)
      .default([])
      .superRefine(uniqueNames('target'))
      .meta({ description: 'CRMs and endpoints calls are delivered to.' }),
    routes: z
      .array(RouteSchema)
      .optional()
      .meta({ description: 'Default: every source to every target.' }),
    delivery: z
      .strictObject({
        leaseSec: z.number().positive().default(300).meta({
          description:
            "How long an instance holds a delivery; a crashed one's work returns after this.",
        }),
        keepAttemptsDays: z
          .number()
          .min(0)
          .default(30)
          .meta({
            description:
              'How long each delivery attempt (request, status, error) is kept for the console and ' +
              'the API; 0 keeps them forever.',
          }),
      })
      .prefault({}),
    calls: z
      .strictObject({
        closeAfterMin: z
          .number()
          .min(0)
          .default(120)
          .meta({
            description:
              'Close a call after this many minutes without events when its end never came (a ' +
              'lost webhook): it is delivered as ended (missed, or answered with talk time ' +
              'unknown) and a late end event still updates it. 0 never closes one.',
          }),
      })
      .prefault({})
      .meta({ description: 'Calls whose end the phone system never reported.' }),
    dial: z
      .strictObject({
        allowTypes: z
          .array(z.enum(NUMBER_TYPES))
          .min(1)
          .default(DEFAULT_DIAL_TYPES)
          .meta({
            description:
              'The kinds of number click-to-call dials (default: fixed-line, mobile, ' +
              'fixed-line-or-mobile, toll-free). Premium-rate, shared-cost and the rest cost ' +
              'whoever pays the PBX: add them only if your agents must call them.',
          }),
        allowCountries: z
          .array(Country)
          .min(1)
          .optional()
          .meta({
            description:
              "Countries (ISO codes) whose numbers click-to-call dials. Default: the source's " +
              'defaultCountry only; a source without one dials nothing until this is set.',
          }),
        linkTtlDays: z
          .number()
          .positive()
          .default(30)
          .meta({
            description:
              'How long a link from `callrelay dial-link` works (its --days overrides). Links ' +
              'that never expire are no longer accepted.',
          }),
        perLinkPerMinute: z.number().int().positive().default(3).meta({
          description: 'Calls a minute one dial link may place (429 beyond), per instance.',
        }),
        perAgentPerMinute: z
          .number()
          .int()
          .positive()
          .default(6)
          .meta({
            description:
              'Calls a minute one extension may place, by every path together (links, the API, ' +
              'the console), per instance.',
          }),
      })
      .prefault({})
      .meta({
        description:
          'Click-to-call (sources with pbx:): which numbers it dials, how long links work, how ' +
          'many calls a minute. Checked before the PBX is asked, whichever way the call comes.',
      }),
    metrics: z
      .strictObject({
        enabled: z.boolean().default(true).meta({ description: 'Serve GET /metrics.' }),
        token: Token.optional().meta({
          description:
            'Bearer token for /metrics (Prometheus `authorization` / `bearer_token`). ' +
            'Required when server.host is not loopback; without it /metrics is open.',
        }),
      })
      .prefault({})
      .meta({ description: 'Prometheus metrics (docs/metrics.md).' }),
  })
  .meta({
    title: 'callrelay relay.yaml',
    description: 'One callrelay instance: server, store, admin, sources.',
  });

export type RelayConfigInput = z.input<typeof RelayConfigSchema>;
export type RelayConfigParsed = z.output<typeof RelayConfigSchema>;
export type SourceConfigParsed = z.output<typeof SourceConfig>;
export type TargetConfigParsed = RelayConfigParsed['targets'][number];
/** A source's checks at the webhook edge beyond its token. */
export type SourceGuardSettings = Pick<SourceConfigParsed, 'allowIps' | 'signature' | 'rateLimit'>;
