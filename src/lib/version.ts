// callrelay's version, read once from package.json (one folder up from both src/ and dist/), in a
// module of its own so that `callrelay --help` and `--version` need none of the relay's code.

import { readFileSync } from 'node:fs';

export const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;
