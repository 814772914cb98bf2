// Where a URL from a webhook may lead: an allow-list entry names a scheme, a host and a port, all
// three of which a URL must match, and optionally a path the URL must be under. HTTPS unless the
// entry says `http://`; the scheme's own port unless the entry names one; `*.example.com` for any
// subdomain. So `pbx.example.com` never lets a webhook reach `http://pbx.example.com:19002`, and
// `https://pbx:5001/webapi/recording/` keeps the PBX's credentials off the rest of its web API.

import { BlockList, isIP } from 'node:net';

export interface HostRule {
  scheme: 'http:' | 'https:';
  /** Lower-case host name or IP (IPv6 without brackets); for a wildcard, the parent domain. */
  host: string;
  wildcard: boolean;
  port: string;
  /** The path a URL must be under, whole segments, ending in `/` (`/`: any path). */
  path: string;
}

const ENTRY =
  /^(?:(https?):\/\/)?(\*\.)?(\[[0-9a-f:.]+\]|[^/:\s[\]@]+)(?::(\d{1,5}))?(\/[^\s?#]*)?$/i;

/** An allow-list entry as a rule, or undefined if it is not one (config errors say so). */
export function parseHostRule(entry: string): HostRule | undefined {
  const m = ENTRY.exec(entry.trim());
  if (!m) return undefined;
  const scheme = m[1]?.toLowerCase() === 'http' ? 'http:' : 'https:';
  const port = m[4] ?? (scheme === 'http:' ? '80' : '443');
  if (Number(port) < 1 || Number(port) > 65535) return undefined;
  const path = pathPrefix(m[5] ?? '/');
  if (path === undefined) return undefined;
  return {
    scheme,
    host: m[3]!.replace(/^\[|\]$/g, '').toLowerCase(),
    wildcard: !!m[2],
    port,
    path,
  };
}

/**
 * An entry's path as a prefix of whole segments (`/webapi/recording` is `/webapi/recording/`), or
 * undefined for one that is not already in the form a URL's path takes (dot segments, encoded
 * slashes, characters a URL would encode): what it allows must be plain to read.
 */
function pathPrefix(path: string): string | undefined {
  if (new URL(path, 'http://h').pathname !== path || !plainSegments(path)) return undefined;
  return path.endsWith('/') ? path : `${path}/`;
}

/** No segment that decodes to a dot segment or carries a slash or backslash (a server's `..`). */
function plainSegments(path: string): boolean {
  return path.split('/').every((seg) => {
    let d: string;
    try {
      d = decodeURIComponent(seg);
    } catch {
      return false;
    }
    return d !== '.' && d !== '..' && !/[/\\]/.test(d);
  });
}

/** Whether a URL's (normalised) path is the prefix or under it, segment by segment. */
function under(pathname: string, prefix: string): boolean {
  if (prefix === '/') return true;
  if (!plainSegments(pathname)) return false;
  return (pathname.endsWith('/') ? pathname : `${pathname}/`).startsWith(prefix);
}

/**
 * Whether `url` is one a rule allows: same scheme, same port, same host (or a subdomain), under
 * the rule's path. The URL is judged as parsed (dot segments resolved, backslashes as slashes),
 * which is the form to fetch it in: the PBX then gets the path that was checked.
 */
export function urlAllowed(url: string, rules: HostRule[]): HostRule | undefined {
  if (!URL.canParse(url)) return undefined;
  const u = new URL(url);
  if (u.username || u.password) return undefined;
  const host = u.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = u.port || (u.protocol === 'http:' ? '80' : '443');
  return rules.find(
    (r) =>
      r.scheme === u.protocol &&
      r.port === port &&
      (r.wildcard ? host.endsWith(`.${r.host}`) : host === r.host) &&
      under(u.pathname, r.path),
  );
}

// Loopback, private, link-local, carrier-grade NAT, benchmarking and unspecified ranges: where a
// webhook's URL must not lead unless the admin says so.
const PRIVATE = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
] as const)
  PRIVATE.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  // NAT64 for a site's own translators (RFC 8215): what is behind it is local by definition.
  ['64:ff9b:1::', 48],
] as const)
  PRIVATE.addSubnet(net, bits, 'ipv6');

/** The eight 16-bit words of an IPv6 address (valid, as isIP says), a dotted IPv4 tail included. */
function ipv6Words(address: string): number[] {
  let a = address.replace(/%.*$/, '').toLowerCase();
  const tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (tail) {
    const [b1, b2, b3, b4] = tail.slice(1).map(Number) as [number, number, number, number];
    a = `${a.slice(0, tail.index)}${((b1 << 8) | b2).toString(16)}:${((b3 << 8) | b4).toString(16)}`;
  }
  const [head = '', rest] = a.split('::');
  const words = (s: string): number[] => (s ? s.split(':').map((w) => parseInt(w, 16)) : []);
  const h = words(head);
  const t = rest === undefined ? [] : words(rest);
  return [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
}

const ipv4Of = (hi: number, lo: number): string => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;

/**
 * The IPv4 address an IPv6 one carries to the IPv4 internet, if any: NAT64 (64:ff9b::/96) and
 * 6to4 (2002::/16) reach it, so a name resolving there leads where that IPv4 address does.
 */
function embeddedIpv4(address: string): string | undefined {
  const w = ipv6Words(address);
  if (w[0] === 0x64 && w[1] === 0xff9b && w.slice(2, 6).every((x) => x === 0))
    return ipv4Of(w[6]!, w[7]!);
  if (w[0] === 0x2002) return ipv4Of(w[1]!, w[2]!);
  return undefined;
}

/**
 * Whether an IP address is loopback, private or link-local: IPv4-mapped IPv6 included, and NAT64
 * and 6to4 addresses judged by the IPv4 address they lead to.
 */
export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return PRIVATE.check(mapped[1]!, 'ipv4');
  const kind = isIP(address);
  if (kind === 4) return PRIVATE.check(address, 'ipv4');
  if (kind !== 6) return false;
  const inner = embeddedIpv4(address);
  return inner !== undefined ? PRIVATE.check(inner, 'ipv4') : PRIVATE.check(address, 'ipv6');
}

export const isIpLiteral = (host: string): boolean => isIP(host) !== 0;
