// Two relay processes on one PostgreSQL behind a round-robin proxy; one is killed with SIGKILL
// mid-stream and restarted later. Every request answered 2xx ends in HubSpot exactly once.

import type { ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import {
  freePort,
  freshPostgresDatabase,
  spawnRelay,
  tempDir,
  TOKENS,
  writeRelayYaml,
} from '../support.js';

const CALLS = 60;
const HS_TOKEN = 'pat-eu1-kill-token-0000';

/** A load balancer: round-robin, and a request that finds its instance gone goes to the other. */
function proxy(ports: number[]): Promise<Server> {
  let n = 0;
  const forward = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const start = n++;
    for (let k = 0; k < ports.length; k++) {
      const port = ports[(start + k) % ports.length]!;
      try {
        const r = await fetch(`http://127.0.0.1:${port}${req.url}`, {
          method: req.method,
          headers: { 'content-type': String(req.headers['content-type'] ?? '') },
          body: chunks.length ? Buffer.concat(chunks) : undefined,
        });
        res
          .writeHead(r.status, { 'content-type': 'application/json' })
          .end(Buffer.from(await r.arrayBuffer()));
        return;
      } catch {
        // that instance is down: try the next
      }
    }
    res.writeHead(502).end();
  };
  const server = createServer((req, res) => void forward(req, res));
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server)));
}

describe('two instances, one killed', () => {
  const children: ChildProcess[] = [];
  let hs: FakeHubspot;
  let lb: Server;
  afterAll(async () => {
    children.forEach((c) => c.kill('SIGKILL'));
    lb?.close();
    await hs?.close();
  });

  it('every acknowledged request reaches HubSpot exactly once', async () => {
    hs = await new FakeHubspot(HS_TOKEN).start();
    hs.delayMs = 20;
    const url = await freshPostgresDatabase(inject('pgUrl'));
    const ports = [await freePort(), await freePort()];
    const configs = ports.map((port) =>
      writeRelayYaml(tempDir(), {
        port,
        store: `postgres: ${url}`,
        more: `targets:\n  - name: hubspot\n    type: hubspot\n    token: ${HS_TOKEN}\n    baseUrl: ${hs.url}\n    searchLagSec: 0.5\ndelivery:\n  leaseSec: 3\n`,
      }),
    );
    const a = await spawnRelay(configs[0]!, ports[0]!);
    const b = await spawnRelay(configs[1]!, ports[1]!);
    children.push(a, b);
    lb = await proxy(ports);
    const lbUrl = `http://127.0.0.1:${(lb.address() as AddressInfo).port}/hooks/3cx/${TOKENS.threecx}`;

    const acked = new Set<string>();
    let restarted: ChildProcess | undefined;
    for (let i = 0; i < CALLS; i++) {
      if (i === 20) a.kill('SIGKILL');
      if (i === 45) children.push((restarted = await spawnRelay(configs[0]!, ports[0]!)));
      const id = `261201100000_${i}`;
      for (const body of [
        `{"Event":"incomingcall_started","Callerid":"420774852629","User":"117","Trtype":"NotDef","Did":"","Id":"${id}-1"}`,
        `{"Event":"incoming","Callerid":"420774852629","User":"117","Finishtype":"Ok","Transfer":"False","Did":"","Duration":"00:04","Id":"${id}-1"}`,
      ]) {
        // A sender retries what was not acknowledged.
        for (let attempt = 0; attempt < 5; attempt++) {
          const res = await fetch(lbUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
          });
          if (res.status === 200) break;
        }
      }
      acked.add(id);
    }
    expect(restarted).toBeDefined();
    for (let t = 0; t < 600 && hs.calls.size < CALLS; t++)
      await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 1500)); // anything late (a duplicate) would show up now

    const tokens = [...hs.calls.values()].map((c) => c.properties.hs_call_external_id!);
    expect(new Set(tokens).size).toBe(tokens.length);
    expect(new Set(tokens)).toEqual(new Set([...acked].map((id) => `callrelay:3cx:${id}`)));
    for (const c of hs.calls.values())
      expect(c.properties).toMatchObject({ hs_call_status: 'COMPLETED', hs_call_duration: '4000' });
  }, 120_000);
});
