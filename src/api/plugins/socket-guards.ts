import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../../log.js';

export interface SocketGuardOptions {
  /** A body slower than this, over `bodyRateWindowMs` spent waiting on the client, is cut; 0: never. */
  bodyMinBytesPerSecond: number;
  bodyRateWindowMs: number;
  /** Open sockets per peer address; 0: unbounded. */
  maxConnectionsPerIp: number;
  /** Peers exempt from the per-address bound (trusted proxies carry many clients on one address). */
  exempt(address: string): boolean;
  log: Logger;
}

/**
 * Bounds on what one client can hold of the API's sockets, below Fastify (headers have their own
 * deadline, `headersTimeout`, set where the server is made):
 *
 * - a request body must keep coming: over each window of time spent waiting on the client, it
 *   must average at least the floor rate, or the socket is destroyed. Time the server itself is
 *   behind (bytes received but not yet read, e.g. while storage is slow) does not count, so only a
 *   trickling client is cut; a slow but real mobile upload (tens of KiB/s) is far above a floor of
 *   about 1 KiB/s. A cut upload ends like any aborted one: the upload path keeps nothing.
 * - at most `maxConnectionsPerIp` open sockets per peer address; more are destroyed on accept.
 */
export function registerSocketGuards(server: Server, opts: SocketGuardOptions): void {
  if (opts.bodyMinBytesPerSecond > 0) {
    server.on('request', (req: IncomingMessage) => watchBodyRate(req, opts));
  }
  if (opts.maxConnectionsPerIp > 0) limitConnectionsPerIp(server, opts);
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

function watchBodyRate(req: IncomingMessage, opts: SocketGuardOptions): void {
  if (!hasBody(req) || req.complete) return;
  const socket = req.socket;
  const windowMs = opts.bodyRateWindowMs;
  const sampleMs = Math.max(100, Math.min(1000, windowMs / 10));
  let lastBytes = socket.bytesRead;
  let lastAt = performance.now();
  let waitedMs = 0;
  let waitedBytes = 0;
  // Bound to the request, not the socket: a keep-alive socket carries many requests, and a listener
  // per request left on it until the next tick would pile up.
  const stop = () => {
    clearInterval(timer);
    req.off('end', stop);
    req.off('close', stop);
  };
  const timer = setInterval(() => {
    if (req.complete || socket.destroyed) return stop();
    const now = performance.now();
    const bytes = socket.bytesRead;
    const got = bytes - lastBytes;
    const elapsed = now - lastAt;
    lastBytes = bytes;
    lastAt = now;
    // Unread bytes mean the server is the one behind: this slice does not count against the client.
    if (req.readableLength > 0) return;
    waitedMs += elapsed;
    waitedBytes += got;
    if (waitedMs < windowMs) return;
    const rate = (waitedBytes * 1000) / waitedMs;
    waitedMs = 0;
    waitedBytes = 0;
    if (rate >= opts.bodyMinBytesPerSecond) return;
    opts.log.warn(
      { remoteAddress: socket.remoteAddress, bytesPerSecond: Math.round(rate), floor: opts.bodyMinBytesPerSecond, method: req.method },
      'request body slower than BODY_MIN_BYTES_PER_SECOND: connection cut',
    );
    stop();
    socket.destroy();
  }, sampleMs);
  timer.unref();
  req.once('end', stop);
  req.once('close', stop);
}

function limitConnectionsPerIp(server: Server, opts: SocketGuardOptions): void {
  const open = new Map<string, number>();
  const warnedAt = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const addr = socket.remoteAddress;
    if (!addr || opts.exempt(addr)) return;
    const key = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
    const n = (open.get(key) ?? 0) + 1;
    if (n > opts.maxConnectionsPerIp) {
      // One line per address per minute: a flood of refusals must not become a flood of logs.
      const now = Date.now();
      if ((warnedAt.get(key) ?? 0) < now - 60_000) {
        warnedAt.set(key, now);
        if (warnedAt.size > 10_000) warnedAt.clear();
        opts.log.warn({ remoteAddress: key, limit: opts.maxConnectionsPerIp }, 'too many open connections from one address (MAX_CONNECTIONS_PER_IP): refusing more');
      }
      socket.destroy();
      return;
    }
    open.set(key, n);
    socket.once('close', () => {
      const left = (open.get(key) ?? 1) - 1;
      if (left > 0) open.set(key, left);
      else open.delete(key);
    });
  });
}
