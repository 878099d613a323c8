import dns from 'node:dns';
import type { LookupAddress, LookupOptions } from 'node:dns';
import type { LookupFunction, Socket } from 'node:net';
import { isIP } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { classifyAddress, describeVerdict } from './address.js';
import { UrlRefusedError } from './refusal.js';
import { isExemptHost, type UrlRules } from './url-check.js';

export type LookupLike = typeof dns.lookup;

export interface SafeAgentOptions extends Pick<UrlRules, 'allowPrivateNetworks' | 'allowHosts'> {
  connectTimeoutMs?: number;
  /** Idle limits between bytes; the caller's own deadline still bounds the whole exchange. */
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  lookup?: LookupLike;
  /** Test-only: the CA certificates to trust instead of the system's (a self-signed test server). */
  ca?: string | Buffer;
}

function refusalFor(address: string): UrlRefusedError | null {
  const verdict = classifyAddress(address);
  if (verdict.allowed) return null;
  return new UrlRefusedError('blocked_address', `URL resolves to ${describeVerdict(verdict)}`, { range: verdict.range });
}

/**
 * A resolver for net.connect that hands the socket only addresses that passed the check. The socket
 * connects to exactly what this returns, so the address checked is the address used: a name that
 * resolves differently the second time (DNS rebinding) cannot slip in between check and connect.
 * Every answer must pass, not just the first, because happy-eyeballs may try any of them.
 */
export function guardedLookup(base: LookupLike = dns.lookup): LookupFunction {
  return (hostname: string, options: LookupOptions, callback) => {
    const cb = callback as (err: NodeJS.ErrnoException | null, address?: string | LookupAddress[], family?: number) => void;
    base(hostname, { ...options, all: true }, (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => {
      if (err) return cb(err);
      if (!Array.isArray(addresses) || addresses.length === 0) {
        const e: NodeJS.ErrnoException = new Error(`no address for ${hostname}`);
        e.code = 'ENOTFOUND';
        return cb(e);
      }
      for (const a of addresses) {
        const refusal = refusalFor(a.address);
        if (refusal) return cb(refusal);
      }
      if (options.all) return cb(null, addresses);
      return cb(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

function plainLookup(base: LookupLike): LookupFunction {
  return (hostname, options, callback) => base(hostname, options, callback as never);
}

/**
 * An undici Agent whose every connection goes through the address check. IP-literal hosts never reach
 * a resolver (net.connect skips lookup for them), so they are checked here before a socket exists; the
 * peer address of the connected socket is checked once more as a last line, so that a future change in
 * how undici or node connect cannot silently bypass the resolver hook.
 */
export function createSafeAgent(opts: SafeAgentOptions = {}): Agent {
  const base = opts.lookup ?? dns.lookup;
  const timeout = opts.connectTimeoutMs ?? 5000;
  const tls = opts.ca === undefined ? {} : { ca: opts.ca };
  const checked = buildConnector({ timeout, lookup: guardedLookup(base), ...tls });
  const unchecked = buildConnector({ timeout, lookup: plainLookup(base), ...tls });
  const rules: UrlRules = { allowHosts: opts.allowHosts };

  const connect: buildConnector.connector = (o, callback) => {
    const port = o.port === '' ? (o.protocol === 'https:' ? 443 : 80) : Number(o.port);
    if (opts.allowPrivateNetworks || isExemptHost(rules, o.hostname, port)) return unchecked(o, callback);
    if (isIP(o.hostname) !== 0) {
      const refusal = refusalFor(o.hostname);
      if (refusal) return callback(refusal, null);
    }
    checked(o, (err, socket) => {
      if (err || !socket) return callback(err ?? new Error('connect failed'), null);
      const peer = (socket as Socket).remoteAddress;
      const refusal = peer === undefined ? new UrlRefusedError('blocked_address', 'URL connection has no peer address') : refusalFor(peer);
      if (refusal) {
        socket.destroy();
        return callback(refusal, null);
      }
      callback(null, socket);
    });
  };

  return new Agent({
    connect,
    headersTimeout: opts.headersTimeoutMs ?? 30_000,
    bodyTimeout: opts.bodyTimeoutMs ?? 30_000,
    // One fetch talks to one origin at a time; a pool would only keep sockets open after it is done.
    connections: 1,
    pipelining: 1,
  });
}
