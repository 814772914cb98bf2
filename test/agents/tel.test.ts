// What a browser hands the tel: handler, read into the number to dial: RFC 3966 links with their
// separators and parameters, encoded once or twice, and numbers typed by hand.

import { describe, expect, it } from 'vitest';
import { telNumber } from '../../src/agents/tel.js';

describe('telNumber', () => {
  it('reads tel: links as browsers and CRMs write them', () => {
    expect(telNumber('tel:+420774852629')).toEqual({ number: '+420774852629' });
    expect(telNumber('TEL:+420-774-852-629')).toEqual({ number: '+420-774-852-629' });
    expect(telNumber('tel://+420 774 852 629')).toEqual({ number: '+420 774 852 629' });
    // Encoded by the CRM, then by the browser filling in %s.
    expect(telNumber('tel%3A%2B420%2520774%2520852%2520629')).toEqual({
      number: '+420 774 852 629',
    });
    // Not percent-encoding after all: left as it is.
    expect(telNumber('tel:+420 774 852 629 %zz')).toEqual({ number: '+420 774 852 629 %zz' });
  });

  it('keeps the extension apart and puts a local number in its context', () => {
    expect(telNumber('tel:+420-774-852-629;ext=12')).toEqual({
      number: '+420-774-852-629',
      ext: '12',
    });
    expect(telNumber('tel:852-629;phone-context=+420-774')).toEqual({ number: '+420774852629' });
    // A domain as context, or a global number with one, changes nothing.
    expect(telNumber('tel:774852629;phone-context=example.com')).toEqual({ number: '774852629' });
    expect(telNumber('tel:+420774852629;phone-context=+1')).toEqual({ number: '+420774852629' });
    expect(telNumber('tel:+420774852629;isub=1;ext=')).toEqual({ number: '+420774852629' });
  });

  it('takes plain numbers and nothing at all', () => {
    expect(telNumber(' 774 852 629 ')).toEqual({ number: '774 852 629' });
    expect(telNumber('')).toEqual({ number: '' });
    expect(telNumber('tel:')).toEqual({ number: '' });
  });
});
