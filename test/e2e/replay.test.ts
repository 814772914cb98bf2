// Unmapped requests are kept, listed, and mapped after an adapter fix (YAML only) by
// `callrelay replay` or the admin API; replaying a mapped request replaces its events.

import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startRelay } from '../../src/runtime.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { ADAPTERS, MAIN, tempDir, TOKENS, writeRelayYaml } from '../support.js';

const AI =
  '{"event":"ai","id":"250917195359_47-1","summary":"Asked for a quote.","transcription":"...","sentiment_score":"4"}';
const END =
  '{"event":"outgoing","callerid":"381629759787","user":"105","finishtype":"Ok","transfer":"False","did":"","title":"Successful call to 381629759787 (0:05)","id":"250917195359_47-1"}';

describe('replay after an adapter fix', () => {
  it('lists unmapped requests and maps them once the YAML is fixed', async () => {
    const dir = tempDir();
    const adapters = join(dir, 'adapters');
    mkdirSync(adapters);
    // An adapter that does not know the `ai` event yet.
    const full = readFileSync(join(ADAPTERS, '3cx.yaml'), 'utf8');
    writeFileSync(
      join(adapters, '3cx.yaml'),
      full.replace(/ {2}- name: ai\n[\s\S]*?(?=\n {2}- name:|$)/, ''),
    );
    copyFileSync(join(ADAPTERS, 'callerdesk.yaml'), join(adapters, 'callerdesk.yaml'));
    const config = writeRelayYaml(dir, { adapters });

    const relay = await startRelay(loadConfig(config, {}));
    const post = async (body: string): Promise<Record<string, any>> =>
      (
        await fetch(`http://127.0.0.1:${relay.port}/hooks/3cx/${TOKENS.threecx}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        })
      ).json() as Promise<Record<string, any>>;
    expect((await post(END)).status).toBe('mapped');
    const unmapped = await post(AI);
    expect(unmapped).toMatchObject({
      status: 'unmapped',
      reason: { code: 'RELAY_ERR_UNKNOWN_EVENT' },
    });
    await relay.close();

    const list = execFileSync(process.execPath, [MAIN, 'unmapped', '--config', config], {
      encoding: 'utf8',
    });
    expect(list).toMatch(
      new RegExp(
        `^${unmapped.id}\\s+.*3cx\\s+POST\\s+\\d+\\s+RELAY_ERR_UNKNOWN_EVENT\\s+no event rule`,
        'm',
      ),
    );

    // Still broken: replay says so and exits 1.
    const before = spawnSync(
      process.execPath,
      [MAIN, 'replay', '--config', config, '--all-unmapped'],
      { encoding: 'utf8' },
    );
    expect(before.status).toBe(1);
    expect(before.stdout).toContain('0 of 1 mapped');

    writeFileSync(join(adapters, '3cx.yaml'), full);
    const after = execFileSync(
      process.execPath,
      [MAIN, 'replay', '--config', config, '--all-unmapped'],
      { encoding: 'utf8' },
    );
    expect(after).toContain(`#${unmapped.id}: mapped (rule ai)`);
    expect(after).toContain('1 of 1 mapped');

    const store = new SqliteStore(join(dir, 'relay.db'));
    const [call] = await store.getCalls('250917195359_47');
    expect(call!.record).toMatchObject({
      status: 'ended',
      outcome: 'answered',
      ai: { summary: 'Asked for a quote.', sentiment: 4, hasTranscription: true },
    });
    expect(call!.record.events.map((e) => e.type)).toEqual(['ended', 'analysis']);
    expect((await store.getInbox(unmapped.id))!.state).toBe('applied');
    expect((await store.getInbox(unmapped.id))!.replays).toBe(2); // the failed try counts too
    await store.close();

    const table = execFileSync(process.execPath, [MAIN, 'calls', '--config', config], {
      encoding: 'utf8',
    });
    expect(table.split('\n')[0]).toMatch(
      /^started\s+source\s+call\s+dir\s+status\s+outcome\s+number\s+agent\s+talk\s+rec\s+ai\s+delivery\s+updated$/,
    );
    expect(table).toMatch(
      /3cx\s+250917195359_47\s+outbound\s+ended\s+answered\s+\+381629759787\s+105\s+5\s+0\s+yes\s+-\s/,
    );
  });

  it('replays through the admin API, replacing the events of a mapped request', async () => {
    const dir = tempDir();
    const adapters = join(dir, 'adapters');
    mkdirSync(adapters);
    const full = readFileSync(join(ADAPTERS, '3cx.yaml'), 'utf8');
    writeFileSync(
      join(adapters, '3cx.yaml'),
      full.replace('  agent: user\n', '  agent: "\'nobody\'"\n'),
    );
    copyFileSync(join(ADAPTERS, 'callerdesk.yaml'), join(adapters, 'callerdesk.yaml'));
    const config = writeRelayYaml(dir, { adapters });
    let relay = await startRelay(loadConfig(config, {}));
    const posted = (await (
      await fetch(`http://127.0.0.1:${relay.port}/hooks/3cx/${TOKENS.threecx}`, {
        method: 'POST',
        body: END,
      })
    ).json()) as { id: number };
    await relay.pipeline.drain();
    expect((await relay.store.getCalls('250917195359_47'))[0]!.record.agent).toBe('nobody');
    await relay.close();

    writeFileSync(join(adapters, '3cx.yaml'), full);
    relay = await startRelay(loadConfig(config, {}));
    const res = await fetch(`http://127.0.0.1:${relay.port}/api/inbox/${posted.id}/replay`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.admin}` },
    });
    expect(await res.json()).toEqual({
      id: posted.id,
      status: 'mapped',
      rule: 'ended',
      reason: null,
    });
    const [call] = await relay.store.getCalls('250917195359_47');
    expect(call!.record.agent).toBe('105');
    expect(call!.record.events).toHaveLength(1);
    expect(call!.revision).toBe(2);
    await relay.close();
  });

  it('a running relay reloads a fixed adapter (a broken one changes nothing) and replays', async () => {
    const dir = tempDir();
    const adapters = join(dir, 'adapters');
    mkdirSync(adapters);
    const full = readFileSync(join(ADAPTERS, '3cx.yaml'), 'utf8');
    const withoutAi = full.replace(/ {2}- name: ai\n[\s\S]*?(?=\n {2}- name:|$)/, '');
    writeFileSync(join(adapters, '3cx.yaml'), withoutAi);
    copyFileSync(join(ADAPTERS, 'callerdesk.yaml'), join(adapters, 'callerdesk.yaml'));
    const relay = await startRelay(loadConfig(config(dir, adapters), {}));
    try {
      const post = async (body: string): Promise<{ id: number; status: string }> =>
        (await (
          await fetch(`http://127.0.0.1:${relay.port}/hooks/3cx/${TOKENS.threecx}`, {
            method: 'POST',
            body,
          })
        ).json()) as { id: number; status: string };
      const ai = await post(AI);
      expect(ai.status).toBe('unmapped');

      // A broken file: the reload fails naming the place, and the adapter in use stays.
      writeFileSync(join(adapters, '3cx.yaml'), `${withoutAi}\nevents: [oops\n`);
      await expect(relay.reload()).rejects.toThrow(/3cx\.yaml:\d+:\d+/);
      expect((await post(END)).status).toBe('mapped');

      writeFileSync(join(adapters, '3cx.yaml'), full);
      expect((await relay.reload()).adapters).toContain('3cx');
      const replay = await relay.pipeline.replay((await relay.store.getInbox(ai.id))!);
      expect(replay).toMatchObject({ status: 'mapped', rule: 'ai' });
      expect((await relay.store.getCalls('250917195359_47'))[0]!.record.ai?.summary).toBe(
        'Asked for a quote.',
      );
    } finally {
      await relay.close();
    }
  });
});

const config = (dir: string, adapters: string): string => writeRelayYaml(dir, { adapters });
