// Recording file names come from webhook URLs and go into multipart headers: nothing in them may
// add a header line, and a malformed %-sequence is no reason to fail a delivery.

import { describe, expect, it } from 'vitest';
import { recordingFileName } from './recordings.js';

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
