// The README's quick start, run as written: its shell lines are read from the README itself (the
// part between the quick-start markers), `npm start` and `npx callrelay` run the built package
// with the shipped relay.yaml, and what the dry-run HubSpot target kept must be what HubSpot
// would get for that call. A README edit that breaks the quick start breaks this test.

import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitHealthy } from '../harness/relay-process.mjs';
import { freePort, MAIN, ROOT, tempDir } from '../support.js';

/** The commands of the README's quick start, comments stripped, in order. */
function quickStartCommands(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const part = /<!-- quick-start[^>]*-->([\s\S]*?)<!-- \/quick-start -->/.exec(readme)?.[1];
  if (!part) throw new Error('README.md has no quick-start markers');
  return [...part.matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((m) => m[1]!.split('\n'))
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter(Boolean);
}

describe('README quick start', () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const s of stops.splice(0)) await s();
  });

  it('start, simulate, and the sandbox holds the HubSpot requests for the call', async () => {
    const commands = quickStartCommands();
    expect(commands.slice(0, 2)).toEqual(['npm install', 'npm start']);
    const dir = tempDir();
    copyFileSync(join(ROOT, 'relay.yaml'), join(dir, 'relay.yaml'));
    const port = await freePort();
    const env = { PATH: process.env.PATH, PORT: String(port) };
    const run = (args: string[]) => {
      const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: dir, env, encoding: 'utf8' });
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };

    let callId = '';
    const outputs: Record<string, string> = {};
    for (const line of commands) {
      // `npm install` is what the test run itself began with.
      if (line === 'npm install') continue;
      if (line === 'npm start') {
        const relay = spawn(process.execPath, [MAIN, 'start'], { cwd: dir, env, stdio: 'ignore' });
        stops.push(async () => {
          relay.kill('SIGTERM');
          await new Promise((r) => relay.once('exit', r));
        });
        await waitHealthy(port, { child: relay, timeoutMs: 10_000 });
        continue;
      }
      expect(line).toMatch(/^npx callrelay /);
      const args = line.slice('npx callrelay '.length).split(/\s+/);
      if (args.includes('CALL_ID')) {
        expect(callId).not.toBe('');
        // A human runs the next command a moment later: the delivery has happened by then.
        await until(() => run(['calls']).includes('hubspot:delivered(dry run)'));
      }
      outputs[args[0]!] = run(args.map((a) => (a === 'CALL_ID' ? callId : a)));
      callId ||= /-> 3cx: call (\S+), 6\/6 accepted/.exec(outputs.simulate ?? '')?.[1] ?? '';
    }
    expect(callId).toMatch(/^\d{12}_10$/);
    expect(outputs.calls).toContain('POST /crm/v3/objects/calls -> 201');
    expect(outputs.calls).toContain('"hs_call_direction": "INBOUND"');

    // What the sandbox kept is the engagement HubSpot would hold for this call.
    const [shown] = JSON.parse(run(['calls', callId, '--json'])) as {
      deliveries: {
        target: string;
        dryRun: boolean;
        attempts: { method: string; path: string; sent: string }[];
      }[];
    }[];
    const [hubspot] = shown!.deliveries;
    // The mark is the delivery's own: a sandbox made it.
    expect(hubspot).toMatchObject({ target: 'hubspot', dryRun: true });
    const writes = hubspot!.attempts.filter((a) => a.method !== 'GET').reverse();
    expect(writes.map((a) => `${a.method} ${a.path.replace(/\d+$/, 'ID')}`)).toEqual(
      expect.arrayContaining(['POST /crm/v3/objects/calls']),
    );
    const engagement: Record<string, string> = {};
    for (const w of writes)
      Object.assign(engagement, (JSON.parse(w.sent) as { properties: object }).properties);
    expect(engagement).toMatchObject({
      hs_call_direction: 'INBOUND',
      hs_call_status: 'COMPLETED',
      hs_call_duration: '6000',
      hs_call_from_number: '05552221133',
      hs_call_external_id: `callrelay:3cx:${callId}`,
      hs_call_recording_url: `https://FQDN:5001/webapi/recording/${callId}-1-1.mp3`,
    });
    // Agent 202 is bob@example.com in the shipped relay.yaml: looked up, and the owner set.
    expect(engagement.hubspot_owner_id).toMatch(/^\d+$/);
    expect(hubspot!.attempts.some((a) => a.path === '/crm/v3/owners')).toBe(true);
  });
});

async function until(ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  for (const t0 = Date.now(); !ok(); await new Promise((r) => setTimeout(r, 100)))
    if (Date.now() - t0 > timeoutMs) throw new Error('timed out');
}
