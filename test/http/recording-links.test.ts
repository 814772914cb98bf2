// Recordings that play inside the CRM: with server.publicUrl, HubSpot gets the relay's signed link
// (HTTPS, under publicUrl, never the PBX's address), and the link streams the recording from the
// fake PBX with the source's credentials, answering byte ranges as players ask for them, whether
// the PBX answers ranges itself or not (its own 416 passed on). Forged, expired and dead links fail
// as they should; links expire by default, and each answers a player's pace, not a flood.

import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { linkHash, signLink, type LinkClaims } from '../../src/lib/links.js';
import { startRelay, type Relay } from '../../src/runtime.js';
import { FakeHubspot } from '../../src/targets/hubspot/fake.js';
import { FakePbx } from '../fakes/pbx.js';
import {
  goldenCases,
  sendFlowRequest,
  settleDeliveries,
  tempDir,
  writeRelayYaml,
} from '../support.js';

const HS_TOKEN = 'pat-eu1-test-token-0000';
const PBX_TOKEN = 'pbx-bearer-secret-0000';
const SECRET = 'link-secret-0123456789-0123456789-abcdef';
const PUBLIC = 'https://relay.example.test';
const AUDIO = randomBytes(10_000);
const FILE = '/webapi/recording/230307114903_10-1-1.mp3';

describe('recording links (server.publicUrl)', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function setup(
    archive = false,
    server = '',
  ): Promise<{ relay: Relay; pbx: FakePbx; hs: FakeHubspot; link: string; dir: string }> {
    const pbx = await new FakePbx(PBX_TOKEN).start();
    const hs = await new FakeHubspot(HS_TOKEN).start();
    pbx.files.set(FILE, AUDIO);
    const dir = tempDir();
    const config = writeRelayYaml(dir, {
      server: `  publicUrl: ${PUBLIC}/\n  urlSecret: ${SECRET}\n${server}`,
      threecx: `    recordings:\n      allowHosts: ["${pbx.url}/webapi/recording/"]\n      bearer: ${PBX_TOKEN}\n      archive: ${archive}\n`,
      more: `targets:\n  - name: hubspot\n    type: hubspot\n    token: ${HS_TOKEN}\n    baseUrl: ${hs.url}\n`,
    });
    const relay = await startRelay(loadConfig(config, {}), undefined, {
      delivery: { pollMs: 20 },
      archive: { everyMs: 50 },
    });
    cleanup.push(
      () => relay.close(),
      () => pbx.close(),
      () => hs.close(),
    );
    // A recorded 3CX call whose recording is on this PBX.
    const flow = goldenCases().find((c) => c.flow.name === '3cx-v2-incoming-answered')!.flow;
    for (const r of flow.requests)
      await sendFlowRequest(relay.port, '3cx', {
        ...r,
        body: r.body?.split('https://FQDN:5001').join(pbx.url),
      });
    await settleDeliveries(relay);
    const [call] = [...hs.calls.values()];
    return { relay, pbx, hs, dir, link: call!.properties.hs_call_recording_url! };
  }

  it('gives HubSpot a signed HTTPS link under publicUrl that plays, seeks and hides the PBX', async () => {
    const { relay, pbx, hs, link } = await setup();
    expect(link).toMatch(new RegExp(`^${PUBLIC}/recordings/[\\w-]+\\.[\\w-]+\\.mp3$`));
    // Nothing the CRM holds names the PBX.
    expect(JSON.stringify([...hs.calls.values()])).not.toContain(new URL(pbx.url).host);

    const local = link.replace(PUBLIC, `http://127.0.0.1:${relay.port}`);
    const get = (range?: string, method = 'GET') =>
      fetch(local, { method, headers: range ? { range } : {} });
    for (const pbxRanges of [false, true]) {
      pbx.ranges = pbxRanges;
      const whole = await get();
      expect(whole.status).toBe(200);
      expect(whole.headers.get('content-type')).toBe('audio/mpeg');
      expect(whole.headers.get('accept-ranges')).toBe('bytes');
      expect(whole.headers.get('content-length')).toBe('10000');
      expect(Buffer.from(await whole.arrayBuffer())).toEqual(AUDIO);
      for (const [range, start, end] of [
        ['bytes=0-99', 0, 99],
        ['bytes=5000-5999', 5000, 5999],
        ['bytes=9900-', 9900, 9999],
        ['bytes=-500', 9500, 9999],
      ] as const) {
        const part = await get(range);
        expect(part.status, `${range} (PBX ranges: ${pbxRanges})`).toBe(206);
        expect(part.headers.get('content-range')).toBe(`bytes ${start}-${end}/10000`);
        expect(Buffer.from(await part.arrayBuffer())).toEqual(AUDIO.subarray(start, end + 1));
      }
      // Past the end: 416 with the size, cut here or refused by the PBX itself (passed on).
      const beyond = await get('bytes=10000-');
      expect(beyond.status, `PBX ranges: ${pbxRanges}`).toBe(416);
      expect(beyond.headers.get('content-range')).toBe('bytes */10000');
      expect(((await beyond.json()) as { error: { code: string } }).error.code).toBe(
        'RELAY_ERR_RANGE_NOT_SATISFIABLE',
      );
    }
    // The PBX was asked with the source's credentials, the player's Range passed on.
    expect(pbx.requests.every((r) => r.authorization === `Bearer ${PBX_TOKEN}`)).toBe(true);
    expect(pbx.requests.some((r) => r.range === 'bytes=5000-5999')).toBe(true);
    const head = await get(undefined, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('10000');
    expect(await head.text()).toBe('');
  });

  it('refuses forged and expired links, and says when the PBX is gone or down', async () => {
    const { relay, pbx, link } = await setup();
    const base = `http://127.0.0.1:${relay.port}/recordings/`;
    const token = link.slice(`${PUBLIC}/recordings/`.length).replace(/\.mp3$/, '');
    const code = async (res: Response) => [
      res.status,
      ((await res.json()) as { error: { code: string; message: string } }).error,
    ];

    // Another call's id in the payload, the signature kept: refused.
    const [payload, sig] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as { c: string };
    const forged = Buffer.from(JSON.stringify({ ...claims, c: '230307115339_12' })).toString(
      'base64url',
    );
    expect(await code(await fetch(`${base}${forged}.${sig!}.mp3`))).toMatchObject([
      403,
      { code: 'RELAY_ERR_LINK_INVALID' },
    ]);
    // Signed with another secret (one rotated away): refused.
    const url = `${pbx.url}${FILE}`;
    const claim = { k: 'r', s: '3cx', c: '230307114903_10', h: linkHash(url) };
    const other = signLink('another-secret-0123456789-0123456789', claim);
    expect(await code(await fetch(`${base}${other}.mp3`))).toMatchObject([
      403,
      { code: 'RELAY_ERR_LINK_INVALID' },
    ]);
    const expired = signLink(SECRET, { ...claim, e: Math.floor(Date.now() / 1000) - 1 });
    expect(await code(await fetch(`${base}${expired}.mp3`))).toMatchObject([
      403,
      { code: 'RELAY_ERR_LINK_EXPIRED' },
    ]);
    // The same claims, signed with the relay's secret and not expired: plays.
    expect((await fetch(`${base}${signLink(SECRET, claim)}.mp3`)).status).toBe(200);

    // The PBX no longer has the file: 404; the PBX is down: 502. Neither names the PBX.
    pbx.files.delete(FILE);
    const gone = await code(await fetch(link.replace(PUBLIC, `http://127.0.0.1:${relay.port}`)));
    expect(gone).toMatchObject([404, { code: 'RELAY_ERR_RECORDING_GONE' }]);
    await pbx.close();
    const down = await fetch(link.replace(PUBLIC, `http://127.0.0.1:${relay.port}`));
    const text = await down.text();
    expect(down.status).toBe(502);
    expect(text).toContain('RELAY_ERR_RECORDING_UNAVAILABLE');
    expect(text).not.toContain(new URL(pbx.url).port);
    expect(text).not.toContain(PBX_TOKEN);
  });

  it('expires links by default: 90 days, a year where the relay archives; linkTtlDays decides', async () => {
    const days = (link: string): number => {
      const payload = link.slice(`${PUBLIC}/recordings/`.length).split('.')[0]!;
      const { e } = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { e?: number };
      expect(e, 'the link has an expiry').toBeTypeOf('number');
      return Math.round((e! * 1000 - Date.now()) / 86400_000);
    };
    expect(days((await setup(false)).link)).toBe(90);
    expect(days((await setup(true)).link)).toBe(365);
    expect(days((await setup(true, '  linkTtlDays: 7\n')).link)).toBe(7);
    expect(days((await setup(false, '  linkTtlDays: 730\n')).link)).toBe(730);
  });

  it('limits each link to 60 requests a minute (429 with Retry-After), other links unaffected', async () => {
    const { relay, pbx, link } = await setup();
    const local = link.replace(PUBLIC, `http://127.0.0.1:${relay.port}`);
    const asked = () => pbx.requests.length;
    // A player's requests as it seeks, then a flood: 60 go through at once, then 429s. (The bucket
    // refills one a second, so on a slow machine a few more may pass: wait for the first 429.)
    let ok = 0;
    let limited: Response | undefined;
    for (let i = 0; i < 200 && !limited; i++) {
      const n = asked();
      const res = await fetch(local, { headers: { range: 'bytes=0-99' } });
      if (res.status === 429) {
        limited = res;
        // Refused before the PBX is asked.
        expect(asked()).toBe(n);
      } else {
        expect(res.status).toBe(206);
        await res.arrayBuffer();
        ok++;
      }
    }
    expect(limited, 'a 429 came').toBeDefined();
    expect(ok).toBeGreaterThanOrEqual(60);
    expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await limited!.json()) as { error: { code: string } }).error.code).toBe(
      'RELAY_ERR_LINK_RATE_LIMITED',
    );
    // Another link (here: the same recording, signed anew) has its own allowance.
    const token = link.slice(`${PUBLIC}/recordings/`.length).replace(/\.mp3$/, '');
    const claims = JSON.parse(
      Buffer.from(token.split('.')[0]!, 'base64url').toString(),
    ) as LinkClaims;
    const other = signLink(SECRET, { ...claims, e: claims.e! + 1 });
    expect((await fetch(`http://127.0.0.1:${relay.port}/recordings/${other}.mp3`)).status).toBe(
      200,
    );
  });

  it('archives each recording once and plays it after the PBX has dropped it', async () => {
    const { relay, pbx, link, dir } = await setup(true);
    const fetched = () => pbx.requests.filter((r) => r.path === FILE).length;
    // The PBX sees the request before the file is whole: wait for the renamed file itself.
    const archived = () => {
      try {
        return readdirSync(join(dir, 'recordings', '3cx')).filter((f) => !f.endsWith('.part'));
      } catch {
        return [];
      }
    };
    for (const t0 = Date.now(); !archived().length; await new Promise((r) => setTimeout(r, 20)))
      if (Date.now() - t0 > 5000) throw new Error('the recording was never archived');
    expect(fetched()).toBe(1);
    // Whole in the archive (written under a temporary name, then renamed) beside the database.
    const kept = readdirSync(join(dir, 'recordings', '3cx'));
    expect(kept).toHaveLength(1);
    expect(readFileSync(join(dir, 'recordings', '3cx', kept[0]!))).toEqual(AUDIO);

    pbx.files.delete(FILE);
    const local = link.replace(PUBLIC, `http://127.0.0.1:${relay.port}`);
    const whole = await fetch(local);
    expect(whole.status).toBe(200);
    expect(Buffer.from(await whole.arrayBuffer())).toEqual(AUDIO);
    const part = await fetch(local, { headers: { range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 100-199/10000');
    expect(Buffer.from(await part.arrayBuffer())).toEqual(AUDIO.subarray(100, 200));
    expect((await fetch(local, { headers: { range: 'bytes=20000-' } })).status).toBe(416);
    // However often it plays, the PBX was asked for it once.
    await new Promise((r) => setTimeout(r, 200));
    expect(fetched()).toBe(1);
  });
});
