// Recording file names come from webhook URLs and go into multipart headers: nothing in them may
// add a header line, and a malformed %-sequence is no reason to fail a delivery. A PBX that
// refuses a player's Range says so as a 416 with the recording's size, not as a failure.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { fetchRecording, RangeNotSatisfiable, recordingFileName } from './recordings.js';

describe('recordingFileName', () => {
  it('keeps an ordinary name, decoded', () => {
    expect(recordingFileName('https://pbx/webapi/recording/230102_15-1-1.mp3')).toBe(
      '230102_15-1-1.mp3',
    );
    expect(recordingFileName('https://pbx/r/Hovor%20s%20Janou.wav')).toBe('Hovor s Janou.wav');
  });

  it('can never carry a line break, a quote or a path into a header', () => {
    for (const url of [
      'https://pbx/r/a%0d%0aX-Injected:%201.mp3',
      'https://pbx/r/a%22%3B%20name%3D%22x.mp3',
      'https://pbx/r/..%2F..%2Fetc%2Fpasswd',
    ]) {
      const name = recordingFileName(url);
      expect(name, url).not.toMatch(/[\r\n"/\\;:]/);
      expect(name.length).toBeGreaterThan(0);
    }
  });

  it('gives a name for a malformed %-sequence or an empty path instead of throwing', () => {
    expect(recordingFileName('https://pbx/r/bad%E0%A4%A.mp3')).toMatch(/^bad.*\.mp3$/);
    expect(recordingFileName('https://pbx/')).toBe('recording.mp3');
    expect(recordingFileName('not a url')).toBe('recording.mp3');
  });
});

describe('a Range the PBX refuses', () => {
  it('is a 416 with the size the PBX gave, if it gave one; never a retry', async () => {
    const sizes: (string | undefined)[] = ['bytes */10000', undefined, 'bytes 0-1/2'];
    const server = createServer((_req, res) => {
      const cr = sizes.shift();
      res.writeHead(416, cr ? { 'content-range': cr } : {}).end('no');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/r/a.mp3`;
    const access = { allowHosts: [new URL(url).origin], maxMB: 1 };
    try {
      for (const size of [10000, undefined, undefined]) {
        const refused = fetchRecording(url, access, 5000, 'bytes=20000-');
        await expect(refused).rejects.toBeInstanceOf(RangeNotSatisfiable);
        await expect(refused).rejects.toMatchObject({ size, status: 416, retryable: false });
      }
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
