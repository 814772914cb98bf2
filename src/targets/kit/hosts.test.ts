// Recording URLs from webhooks reach only what an allowHosts entry names: scheme, host and port
// (the exploit: allowHosts [127.0.0.1] let http://127.0.0.1:19002 receive the PBX's
// credentials), under the entry's path if it names one (whole segments, `..` resolved first), and
// a DNS name never leads into a private network (NAT64 and 6to4 included) unless allowed.

import { describe, expect, it } from 'vitest';
import { FakePbx } from '../../../test/fakes/pbx.js';
import { isPrivateAddress, parseHostRule } from '../../lib/hosts.js';
import type { RecordingAccess } from '../types.js';
import { allowedRecordingUrl, fetchRecording, publicOnlyLookup } from './recordings.js';

const access = (allowHosts: string[], more: Partial<RecordingAccess> = {}): RecordingAccess => ({
  allowHosts,
  maxMB: 1,
  ...more,
});

describe('recordings.allowHosts', () => {
  it('matches scheme, host and port; HTTPS on 443 unless an entry says otherwise', () => {
    const ok = (url: string, hosts: string[]): boolean => allowedRecordingUrl(url, access(hosts));
    expect(ok('http://127.0.0.1:19002/x.mp3', ['127.0.0.1'])).toBe(false);
    expect(ok('https://127.0.0.1:19002/x.mp3', ['127.0.0.1'])).toBe(false);
    expect(ok('https://127.0.0.1/x.mp3', ['127.0.0.1'])).toBe(true);
    expect(ok('http://127.0.0.1:19002/x.mp3', ['http://127.0.0.1:19002'])).toBe(true);
    expect(ok('https://127.0.0.1:19002/x.mp3', ['http://127.0.0.1:19002'])).toBe(false);
    expect(ok('https://pbx.example.com/r/a.mp3', ['pbx.example.com'])).toBe(true);
    expect(ok('http://pbx.example.com/r/a.mp3', ['pbx.example.com'])).toBe(false);
    expect(ok('https://pbx.example.com:8443/r/a.mp3', ['pbx.example.com'])).toBe(false);
    expect(ok('https://pbx.example.com:5001/r/a.mp3', ['pbx.example.com:5001'])).toBe(true);
    expect(ok('https://a.example.com/r', ['*.example.com'])).toBe(true);
    expect(ok('https://evilexample.com/r', ['*.example.com'])).toBe(false);
    expect(ok('https://user:pw@pbx.example.com/r', ['pbx.example.com'])).toBe(false);
    expect(ok('ftp://pbx.example.com/r', ['pbx.example.com'])).toBe(false);
    expect(ok('not a url', ['pbx.example.com'])).toBe(false);
  });

  it('refuses entries that are not a host', () => {
    for (const bad of ['pbx.example.com:99999', 'a b', 'user@pbx', 'https://pbx/r?x=1'])
      expect(parseHostRule(bad), bad).toBeUndefined();
  });

  it('takes a path prefix, whole segments, and refuses one that is not plain', () => {
    expect(parseHostRule('https://pbx:5001/webapi/recording/')).toMatchObject({
      host: 'pbx',
      port: '5001',
      path: '/webapi/recording/',
    });
    expect(parseHostRule('pbx.example.com/webapi/recording')?.path).toBe('/webapi/recording/');
    expect(parseHostRule('pbx.example.com/')?.path).toBe('/');
    expect(parseHostRule('pbx.example.com')?.path).toBe('/');
    for (const bad of [
      'pbx/webapi/../admin/',
      'pbx/webapi/./recording/',
      'pbx/webapi/%2e%2e/x/',
      'pbx/webapi%2Frecording/',
      'pbx/webapi%5Crecording/',
      'pbx/webapi\\recording/',
      'pbx/a"b/',
      'pbx/bad%E0%A4%A/',
    ])
      expect(parseHostRule(bad), bad).toBeUndefined();
  });

  it("lets a URL through only under the entry's path, segment by segment, as parsed", () => {
    const hosts = ['https://pbx.example.com:5001/webapi/recording/'];
    const ok = (url: string): boolean => allowedRecordingUrl(url, access(hosts));
    expect(ok('https://pbx.example.com:5001/webapi/recording/230102_15-1-1.mp3')).toBe(true);
    expect(ok('https://pbx.example.com:5001/webapi/recording/sub/a.mp3')).toBe(true);
    expect(ok('https://PBX.example.com:5001/webapi/recording/a.mp3?x=1')).toBe(true);
    for (const url of [
      'https://pbx.example.com:5001/webapi/recordingsX/a.mp3',
      'https://pbx.example.com:5001/webapi/recordings/a.mp3',
      'https://pbx.example.com:5001/webapi/recording.mp3',
      'https://pbx.example.com:5001/webapi/',
      'https://pbx.example.com:5001/webapi/KEY/makecall?first=1&second=2',
      'https://pbx.example.com:5001/webapi/recording/../KEY/makecall',
      'https://pbx.example.com:5001/webapi/recording/%2e%2e/KEY/makecall',
      'https://pbx.example.com:5001/webapi/recording/.%2E/KEY/makecall',
      'https://pbx.example.com:5001/webapi/recording/..%2FKEY%2Fmakecall',
      'https://pbx.example.com:5001/webapi/recording/..%5CKEY%5Cmakecall',
      'https://pbx.example.com:5001/webapi/recording\\..\\KEY\\makecall',
      'https://pbx.example.com:5001/WEBAPI/recording/a.mp3',
      'https://pbx.example.com:5001/webapi/recording/bad%E0%A4%A.mp3',
      'https://pbx.example.com/webapi/recording/a.mp3',
      'http://pbx.example.com:5001/webapi/recording/a.mp3',
    ])
      expect(ok(url), url).toBe(false);
    // An entry without a trailing slash is the same prefix: never a longer name beside it.
    const bare = access(['https://pbx.example.com:5001/webapi/recording']);
    expect(allowedRecordingUrl('https://pbx.example.com:5001/webapi/recording/a.mp3', bare)).toBe(
      true,
    );
    expect(allowedRecordingUrl('https://pbx.example.com:5001/webapi/recordingsX', bare)).toBe(
      false,
    );
    // Several entries for one host: any of their paths.
    const two = access(['pbx.example.com/a/', 'pbx.example.com/b/c/']);
    expect(allowedRecordingUrl('https://pbx.example.com/b/c/x.wav', two)).toBe(true);
    expect(allowedRecordingUrl('https://pbx.example.com/b/x.wav', two)).toBe(false);
  });

  it('sends the PBX credentials only to URLs under the path, and fetches the path it checked', async () => {
    const pbx = await new FakePbx('pbx-bearer-1').start();
    try {
      pbx.files.set('/webapi/recording/a.mp3', Buffer.from('ID3 a'));
      pbx.files.set('/webapi/secret/b.mp3', Buffer.from('ID3 b'));
      const allow = access([`${pbx.url}/webapi/recording/`], { bearer: 'pbx-bearer-1' });
      const rec = await fetchRecording(`${pbx.url}/webapi/recording/./x/../a.mp3`, allow);
      let got = '';
      for await (const chunk of rec.body) got += Buffer.from(chunk).toString();
      expect(got).toBe('ID3 a');
      expect(pbx.requests).toEqual([
        { path: '/webapi/recording/a.mp3', authorization: 'Bearer pbx-bearer-1', range: undefined },
      ]);
      for (const url of [
        `${pbx.url}/webapi/secret/b.mp3`,
        `${pbx.url}/webapi/recording/../secret/b.mp3`,
        `${pbx.url}/webapi/recording/%2e%2e/secret/b.mp3`,
        `${pbx.url}/webapi/recording/..%2Fsecret%2Fb.mp3`,
        `${pbx.url}/webapi/recordingX/../secret/b.mp3`,
      ]) {
        const refused = fetchRecording(url, allow);
        await expect(refused, url).rejects.toThrow(/is not in recordings\.allowHosts/);
        await expect(refused).rejects.toMatchObject({ retryable: false });
      }
      expect(pbx.requests).toHaveLength(1);
    } finally {
      await pbx.close();
    }
  });

  it('knows private and loopback addresses', () => {
    for (const a of ['127.0.0.1', '10.1.2.3', '192.168.0.9', '172.20.0.1', '169.254.1.1', '::1'])
      expect(isPrivateAddress(a), a).toBe(true);
    for (const a of ['8.8.8.8', '172.32.0.1', '2001:4860::8888', '::ffff:8.8.8.8'])
      expect(isPrivateAddress(a), a).toBe(false);
    expect(isPrivateAddress('::ffff:127.0.0.1')).toBe(true);
  });

  it('judges NAT64 and 6to4 addresses by the IPv4 address they lead to; 198.18/15 is private', () => {
    for (const a of [
      '198.18.0.1',
      '198.19.255.254',
      '64:ff9b::7f00:1', // NAT64 of 127.0.0.1
      '64:ff9b::10.0.0.5',
      '64:ff9b::a9fe:a9fe', // 169.254.169.254, a cloud's metadata service
      '64:ff9b:1::8.8.8.8', // a site's own NAT64: local whatever it embeds
      '2002:7f00:1::1', // 6to4 of 127.0.0.1
      '2002:c0a8:101::', // 6to4 of 192.168.1.1
      '2002::', // 6to4 of 0.0.0.0
    ])
      expect(isPrivateAddress(a), a).toBe(true);
    for (const a of ['198.17.255.255', '198.20.0.1', '64:ff9b::808:808', '2002:808:808::1'])
      expect(isPrivateAddress(a), a).toBe(false);
  });

  it('a DNS name that resolves to a loopback address is not fetched, credentials never sent', async () => {
    const pbx = await new FakePbx().start();
    try {
      pbx.files.set('/r/a.mp3', Buffer.from('ID3'));
      const port = new URL(pbx.url).port;
      const url = `http://localhost:${port}/r/a.mp3`;
      const basic = { user: 'admin', password: 'pbx-password-1' };
      const refused = fetchRecording(url, access([`http://localhost:${port}`], { basic }));
      await expect(refused).rejects.toThrow(/resolves to .*private or loopback/);
      // A setting to change, not a fault that passes: no retry.
      await expect(refused).rejects.toMatchObject({ retryable: false });
      expect(pbx.requests).toEqual([]);
      // Allowed on purpose (a PBX on the LAN by name), it works.
      const rec = await fetchRecording(
        url,
        access([`http://localhost:${port}`], { basic, allowPrivateAddresses: true }),
      );
      for await (const _ of rec.body) void _;
      expect(pbx.requests).toHaveLength(1);
    } finally {
      await pbx.close();
    }
  });

  it('checks the address when connecting, so that a name cannot rebind between check and use', async () => {
    // A name that answers with a public address first and a loopback one next (DNS rebinding).
    const answers = [
      [{ address: '93.184.216.34', family: 4 }],
      [{ address: '127.0.0.1', family: 4 }],
    ];
    let asked = 0;
    const lookup = publicOnlyLookup((_host, _opts, cb) => cb(null, answers[asked++ % 2]!));
    const connect = (): Promise<{ err: Error | null; address: unknown }> =>
      new Promise((resolve) =>
        lookup('pbx.example.com', { all: false }, (err, address) => resolve({ err, address })),
      );
    // Each connection resolves and checks anew, and uses the address it checked.
    expect(await connect()).toEqual({ err: null, address: '93.184.216.34' });
    const second = await connect();
    expect(second.err?.message).toMatch(/resolves to 127\.0\.0\.1, a private or loopback/);
    expect(asked).toBe(2);
  });
});
