#!/usr/bin/env node
// The callrelay command. The commands, their options and help are declared in cli/program.ts,
// each command's work in its own file under cli/; this entry point only runs the parser and turns
// errors into messages and exit codes: 2 for a wrong command line, 1 for a failure.

import { CommanderError } from 'commander';
import { buildProgram } from './cli/program.js';
import { ConfigError } from './lib/yaml.js';

async function main(argv: string[]): Promise<void> {
  // Each command's code is loaded when it runs; init's help lists the recipes it reads.
  const crmChoices = argv.includes('init')
    ? (await import('./cli/init.js')).crmChoices()
    : undefined;
  const program = buildProgram(crmChoices ? { crmChoices } : {});
  if (!argv.length) return void process.stdout.write(program.helpInformation());
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version end with exit code 0; commander has printed what it had to say.
      process.exit(err.exitCode === 0 ? 0 : 2);
    }
    const { fail } = await import('./cli/util.js');
    if (err instanceof ConfigError) fail(err.message);
    const cmd = argv.find((a) => !a.startsWith('-')) ?? '';
    fail(`callrelay ${cmd}: ${(err as Error).message}`);
  }
}

void main(process.argv.slice(2));
