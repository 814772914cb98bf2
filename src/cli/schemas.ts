// `callrelay schemas`: the JSON Schemas of relay.yaml, adapter files, REST recipes, call events and
// records, printed, written (--write) or compared with the committed ones (--check, for CI).

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jsonSchemas, renderSchema } from '../config/json-schemas.js';
import { displayPath } from '../lib/yaml.js';
import { fail } from './util.js';

// The package's own config/ (this file is dist/cli/schemas.js), wherever it is run from.
const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export function cmdSchemas(values: { write?: boolean; check?: boolean; dir?: string }): void {
  const dir = resolve(values.dir ?? join(PACKAGE_ROOT, 'config'));
  const schemas = jsonSchemas();
  if (values.write) {
    mkdirSync(dir, { recursive: true });
    for (const [f, s] of Object.entries(schemas)) writeFileSync(join(dir, f), renderSchema(s));
    process.stdout.write(`wrote ${Object.keys(schemas).join(', ')} to ${displayPath(dir)}\n`);
  } else if (values.check) {
    const stale = Object.entries(schemas).filter(
      ([f, s]) =>
        !existsSync(join(dir, f)) || readFileSync(join(dir, f), 'utf8') !== renderSchema(s),
    );
    if (stale.length)
      fail(
        `stale in ${displayPath(dir)}: ${stale.map(([f]) => f).join(', ')} (run: npm run schemas)`,
      );
    process.stdout.write('schemas are up to date\n');
  } else process.stdout.write(renderSchema(schemas));
}
