import { isIP } from 'node:net';
import { classifyAddress, describeVerdict } from './address.js';
import { UrlRefusedError } from './refusal.js';

export const DEFAULT_ALLOWED_PORTS: readonly number[] = [80, 443];

export interface UrlRules {
  /** Test-only: lifts the address and port rules entirely. Never set in production. */
  allowPrivateNetworks?: boolean;
  allowedPorts?: readonly number[];
  /**
   * Test-only: exact `host:port` pairs (as in `URL.host` with the port always written, e.g.
   * `127.0.0.1:40123`, `[::1]:40123`) exempt from the address and port rules. Narrower than
   * `allowPrivateNetworks`, so a test can let one local server in while still proving that a redirect
   * to any other local address or port is refused.
   */
  allowHosts?: readonly string[];
}

function defaultPort(protocol: string): number {
  return protocol === 'https:' ? 443 : 80;
}

/** `hostname` as the connector sees it (IPv6 without brackets) or as URL gives it (with them). */
export function hostPortKey(hostname: string, port: number): string {
  const bare = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
  const host = isIP(bare) === 6 ? `[${bare}]` : bare.toLowerCase();
  return `${host}:${port}`;
}

export function isExemptHost(rules: UrlRules, hostname: string, port: number): boolean {
  if (!rules.allowHosts || rules.allowHosts.length === 0) return false;
  const key = hostPortKey(hostname, port);
  return rules.allowHosts.some((h) => h.toLowerCase() === key);
}

export function effectivePort(url: URL): number {
  return url.port === '' ? defaultPort(url.protocol) : Number(url.port);
}

/** Names RFC 6761 reserves for the local machine: no resolver answer for them is ever public. */
function isLocalhostName(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/\.$/, '');
  return h === 'localhost' || h.endsWith('.localhost');
}

/**
 * The checks that need no network: scheme, credentials, port, and hosts that are IP literals. The
 * WHATWG parser has already turned every IPv4 notation (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`)
 * into dotted decimal and IPv6 into canonical text, so classifying `hostname` sees the real address.
 * Host names are judged later, at connect time, by the address they resolve to.
 */
export function assertUrlAllowedSyntax(url: string, rules: UrlRules): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UrlRefusedError('invalid_url', 'URL is not a valid absolute URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new UrlRefusedError('scheme', `URL scheme ${u.protocol} is not allowed; use http or https`, { scheme: u.protocol });
  }
  if (u.username !== '' || u.password !== '') {
    throw new UrlRefusedError('credentials', 'URL must not contain credentials');
  }
  if (u.hostname === '') throw new UrlRefusedError('invalid_url', 'URL has no host');
  const port = effectivePort(u);
  if (rules.allowPrivateNetworks || isExemptHost(rules, u.hostname, port)) return u;

  const allowed = rules.allowedPorts ?? DEFAULT_ALLOWED_PORTS;
  if (!allowed.includes(port)) {
    throw new UrlRefusedError('port', `URL port ${port} is not allowed`, { port });
  }
  const bare = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  if (isIP(bare) !== 0) {
    const verdict = classifyAddress(bare);
    if (!verdict.allowed) {
      throw new UrlRefusedError('blocked_address', `URL points to ${describeVerdict(verdict)}`, { range: verdict.range });
    }
  } else if (isLocalhostName(bare)) {
    throw new UrlRefusedError('blocked_host', 'URL points to the local machine');
  }
  return u;
}
