import { BlockList, isIP } from 'node:net';

/** proxy-addr's named ranges (what Fastify's trustProxy understands), as CIDRs. */
const NAMED_RANGES: Record<string, string[]> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

export interface TrustedProxies {
  /** Fastify's `trustProxy`: the CIDRs, or false when no proxy is trusted. */
  trustProxy: string[] | false;
  /** Whether a peer address (IPv4-mapped IPv6 included) is one of the trusted proxies. */
  trusts(address: string | undefined): boolean;
}

/**
 * TRUST_PROXY, parsed once for both uses: Fastify believes X-Forwarded-For/-Host/-Proto only from
 * these peers, and per-address socket limits skip them (every client of a proxy shares its address).
 * The entries were validated by the config schema.
 */
export function trustedProxies(entries: readonly string[]): TrustedProxies {
  const cidrs = entries.flatMap((e) => NAMED_RANGES[e] ?? [e.includes('/') ? e : `${e}/${isIP(e) === 6 ? 128 : 32}`]);
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [net, bits] = cidr.split('/') as [string, string];
    list.addSubnet(net, Number(bits), isIP(net) === 6 ? 'ipv6' : 'ipv4');
  }
  return {
    trustProxy: cidrs.length ? cidrs : false,
    trusts(address) {
      if (!address || cidrs.length === 0) return false;
      const family = isIP(address);
      return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4');
    },
  };
}
