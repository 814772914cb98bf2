#!/usr/bin/env node
// The callrelay command: start | check | map | calls | deliveries | unmapped | dead | replay |
// backfill | schemas, one file each under cli/; this entry point only dispatches and turns errors
// into messages and exit codes.

import { cmdBackfill } from './cli/backfill.js';
import { cmdCalls } from './cli/calls.js';
import { cmdCheck } from './cli/check.js';
import { cmdDead } from './cli/dead.js';
import { cmdDeliveries } from './cli/deliveries.js';
import { cmdMap } from './cli/map.js';
import { cmdReplay } from './cli/replay.js';
import { cmdSchemas } from './cli/schemas.js';
import { cmdStart } from './cli/start.js';
import { cmdUnmapped } from './cli/unmapped.js';
import { fail, USAGE, type Command } from './cli/util.js';
import { ConfigError } from './lib/yaml.js';
import { VERSION } from './runtime.js';

const COMMANDS: Record<string, Command> = {
  start: cmdStart,
  check: cmdCheck,
  map: cmdMap,
  calls: cmdCalls,
  unmapped: cmdUnmapped,
  dead: cmdDead,
  deliveries: cmdDeliveries,
  replay: cmdReplay,
  backfill: cmdBackfill,
  schemas: cmdSchemas,
};

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help')
    return void process.stdout.write(USAGE);
  if (cmd === '--version' || cmd === '-v' || cmd === 'version')
    return void process.stdout.write(`callrelay ${VERSION}\n`);
  const run = COMMANDS[cmd];
  if (!run) fail(`unknown command "${cmd}"\n\n${USAGE}`, 2);
  try {
    await run(rest);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    if (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))
      fail(`${err.message}\n\n${USAGE}`, 2);
    fail(`callrelay ${cmd}: ${(err as Error).message}`);
  }
}

void main(process.argv.slice(2));
