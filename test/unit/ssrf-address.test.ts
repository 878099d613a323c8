import { describe, expect, it } from 'vitest';
import { classifyAddress, describeVerdict, parseIp } from '../../src/net/address.js';

/** [address, expected: 'allowed' or the blocked range] */
const V4: Array<[string, string]> = [
  // public unicast
  ['8.8.8.8', 'allowed'],
  ['1.1.1.1', 'allowed'],
  ['93.184.215.14', 'allowed'],
  ['100.63.255.255', 'allowed'], // just below CGNAT
  ['100.128.0.0', 'allowed'], // just above CGNAT
  ['172.15.255.255', 'allowed'],
  ['172.32.0.0', 'allowed'],
  ['192.167.255.255', 'allowed'],
  ['192.169.0.0', 'allowed'],
  ['198.17.255.255', 'allowed'],
  ['198.20.0.0', 'allowed'],
  ['223.255.255.255', 'allowed'],
  ['11.0.0.1', 'allowed'],
  ['126.255.255.255', 'allowed'],
  ['128.0.0.1', 'allowed'],
  ['169.253.255.255', 'allowed'],
  ['169.255.0.0', 'allowed'],
  // blocked
  ['0.0.0.0', 'this_network'],
  ['0.255.255.255', 'this_network'],
  ['10.0.0.1', 'private'],
  ['10.255.255.255', 'private'],
  ['100.64.0.1', 'cgnat'],
  ['100.127.255.255', 'cgnat'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['169.254.169.254', 'link_local'],
  ['169.254.0.1', 'link_local'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['192.0.0.8', 'ietf_protocol'],
  ['192.0.2.10', 'documentation'],
  ['192.88.99.1', 'reserved'],
  ['192.168.0.1', 'private'],
  ['192.168.255.255', 'private'],
  ['198.18.0.1', 'benchmarking'],
  ['198.19.255.255', 'benchmarking'],
  ['198.51.100.7', 'documentation'],
  ['203.0.113.99', 'documentation'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['254.1.2.3', 'reserved'],
  ['255.255.255.254', 'reserved'],
  ['255.255.255.255', 'broadcast'],
];

const V6: Array<[string, string]> = [
  // global unicast
  ['2606:4700:4700::1111', 'allowed'],
  ['2001:4860:4860::8888', 'allowed'],
  ['2a00:1450:4001:80b::200e', 'allowed'],
  ['2001:200::1', 'allowed'], // first block after 2001::/23
  ['3ffe::1', 'allowed'],
  // embedded public IPv4 reaches a public host
  ['::ffff:8.8.8.8', 'allowed'],
  ['::ffff:808:808', 'allowed'],
  ['64:ff9b::8.8.8.8', 'allowed'],
  ['2002:808:808::1', 'allowed'],
  // blocked
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['0:0:0:0:0:0:0:1', 'loopback'],
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['0:0:0:0:0:ffff:7f00:0001', 'loopback'],
  ['::ffff:10.0.0.1', 'private'],
  ['::ffff:169.254.169.254', 'link_local'],
  ['::ffff:0.0.0.0', 'this_network'],
  ['::ffff:192.168.1.1', 'private'],
  ['::127.0.0.1', 'ipv4_compatible'],
  ['::7f00:1', 'ipv4_compatible'],
  ['::8.8.8.8', 'ipv4_compatible'],
  ['::ffff:0:7f00:1', 'ipv4_translated'],
  ['64:ff9b::127.0.0.1', 'loopback'],
  ['64:ff9b::7f00:1', 'loopback'],
  ['64:ff9b::a9fe:a9fe', 'link_local'],
  ['64:ff9b:1::a00:1', 'nat64_local'],
  ['2002:7f00:1::', 'loopback'],
  ['2002:a00:1::1', 'private'],
  ['2002:c0a8:101::', 'private'],
  ['2002:a9fe:a9fe::', 'link_local'],
  ['100::1', 'discard'],
  ['2001::1', 'teredo'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'teredo'],
  ['2001:db8::1', 'documentation'],
  ['2001:10::1', 'ietf_protocol'],
  ['2001:1ff::1', 'ietf_protocol'],
  ['3fff::1', 'documentation'],
  ['5f00::1', 'srv6'],
  ['fc00::1', 'unique_local'],
  ['fd12:3456:789a::1', 'unique_local'],
  ['fe80::1', 'link_local'],
  ['fe80::1%eth0', 'link_local'],
  ['febf::1', 'link_local'],
  ['fec0::1', 'site_local'],
  ['ff02::1', 'multicast'],
  ['ff05::1:3', 'multicast'],
  ['fd00:ec2::254', 'unique_local'], // AWS IMDS over IPv6
  ['1::1', 'not_global_unicast'],
  ['4000::1', 'not_global_unicast'],
  ['e000::1', 'not_global_unicast'],
];

const NOT_ADDRESSES = ['', 'localhost', '127.1', '0x7f.0.0.1', '0177.0.0.1', '2130706433', '127.0.0.01', '1.2.3.4.5', '::ffff:127.1', '[::1]', 'fe80::1::2', '12345::1', 'example.com'];

function outcome(address: string): string {
  const v = classifyAddress(address);
  return v.allowed ? 'allowed' : v.range;
}

describe('classifyAddress', () => {
  it.each(V4)('IPv4 %s → %s', (address, expected) => {
    expect(outcome(address)).toBe(expected);
  });

  it.each(V6)('IPv6 %s → %s', (address, expected) => {
    expect(outcome(address)).toBe(expected);
  });

  // Resolvers and the URL parser only ever hand out dotted decimal; a legacy notation reaching this
  // far means something skipped normalisation, so it is refused rather than interpreted.
  it.each(NOT_ADDRESSES)('refuses non-canonical or non-address text %j', (text) => {
    expect(outcome(text)).toBe('invalid');
  });

  it('names the embedded IPv4 address and how it was carried', () => {
    const v = classifyAddress('::ffff:127.0.0.1');
    expect(v).toEqual({ allowed: false, range: 'loopback', via: 'ipv4_mapped', embedded: '127.0.0.1' });
    if (v.allowed) throw new Error('unreachable');
    expect(describeVerdict(v)).toBe('a loopback address (127.0.0.1 inside an IPv4-mapped address)');
    const n = classifyAddress('64:ff9b::a9fe:a9fe');
    if (n.allowed) throw new Error('unreachable');
    expect(describeVerdict(n)).toBe('a link-local address (169.254.169.254 inside a NAT64 address)');
    const s = classifyAddress('2002:a00:1::');
    if (s.allowed) throw new Error('unreachable');
    expect(describeVerdict(s)).toBe('a private address (10.0.0.1 inside a 6to4 address)');
  });
});

describe('parseIp', () => {
  it.each([
    ['::', '00000000000000000000000000000000'],
    ['::1', '00000000000000000000000000000001'],
    ['1::', '00010000000000000000000000000000'],
    ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'],
    ['1:2:3::6:7:8', '00010002000300000000000600070008'],
    ['::ffff:1.2.3.4', '00000000000000000000ffff01020304'],
    ['64:ff9b::192.0.2.33', '0064ff9b0000000000000000c0000221'],
    ['FE80::ABCD%25', 'fe80000000000000000000000000abcd'],
  ])('%s', (text, hex) => {
    const p = parseIp(text);
    expect(p?.family).toBe(6);
    expect(Buffer.from(p!.bytes).toString('hex')).toBe(hex);
  });

  it('parses dotted IPv4', () => {
    expect(parseIp('192.168.0.1')).toEqual({ family: 4, bytes: Uint8Array.from([192, 168, 0, 1]) });
  });
});
