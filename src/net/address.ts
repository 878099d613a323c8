import { isIP } from 'node:net';

/**
 * Which destination addresses a server-side fetch may connect to. IPv4 is a deny list drawn from the
 * IANA special-purpose registry; IPv6 is an allow list (global unicast 2000::/3 only) with the
 * special blocks inside it denied, because IPv6 keeps gaining local-only prefixes and an allow list
 * fails closed when it does. Forms that carry an IPv4 address inside IPv6 (mapped, NAT64, 6to4) are
 * judged by the IPv4 address they reach.
 *
 * Input is an address as the resolver or the WHATWG URL parser hands it out: dotted-decimal IPv4
 * (other notations are normalised by the URL parser before they get here) or any RFC 4291 IPv6 text,
 * with an optional zone id. Anything else is refused rather than guessed at.
 */

export type BlockedRange =
  | 'invalid'
  | 'this_network'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'cgnat'
  | 'link_local'
  | 'ietf_protocol'
  | 'documentation'
  | 'benchmarking'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'unique_local'
  | 'site_local'
  | 'discard'
  | 'teredo'
  | 'ipv4_compatible'
  | 'ipv4_translated'
  | 'nat64_local'
  | 'srv6'
  | 'not_global_unicast';

/** How an IPv4 address was carried inside IPv6, when it was. */
export type Embedding = 'ipv4_mapped' | 'nat64' | '6to4';

export type AddressVerdict =
  | { readonly allowed: true; readonly family: 4 | 6 }
  | { readonly allowed: false; readonly range: BlockedRange; readonly via?: Embedding; readonly embedded?: string };

const RANGE_LABEL: Record<BlockedRange, string> = {
  invalid: 'an unparseable address',
  this_network: "a 'this network' address",
  unspecified: 'the unspecified address',
  loopback: 'a loopback address',
  private: 'a private address',
  cgnat: 'a carrier-grade NAT address',
  link_local: 'a link-local address',
  ietf_protocol: 'an IETF protocol assignment address',
  documentation: 'a documentation address',
  benchmarking: 'a benchmarking address',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
  reserved: 'a reserved address',
  unique_local: 'a unique-local address',
  site_local: 'a site-local address',
  discard: 'a discard-only address',
  teredo: 'a Teredo address',
  ipv4_compatible: 'an IPv4-compatible IPv6 address',
  ipv4_translated: 'an IPv4-translated IPv6 address',
  nat64_local: 'a local-use NAT64 address',
  srv6: 'an SRv6 segment identifier',
  not_global_unicast: 'an IPv6 address outside global unicast',
};

/** The phrase used in refusal messages, e.g. "a loopback address". */
export function describeRange(range: BlockedRange): string {
  return RANGE_LABEL[range];
}

function parseIPv4(text: string): Uint8Array | null {
  if (isIP(text) !== 4) return null;
  return Uint8Array.from(text.split('.').map(Number));
}

function parseIPv6(text: string): Uint8Array | null {
  // Validation is node's (the same code path net.connect uses); this only turns valid text into bytes.
  if (isIP(text) !== 6) return null;
  let head = text;
  let v4Tail: Uint8Array | null = null;
  const lastColon = head.lastIndexOf(':');
  if (head.includes('.', lastColon)) {
    v4Tail = parseIPv4(head.slice(lastColon + 1));
    if (!v4Tail) return null;
    head = head.slice(0, lastColon + 1) + '0:0';
  }
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const toGroups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const left = toGroups(halves[0]!);
  const right = halves.length === 2 ? toGroups(halves[1]!) : [];
  const fill = 8 - left.length - right.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return null;
  const groups = [...left, ...Array<string>(fill).fill('0'), ...right];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    const n = parseInt(g, 16);
    bytes[i * 2] = n >> 8;
    bytes[i * 2 + 1] = n & 0xff;
  });
  if (v4Tail) bytes.set(v4Tail, 12);
  return bytes;
}

/** Parses an IP address into its bytes; a zone id (`fe80::1%eth0`) is dropped. Null when not an IP. */
export function parseIp(text: string): { family: 4; bytes: Uint8Array } | { family: 6; bytes: Uint8Array } | null {
  const v4 = parseIPv4(text);
  if (v4) return { family: 4, bytes: v4 };
  const zone = text.indexOf('%');
  const v6 = parseIPv6(zone === -1 ? text : text.slice(0, zone));
  return v6 ? { family: 6, bytes: v6 } : null;
}

interface Cidr {
  readonly bytes: Uint8Array;
  readonly bits: number;
  readonly range: BlockedRange;
}

function cidr(spec: string, range: BlockedRange): Cidr {
  const [addr, bits] = spec.split('/');
  const parsed = parseIp(addr!);
  if (!parsed) throw new Error(`bad CIDR in table: ${spec}`);
  return { bytes: parsed.bytes, bits: Number(bits), range };
}

function inCidr(bytes: Uint8Array, c: Cidr): boolean {
  if (bytes.length !== c.bytes.length) return false;
  const whole = c.bits >> 3;
  for (let i = 0; i < whole; i++) if (bytes[i] !== c.bytes[i]) return false;
  const rest = c.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (bytes[whole]! & mask) === (c.bytes[whole]! & mask);
}

// Order matters where blocks nest: the most specific entry comes first so its label wins.
const V4_BLOCKED: readonly Cidr[] = [
  cidr('0.0.0.0/8', 'this_network'),
  cidr('10.0.0.0/8', 'private'),
  cidr('100.64.0.0/10', 'cgnat'),
  cidr('127.0.0.0/8', 'loopback'),
  cidr('169.254.0.0/16', 'link_local'),
  cidr('172.16.0.0/12', 'private'),
  cidr('192.0.0.0/24', 'ietf_protocol'),
  cidr('192.0.2.0/24', 'documentation'),
  cidr('192.88.99.0/24', 'reserved'), // deprecated 6to4 relay anycast (RFC 7526)
  cidr('192.168.0.0/16', 'private'),
  cidr('198.18.0.0/15', 'benchmarking'),
  cidr('198.51.100.0/24', 'documentation'),
  cidr('203.0.113.0/24', 'documentation'),
  cidr('224.0.0.0/4', 'multicast'),
  cidr('255.255.255.255/32', 'broadcast'),
  cidr('240.0.0.0/4', 'reserved'),
];

const V6_BLOCKED: readonly Cidr[] = [
  cidr('::/128', 'unspecified'),
  cidr('::1/128', 'loopback'),
  cidr('::/96', 'ipv4_compatible'), // deprecated by RFC 4291; nothing legitimate uses it
  cidr('::ffff:0:0:0/96', 'ipv4_translated'),
  cidr('64:ff9b:1::/48', 'nat64_local'), // RFC 8215: the translator, and what it reaches, are local
  cidr('100::/64', 'discard'),
  cidr('2001::/32', 'teredo'),
  cidr('2001:db8::/32', 'documentation'),
  cidr('2001::/23', 'ietf_protocol'),
  cidr('3fff::/20', 'documentation'), // RFC 9637
  cidr('5f00::/16', 'srv6'),
  cidr('fc00::/7', 'unique_local'),
  cidr('fe80::/10', 'link_local'),
  cidr('fec0::/10', 'site_local'),
  cidr('ff00::/8', 'multicast'),
];

const V4_MAPPED = cidr('::ffff:0:0/96', 'invalid');
const NAT64_WKP = cidr('64:ff9b::/96', 'invalid');
const SIX_TO_FOUR = cidr('2002::/16', 'invalid');
const GLOBAL_UNICAST = cidr('2000::/3', 'invalid');

function classifyV4(bytes: Uint8Array): BlockedRange | null {
  for (const c of V4_BLOCKED) if (inCidr(bytes, c)) return c.range;
  return null;
}

function embedded(bytes: Uint8Array, via: Embedding, at: number): AddressVerdict {
  const v4 = bytes.subarray(at, at + 4);
  const range = classifyV4(v4);
  if (range === null) return { allowed: true, family: 6 };
  return { allowed: false, range, via, embedded: Array.from(v4).join('.') };
}

/** Whether a fetch may connect to `address`, and if not, which special block it falls in. */
export function classifyAddress(address: string): AddressVerdict {
  const ip = parseIp(address);
  if (!ip) return { allowed: false, range: 'invalid' };
  if (ip.family === 4) {
    const range = classifyV4(ip.bytes);
    return range === null ? { allowed: true, family: 4 } : { allowed: false, range };
  }
  const b = ip.bytes;
  if (inCidr(b, V4_MAPPED)) return embedded(b, 'ipv4_mapped', 12);
  if (inCidr(b, NAT64_WKP)) return embedded(b, 'nat64', 12);
  if (inCidr(b, SIX_TO_FOUR)) return embedded(b, '6to4', 2);
  for (const c of V6_BLOCKED) if (inCidr(b, c)) return { allowed: false, range: c.range };
  if (!inCidr(b, GLOBAL_UNICAST)) return { allowed: false, range: 'not_global_unicast' };
  return { allowed: true, family: 6 };
}

/** "a loopback address", or "a loopback address (127.0.0.1 inside an IPv4-mapped address)". */
export function describeVerdict(v: Extract<AddressVerdict, { allowed: false }>): string {
  const base = describeRange(v.range);
  if (!v.via) return base;
  const how = v.via === 'ipv4_mapped' ? 'an IPv4-mapped' : v.via === 'nat64' ? 'a NAT64' : 'a 6to4';
  return `${base} (${v.embedded} inside ${how} address)`;
}
