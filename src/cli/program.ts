// The callrelay command line: every command, its options and its help, declared with commander
// (help for each command, suggestions for mistyped commands and options, and --version, without
// hand-written parsing). Each command's work lives in its own file under cli/, loaded only when
// that command runs, so that help, --version and a mistyped command answer at once.

import { Command, InvalidArgumentError, Option } from 'commander';
import { VERSION } from '../lib/version.js';

const CONFIG_HELP =
  'relay.yaml to use (default: $RELAY_CONFIG, else ./config/relay.yaml if it exists, else ./relay.yaml)';

/** -c, --config FILE: every command that reads relay.yaml has it. */
const withConfig = (c: Command): Command => c.option('-c, --config <file>', CONFIG_HELP);

const count = (what: string, dflt: string): Option =>
  new Option('--limit <n>', `at most this many ${what}`).default(dflt).argParser((v) => {
    if (!/^\d+$/.test(v) || Number(v) < 1)
      throw new InvalidArgumentError('--limit takes a whole number, 1 or more');
    return v;
  });

/**
 * `crmChoices`: what `init --crm` takes, for its help (cli/init.ts crmChoices(), which reads the
 * recipes); main.ts loads them only for a command line that mentions init.
 */
export function buildProgram(o: { crmChoices?: string[] } = {}): Command {
  const program = new Command('callrelay')
    .description(
      'Phone-system webhooks in, one call record per call out, delivered to your CRM.\n' +
        'New here? callrelay init, then callrelay start (README: "Quick start").',
    )
    .version(`callrelay ${VERSION}`, '-v, --version', 'print the version')
    .helpCommand('help [command]', 'help for a command')
    // Errors come back to main.ts (exit code 2) instead of exiting here; subcommands made below
    // inherit this and the two settings that follow.
    .exitOverride()
    .showSuggestionAfterError()
    .showHelpAfterError('(callrelay --help lists the commands)')
    .configureHelp({ sortSubcommands: false, showGlobalOptions: false });

  program
    .command('init')
    .description(
      'write config/relay.yaml and config/.env for your PBX and CRM, with fresh tokens, and ' +
        'print the lines to paste into 3CX or Callerdesk',
    )
    .addOption(new Option('--pbx <kind>', 'the phone system').choices(['3cx', 'callerdesk']))
    // The recipes are whatever the shipped targets/ holds (and targets/ beside relay.yaml).
    .option(
      '--crm <kind>',
      o.crmChoices
        ? `where calls go: ${o.crmChoices.slice(0, -1).join(', ')}, or sandbox (a HubSpot dry run)`
        : 'where calls go: hubspot, pipedrive, a shipped recipe (callrelay init --help lists ' +
            'them), or sandbox (a HubSpot dry run)',
    )
    .option(
      '--var <name=value>',
      "a recipe CRM's setting (its vars, e.g. --var domain=acme); repeat for each",
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option('--sandbox', 'a dry run of the CRM: requests built and shown, never sent; no token')
    .option('--url <url>', "the relay's public URL, as the PBX reaches it (https://...)")
    .addOption(
      new Option(
        '--proxy <kind>',
        'Caddy or nginx in front on this machine: listen on 127.0.0.1, trust its ' +
          'X-Forwarded-For, and print its configuration',
      ).choices(['caddy', 'nginx']),
    )
    .option(
      '--pbx-url <url>',
      "3CX's web address (https://pbx.example.com:5001): recordings are fetched from there",
    )
    .option('--company-domain <name>', 'Pipedrive: the acme of acme.pipedrive.com (console links)')
    .option('--portal-id <id>', 'HubSpot: your account id (console links)')
    .option(
      '--agent <ext=email>',
      "an extension and its CRM user's email or numeric id; repeat for each agent",
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option('--timezone <tz>', "the PBX's time zone (default: this machine's)")
    .option(
      '--country <cc>',
      "two-letter country for numbers dialled without a country code (default: the time zone's)",
    )
    .option('--dir <folder>', 'where to write relay.yaml and .env', 'config')
    .option('-y, --yes', 'ask nothing: take the flags, defaults for the rest')
    .option('--force', "overwrite the folder's relay.yaml and .env if they exist")
    .action(async (o) => (await import('./init.js')).cmdInit(o));

  withConfig(
    program
      .command('start')
      .description('run the relay until SIGTERM or SIGINT; SIGHUP reloads relay.yaml and adapters')
      .option('--init', 'create the SQLite file although a marker says an earlier one was lost')
      .option(
        '--insecure-example-tokens',
        "run reachable from other machines with relay.yaml's example tokens",
      ),
  ).action(async (o) => (await import('./start.js')).cmdStart(o));

  withConfig(
    program
      .command('reload')
      .description(
        'make the running relay read relay.yaml, .env and the adapters again (SIGHUP to the ' +
          'process in its pid file, beside the SQLite database)',
      ),
  ).action(async (o) => (await import('./reload.js')).cmdReload(o));

  withConfig(
    program
      .command('check')
      .description(
        'validate relay.yaml and every adapter (errors name file:line:col); with --online, also ' +
          'ask each CRM whether its token works and its agents exist',
      )
      .argument('[adapter...]', 'check these adapter files instead of relay.yaml')
      .option('--online', 'call each CRM with its token; verify the agent mapping'),
  ).action(async (files: string[], o) => (await import('./check.js')).cmdCheck(files, o));

  withConfig(
    program
      .command('simulate')
      .description(
        'replay bundled sample call flows into a running relay, as the PBX would send them, ' +
          'each as a new call',
      )
      .argument('[flow...]', 'flow names (callrelay simulate --list shows them)')
      .option('--all', 'every bundled flow of the configured sources')
      .option('--list', 'list the flows and exit')
      .option('--to <url>', 'the relay to post to (default: server.host and port of relay.yaml)'),
  ).action(async (flows: string[], o) => (await import('./simulate.js')).cmdSimulate(flows, o));

  withConfig(
    program
      .command('dial')
      .description(
        "click-to-call: the PBX rings the agent's phone, then dials the number (sources with pbx:)",
      )
      .argument('<number>', "the number to call; without a country code: the source's country")
      .requiredOption('--agent <extension>', 'the extension that rings first')
      .option('--source <name>', 'the source whose PBX places it (default: the only one with pbx:)')
      .option('--to <url>', 'the relay (default: server.host and port of relay.yaml)'),
  ).action(async (number: string, o) => (await import('./dial.js')).cmdDial(number, o));

  withConfig(
    program
      .command('dial-link')
      .description(
        "an agent's click-to-call link for a CRM's custom link or button (the CRM appends the " +
          'number); needs server.publicUrl',
      )
      .requiredOption('--agent <extension>', 'the extension that rings first')
      .option('--source <name>', 'the source whose PBX places it (default: the only one with pbx:)')
      .option(
        '--days <n>',
        'the link stops working after this many days (default: dial.linkTtlDays, 30)',
      ),
  ).action(async (o) => (await import('./dial.js')).cmdDialLink(o));

  withConfig(
    program
      .command('agent-link')
      .description(
        "a one-time sign-in link to an agent's page (relay.yaml agents:), made by the running relay",
      )
      .requiredOption('--extension <extension>', "the agent's extension")
      .option(
        '--hours <n>',
        'the link stops working after this many hours (default 24, at most 168)',
      )
      .option('--to <url>', 'the relay (default: server.host and port of relay.yaml)'),
  ).action(async (o) => (await import('./agent-link.js')).cmdAgentLink(o));

  withConfig(
    program
      .command('map')
      .description(
        'print the events and calls a flow file produces through one adapter; exits 1 when ' +
          'the flow\'s "expect" does not hold. With --target, the requests (bodies included) ' +
          "that relay.yaml's target would send for each call, as a dry run",
      )
      .argument('<flow>', 'a flow file (JSON, as under adapters/cases/)')
      .option(
        '-a, --adapter <name|file>',
        'an adapter name or file (with --target: default, the adapter of the source routed to it)',
      )
      .option('-t, --target <name>', 'a target in relay.yaml: print what it would send (dry run)')
      .option('--timezone <tz>', "the source's time zone (default: the flow's, else the adapter's)")
      .option('--country <cc>', 'country for numbers without a country code')
      .option('--json', 'print JSON'),
  ).action(async (flow: string, o) => (await import('./map.js')).cmdMap(flow, o));

  withConfig(
    program
      .command('calls')
      .description(
        'recent calls, newest change first, with how each stands with each target; with an ' +
          'ID, that call and every request made for it (a dry run: with the bodies)',
      )
      .argument('[id...]', 'call ids to show in full')
      .addOption(count('calls', '20'))
      .option('--source <name>', 'only calls of this source')
      .option('--json', 'print JSON'),
  ).action(async (ids: string[], o) => (await import('./calls.js')).cmdCalls(ids, o));

  withConfig(
    program
      .command('status')
      .description(
        'per source the last request accepted and the last refused (a stale token, a wrong ' +
          'signature), per target what waits, retries and gave up; works with the relay stopped',
      )
      .option('--json', 'print JSON'),
  ).action(async (o) => (await import('./status.js')).cmdStatus(o));

  withConfig(
    program
      .command('deliveries')
      .description('what is waiting to reach a CRM, and why')
      .addOption(
        new Option('--state <state>', 'only these').choices(['due', 'retrying', 'dead', 'done']),
      )
      .option('--target <name>', 'only this target')
      .addOption(count('deliveries per state', '50'))
      .option('--json', 'print JSON'),
  ).action(async (o) => (await import('./deliveries.js')).cmdDeliveries(o));

  withConfig(
    program
      .command('unmapped')
      .description('stored requests no adapter rule could map, with the reason')
      .addOption(count('requests', '50')),
  ).action(async (o) => (await import('./unmapped.js')).cmdUnmapped(o));

  withConfig(
    program
      .command('dead')
      .description("deliveries that gave up, with the CRM's reason")
      .addOption(count('deliveries', '50')),
  ).action(async (o) => (await import('./dead.js')).cmdDead(o));

  withConfig(
    program
      .command('replay')
      .description(
        'map stored requests again (after an adapter fix), or retry dead deliveries (dl-ID)',
      )
      .argument('[id...]', 'stored request ids (callrelay unmapped) or dl-IDs (callrelay dead)')
      .option('--all-unmapped', 'every unmapped request')
      .option('--all', 'every dead delivery'),
  ).action(async (ids: string[], o) => (await import('./replay.js')).cmdReplay(ids, o));

  withConfig(
    program
      .command('backfill')
      .description(
        'deliver calls stored before a target was added: counts first, queues with --yes, ' +
          'never twice',
      )
      .requiredOption('--target <name>', 'the target to deliver to')
      .requiredOption('--since <date>', 'calls that started at or after (2026-11-01)')
      .option('--until <date>', 'and before this')
      .option('-y, --yes', 'queue them (without: only count)'),
  ).action(async (o) => (await import('./backfill.js')).cmdBackfill(o));

  withConfig(
    program
      .command('3cx-template')
      .description(
        'the XML template to upload to 3CX (its CRM integration) for a source with crm:: caller ' +
          'names from your CRM targets at ring time, and calls journaled without the WebAPI add-on',
      )
      .requiredOption('--source <name>', 'the 3CX source in relay.yaml (it needs crm:)')
      .option(
        '--url <url>',
        "the relay's address as 3CX reaches it (default: server.publicUrl), or the source's hook URL",
      )
      .option('-o, --output <file>', 'write it to this file instead of printing it'),
  ).action(async (o) => (await import('./template.js')).cmdTemplate(o));

  program
    .command('schemas')
    .description('JSON Schemas for relay.yaml, adapters, REST recipes, events and records')
    .option('--write', 'write them to config/')
    .option('--check', 'exit 1 if the files in config/ are stale')
    .option('--dir <folder>', 'another folder than config/')
    .action(async (o) => (await import('./schemas.js')).cmdSchemas(o));

  return program;
}
