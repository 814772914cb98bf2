// A log reader that stops reading (a full stdout pipe) or goes away (EPIPE) must never hold the
// relay: webhooks are still answered, the log's buffer stays bounded (lines are dropped and
// counted), and SIGTERM still ends the process within its stop timeout (issue 20, item 6).

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { WebhookReceiver } from '../../src/targets/http/fake.js';
import { waitHealthy } from '../harness/relay-process.mjs';
import { freePort, MAIN, tempDir, TOKENS, writeRelayYaml } from '../support.js';

/** cli/start.ts forces an exit after this long; a little slack for a busy machine. */
const STOP_TIMEOUT_MS = 10_000;

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0))
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** A relay logging one info line per webhook, its stdout a pipe this test never reads. */
async function unreadRelay(more?: string): Promise<{ child: ChildProcess; port: number }> {
  const dir = tempDir();
  const port = await freePort();
  const file = writeRelayYaml(dir, { port, more });
  // The default level (info: a line per webhook), and a small log buffer so that a few thousand
  // webhooks are enough to fill it.
  writeFileSync(
    file,
    readFileSync(file, 'utf8').replace(
      '  level: warn\n',
      '  level: info\n  format: json\n  bufferLimit: 16KiB\n',
    ),
  );
  const child = spawn(process.execPath, [MAIN, 'start', '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  // Never read: once the pipe and this side's small buffer are full, every write would wait.
  child.stdout!.pause();
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  await waitHealthy(port, { child, timeoutMs: 15_000 }).catch((e: Error) => {
    throw new Error(`${e.message}: ${err}`);
  });
  return { child, port };
}

/** `n` webhooks, `concurrency` at a time; every one must be answered 2xx. */
async function load(port: number, n: number, concurrency = 8): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const res = await fetch(`http://127.0.0.1:${port}/hooks/3cx/${TOKENS.threecx}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:03","Id":"261001100000_${i}-1"}`,
      });
      await res.arrayBuffer();
      expect(res.status).toBe(200);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

async function droppedLines(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = /^callrelay_log_lines_dropped_total (\d+)/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

function exited(child: ChildProcess, withinMs: number): Promise<number | string | null> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve('still running'), withinMs);
    child.once('exit', (code, signal) => {
      clearTimeout(t);
      resolve(code ?? signal);
    });
  });
}

describe('a log reader that does not keep up', () => {
  it('drops and counts lines instead of growing, and SIGTERM still ends the relay', async () => {
    const { child, port } = await unreadRelay();
    // Until the pipe and the 16 KiB buffer are full and lines are being dropped (a few hundred).
    for (let sent = 0; sent < 3000 && !((await droppedLines(port)) > 0); sent += 100)
      await load(port, 100);
    expect(await droppedLines(port)).toBeGreaterThan(0);
    const t0 = Date.now();
    child.kill('SIGTERM');
    expect(await exited(child, STOP_TIMEOUT_MS + 3000)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(STOP_TIMEOUT_MS + 3000);
  }, 60_000);

  it('a reader that went away breaks nothing: EPIPE costs lines only', async () => {
    const { child, port } = await unreadRelay();
    // The reader leaves: the relay's writes now fail with EPIPE.
    child.stdout!.destroy();
    await load(port, 300);
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    expect(await droppedLines(port)).toBeGreaterThan(0);
    child.kill('SIGTERM');
    expect(await exited(child, STOP_TIMEOUT_MS + 3000)).toBe(0);
  }, 60_000);

  it('a second SIGTERM ends the relay at once, even with a delivery under way', async () => {
    const receiver = await new WebhookReceiver().start();
    // Longer than the stop timeout: one SIGTERM would wait for it until the forced exit.
    receiver.delayMs = 60_000;
    try {
      const { child, port } = await unreadRelay(
        `targets:\n  - name: hook\n    type: http\n    url: ${receiver.url}\n    deliverOn: ended\n`,
      );
      await load(port, 1);
      await receiver.waitFor(() => receiver.received.length >= 1);
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));
      const t0 = Date.now();
      child.kill('SIGTERM');
      expect(await exited(child, 3000)).toBe(1);
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      await receiver.close();
    }
  }, 60_000);
});
