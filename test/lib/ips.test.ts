// Address lists and the client behind proxies: CIDRs of both families, IPv4 peers on dual-stack
// sockets, and X-Forwarded-For believed only as far as trusted proxies reach.

import { describe, expect, it } from 'vitest';
import { addressMatcher, clientAddress, clientKey, parseCidr } from '../../src/lib/ips.js';

describe('address lists', () => {
  it('parses addresses and CIDR blocks of both families, and nothing else', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseCidr('203.0.113.7')?.prefix).toBe(32);
    expect(parseCidr('2001:db8::/32')?.family).toBe('ipv6');
    for (const bad of ['10.0.0.0/33', '10.0.0/8', 'pbx.example.com', '1.2.3.4/8/1', '::1/129', ''])
      expect(parseCidr(bad), bad).toBeUndefined();
  });

  it('matches IPv4, IPv6 and IPv4 peers of dual-stack sockets', () => {
    const m = addressMatcher(['10.0.0.0/8', '2001:db8::/32', '203.0.113.7']);
    expect(m('10.1.2.3')).toBe(true);
    expect(m('::ffff:10.1.2.3')).toBe(true);
    expect(m('2001:db8::5')).toBe(true);
    expect(m('203.0.113.8')).toBe(false);
    expect(m('11.0.0.1')).toBe(false);
    expect(m('not an address')).toBe(false);
  });

  it('believes X-Forwarded-For only from trusted proxies, hop by hop from the right', () => {
    const proxies = addressMatcher(['10.0.0.0/8']);
    // No trusted proxy in front: the header is the client's own writing.
    expect(clientAddress('198.51.100.9', '203.0.113.7', proxies)).toBe('198.51.100.9');
    // A proxy reports the client.
    expect(clientAddress('10.0.0.2', '203.0.113.7', proxies)).toBe('203.0.113.7');
    // Two proxies; what the client wrote in front of its own address is never reached.
    expect(clientAddress('10.0.0.2', '203.0.113.7, 198.51.100.9, 10.0.0.3', proxies)).toBe(
      '198.51.100.9',
    );
    expect(clientAddress('::ffff:10.0.0.2', 'junk', proxies)).toBe('junk');
    expect(clientAddress('10.0.0.2', undefined, proxies)).toBe('10.0.0.2');
  });
});

describe('whom a per-client limit counts', () => {
  it('an IPv4 address as it is, an IPv6 address by its /64', () => {
    expect(clientKey('203.0.113.7')).toBe('203.0.113.7');
    expect(clientKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
    // Every address of one /64 is one client, however it is written.
    const keys = ['2001:db8:a:b::1', '2001:db8:a:b:ffff:1:2:3', '2001:0db8:000a:000b::9'].map(
      clientKey,
    );
    expect(new Set(keys)).toEqual(new Set(['2001:db8:a:b::/64']));
    expect(clientKey('2001:db8:a:c::1')).not.toBe(keys[0]);
    expect(clientKey('::1')).toBe('0:0:0:0::/64');
    expect(clientKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(clientKey('local')).toBe('local');
  });
});
