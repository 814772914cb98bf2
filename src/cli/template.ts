// `callrelay 3cx-template --source pbx`: the XML template to upload to 3CX (V20: Admin >
// Integrations > CRM; V18: Settings > CRM Integration > Server Side) so that 3CX's own CRM
// integration asks the relay who is calling and journals calls to it (docs/3cx-template.md).

import { writeFileSync } from 'node:fs';
import { sourceTemplate } from '../callerid/wiring.js';
import { configFrom, fail } from './util.js';

export function cmdTemplate(o: {
  config?: string;
  source: string;
  url?: string;
  output?: string;
}): void {
  // Printing the template needs no CRM credentials, nor a CRM that works yet.
  const cfg = configFrom(o, { readOnly: true });
  const source = cfg.sources.find((s) => s.name === o.source);
  if (!source)
    fail(
      `no source "${o.source}" in ${cfg.file} (sources: ${cfg.sources.map((s) => s.name).join(', ') || 'none'})`,
      2,
    );
  if (!source.crm)
    fail(
      `source ${source.name} has no crm: in ${cfg.file}: add \`crm: {}\` under it (and a target ` +
        'that looks contacts up) so that the relay answers 3CX; see docs/3cx-template.md',
      2,
    );
  let base: string;
  if (o.url) {
    let url: URL;
    try {
      url = new URL(o.url);
    } catch {
      return fail(`--url ${o.url} is not a URL (https://relay.example.com)`, 2);
    }
    if (!/^https?:$/.test(url.protocol)) fail('--url takes an http(s) URL', 2);
    // The relay's address, or the source's hook URL itself.
    base = o.url;
  } else if (cfg.links) base = cfg.links.publicUrl;
  else
    return fail(
      `3CX needs the relay's public address, and ${cfg.file} has no server.publicUrl: set ` +
        'server.publicUrl (https://relay.example.com), or pass --url',
      2,
    );
  const { xml } = sourceTemplate(source, base);
  if (o.output) {
    writeFileSync(o.output, xml);
    process.stderr.write(
      `wrote ${o.output}: upload it in 3CX (V20: Admin > Integrations > CRM > Add/Upload ` +
        "template; V18: Settings > CRM Integration > Server Side), then enter the source's token\n",
    );
  } else process.stdout.write(xml);
}
