// Address lists for the webhook edge: a source's allowIps and the proxies in server.trustProxy
// ("203.0.113.7", "10.0.0.0/8", "2001:db8::/32"), and the client address of a request as the
// trusted proxies in front of the relay report it.

import { BlockList, isIP } from 'node:net';

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** "::ffff:10.0.0.5" (an IPv4 peer on a dual-stack socket) is 10.0.0.5. */
export function plainAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

/** An address or a CIDR block; undefined if it is neither. */
export function parseCidr(entry: string): Cidr | undefined {
  const [addr = '', bits, extra] = entry.trim().split('/');
  if (extra !== undefined) return undefined;
  const address = plainAddress(addr);
  const version = isIP(address);
  if (!version) return undefined;
  const max = version === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** Whether an address is in any of the entries (compiled once; entries already validated). */
export function addressMatcher(entries: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const e of entries) {
    const c = parseCidr(e);
    if (c) list.addSubnet(c.address, c.prefix, c.family);
  }
  return (address) => {
    const a = plainAddress(address);
    const v = isIP(a);
    return v !== 0 && list.check(a, v === 4 ? 'ipv4' : 'ipv6');
  };
}

/**
 * The client's address: the socket's peer, unless that peer is a trusted proxy; then the
 * X-Forwarded-For hops are walked from the right (the nearest) past trusted proxies, and the first
 * untrusted one is the client. Hops a client wrote itself sit further left and are never reached
 * while an untrusted hop comes first, so a spoofed header cannot choose the address.
 */
export function clientAddress(
  peer: string,
  forwardedFor: string | undefined,
  trusted: (address: string) => boolean,
): string {
  let client = plainAddress(peer);
  if (!forwardedFor || !trusted(client)) return client;
  const hops = forwardedFor
    .split(',')
    .map((h) => plainAddress(h.trim()))
    .filter(Boolean);
  while (hops.length && trusted(client)) {
    // A hop that is no address is kept as the client: it matches no list.
    client = hops.pop()!;
    if (!isIP(client)) break;
  }
  return client;
}

/**
 * Whom a per-client limit counts: an IPv4 address, or an IPv6 address's /64 (one host or home is
 * usually given a whole /64, so counting single IPv6 addresses would give it 2^64 allowances).
 * Anything that is no address is its own key.
 */
export function clientKey(address: string): string {
  const a = plainAddress(address);
  if (isIP(a) !== 6) return a;
  const [head = '', tail] = a.toLowerCase().replace(/%.*$/, '').split('::');
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  // An embedded dotted IPv4 tail takes two groups; it only ever sits in the last 64 bits.
  const groups = [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
