/**
 * openUrl against real sockets. The public internet is unreachable here, so every server is local:
 * positive cases lift the address rule with `allowPrivateNetworks` or an exact `allowHosts` entry,
 * and refusals are proven by a canary server that must never see a connection.
 */
import { execFileSync } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type dns from 'node:dns';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/domain/errors.js';
import { UrlFetchFailedError } from '../../src/net/fetch-failure.js';
import { openUrl, type FetchPolicy } from '../../src/net/fetch-source.js';
import { UrlRefusedError } from '../../src/net/refusal.js';
import { createSafeAgent } from '../../src/net/safe-agent.js';

const MB = 1_000_000;

interface Served {
  port: number;
  connections: number;
  requests: http.IncomingMessage[];
  close(): Promise<void>;
}

async function listen(server: net.Server, host = '127.0.0.1'): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return (server.address() as AddressInfo).port;
}

async function closeServer(server: net.Server): Promise<void> {
  (server as http.Server).closeAllConnections?.();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

async function serve(handler: http.RequestListener, host = '127.0.0.1'): Promise<Served> {
  const server = http.createServer(handler);
  const s: Served = { port: 0, connections: 0, requests: [], close: () => closeServer(server) };
  server.on('connection', () => s.connections++);
  server.on('request', (req) => s.requests.push(req));
  s.port = await listen(server, host);
  return s;
}

/** A raw TCP server, for responses node's http server refuses to produce (lying Content-Length). */
async function serveRaw(onSocket: (socket: net.Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.once('data', () => onSocket(socket));
  });
  const port = await listen(server);
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Writes `total` bytes respecting backpressure; resolves with how many the socket accepted before it closed. */
function flood(sink: net.Socket | http.ServerResponse, total: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let written = 0;
  return new Promise((resolve) => {
    const socket = sink instanceof http.ServerResponse ? sink.socket! : sink;
    socket.once('close', () => resolve(written));
    const pump = (): void => {
      while (written < total && !socket.destroyed) {
        written += chunk.length;
        if (!sink.write(chunk)) {
          sink.once('drain', pump);
          return;
        }
      }
      if (written >= total) sink.end();
    };
    pump();
  });
}

type LookupCb = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/** A resolver that knows only the names it is given; records every name it was asked for. */
function fakeLookup(table: Record<string, string[]>, asked: string[] = []): typeof dns.lookup {
  const fn = (hostname: string, options: dns.LookupOptions | LookupCb, callback?: LookupCb): void => {
    const cb = (typeof options === 'function' ? options : callback)!;
    const opts = typeof options === 'function' ? {} : options;
    asked.push(hostname);
    const addrs = table[hostname];
    if (!addrs) {
      process.nextTick(cb, Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '');
      return;
    }
    const list = addrs.map((address) => ({ address, family: net.isIP(address) }));
    if (opts.all) process.nextTick(cb, null, list);
    else process.nextTick(cb, null, list[0]!.address, list[0]!.family);
  };
  return fn as unknown as typeof dns.lookup;
}

async function readAll(body: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Counts connection attempts undici starts (a socket created), whether or not TCP ever connects. */
const connectAttempts: string[] = [];
const onBeforeConnect = (msg: unknown): void => {
  const p = (msg as { connectParams: { hostname: string; port: string } }).connectParams;
  connectAttempts.push(`${p.hostname}:${p.port}`);
};

let canary: Served;

beforeAll(async () => {
  subscribe('undici:client:beforeConnect', onBeforeConnect);
  // Dual-stack, so [::1] and ::ffff:127.0.0.1 would land here too if anything let them through.
  try {
    canary = await serve((_req, res) => res.end('canary'), '::');
  } catch {
    canary = await serve((_req, res) => res.end('canary'));
  }
});

afterAll(async () => {
  unsubscribe('undici:client:beforeConnect', onBeforeConnect);
  await canary.close();
});

beforeEach(() => {
  connectAttempts.length = 0;
});

afterEach(() => {
  // Reset before asserting, so one leak fails one test rather than every test after it.
  const seen = canary.connections;
  canary.connections = 0;
  expect(seen, 'the canary must never be reached').toBe(0);
});

async function refusal(p: Promise<unknown>): Promise<UrlRefusedError> {
  const err = await p.then(
    () => {
      throw new Error('expected a refusal, got a response');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UrlRefusedError);
  const r = err as UrlRefusedError;
  expect(r.code).toBe('VALIDATION_FAILED');
  expect(r).toBeInstanceOf(PermanentError);
  return r;
}

async function fetchFailure(p: Promise<unknown>): Promise<UrlFetchFailedError> {
  const err = await p.then(
    () => {
      throw new Error('expected a failure, got a response');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UrlFetchFailedError);
  const f = err as UrlFetchFailedError;
  // Final: the worker fails the media at once instead of handing the job back to the queue.
  expect(f).toBeInstanceOf(PermanentError);
  expect(f.code).toBe('VALIDATION_FAILED');
  expect(f.details.field).toBe('url');
  return f;
}

/** A raw server that counts connections; `onSocket` runs on each one's first request bytes. */
async function serveCounting(onSocket: (socket: net.Socket, n: number) => void): Promise<{ port: number; connections: () => number; close(): Promise<void> }> {
  let n = 0;
  const raw = await serveRaw((socket) => onSocket(socket, ++n));
  return { port: raw.port, connections: () => n, close: raw.close };
}

describe('the address rule, on and off', () => {
  let origin: Served;
  beforeAll(async () => {
    origin = await serve((req, res) => {
      res.setHeader('content-type', 'image/png');
      res.setHeader('content-length', '11');
      res.end('hello bytes');
    });
  });
  afterAll(() => origin.close());

  it('fetches a local server when private networks are allowed (test setting)', async () => {
    const got = await openUrl(`http://127.0.0.1:${origin.port}/pics/cat%20one.png?x=1`, { maxBytes: 1000, allowPrivateNetworks: true });
    expect((await readAll(got.body)).toString()).toBe('hello bytes');
    expect(got.contentType).toBe('image/png');
    expect(got.declaredLength).toBe(11);
    expect(got.filename).toBe('cat one.png');
    expect(got.finalUrl).toBe(`http://127.0.0.1:${origin.port}/pics/cat%20one.png?x=1`);
    const req = origin.requests.at(-1)!;
    expect(req.headers['accept-encoding']).toBe('identity');
  });

  it('refuses the same URL by default, before any connection (port allowed, so only the address rule bites)', async () => {
    const before = origin.connections;
    const r = await refusal(openUrl(`http://127.0.0.1:${origin.port}/pics/cat.png`, { maxBytes: 1000, allowedPorts: [origin.port] }));
    expect(r.details.reason).toBe('blocked_address');
    expect(r.message).toMatch(/loopback/);
    expect(origin.connections).toBe(before);
    expect(connectAttempts).toEqual([]);
  });

  it('connects to what the injected resolver answers (a name that exists nowhere else)', async () => {
    const asked: string[] = [];
    const got = await openUrl(`http://media.test:${origin.port}/a.png`, {
      maxBytes: 1000,
      allowPrivateNetworks: true,
      lookup: fakeLookup({ 'media.test': ['127.0.0.1'] }, asked),
    });
    expect((await readAll(got.body)).toString()).toBe('hello bytes');
    expect(asked).toEqual(['media.test']);
  });
});

describe('refused targets; the canary sees nothing', () => {
  const lookup = fakeLookup({
    'rebind.test': ['127.0.0.1'],
    'mixed.test': ['93.184.215.14', '127.0.0.1'],
    'mixed6.test': ['2606:4700::1', '::1'],
    'private.test': ['10.1.2.3'],
  });
  const policy = (): FetchPolicy => ({ maxBytes: 1000, allowedPorts: [80, 443, canary.port], lookup, totalTimeoutMs: 5000 });
  const cases: Array<[string, () => string, string, RegExp?, boolean?]> = [
    ['dotted loopback', () => `http://127.0.0.1:${canary.port}/`, 'blocked_address', /loopback/],
    ['decimal integer host', () => `http://2130706433:${canary.port}/`, 'blocked_address', /loopback/],
    ['hex/short form', () => `http://0x7f.1:${canary.port}/`, 'blocked_address', /loopback/],
    ['octal form', () => `http://0177.0.0.1:${canary.port}/`, 'blocked_address', /loopback/],
    ['IPv6 loopback', () => `http://[::1]:${canary.port}/`, 'blocked_address', /loopback/],
    ['IPv4-mapped loopback', () => `http://[::ffff:127.0.0.1]:${canary.port}/`, 'blocked_address', /loopback.*IPv4-mapped/],
    ['NAT64 loopback', () => `http://[64:ff9b::7f00:1]:${canary.port}/`, 'blocked_address', /loopback.*NAT64/],
    ['cloud metadata', () => 'http://169.254.169.254/latest/meta-data/', 'blocked_address', /link-local/],
    ['0.0.0.0', () => `http://0.0.0.0:${canary.port}/`, 'blocked_address', /this network/],
    ['localhost by name', () => `http://localhost:${canary.port}/`, 'blocked_host'],
    ['file scheme', () => 'file:///etc/passwd', 'scheme'],
    ['gopher scheme', () => 'gopher://x', 'scheme'],
    ['credentials', () => 'http://user:pw@example.com/', 'credentials'],
    ['port not allowed', () => 'http://example.com:8080/', 'port'],
    ['name resolving to loopback', () => `http://rebind.test:${canary.port}/`, 'blocked_address', /resolves to a loopback/, true],
    ['name with one public and one private answer', () => `http://mixed.test:${canary.port}/`, 'blocked_address', /loopback/, true],
    ['IPv6 name with one public and one loopback answer', () => `http://mixed6.test:${canary.port}/`, 'blocked_address', /loopback/, true],
    ['name resolving to 10/8', () => `http://private.test:${canary.port}/`, 'blocked_address', /private/, true],
  ];

  it.each(cases)('%s', async (_name, url, reason, message, resolved) => {
    const r = await refusal(openUrl(url(), policy()));
    expect(r.details.reason).toBe(reason);
    if (message) expect(r.message).toMatch(message);
    // Literals are refused before a socket exists; names get a socket whose resolver refuses to answer.
    if (!resolved) expect(connectAttempts).toEqual([]);
    else expect(connectAttempts).toHaveLength(1);
  });

  it('the agent itself refuses IP literals at connect time, without the URL pre-check', async () => {
    const agent = createSafeAgent();
    try {
      for (const origin of [`http://127.0.0.1:${canary.port}`, `http://[::ffff:127.0.0.1]:${canary.port}`, `http://[::1]:${canary.port}`]) {
        const err = await agent.request({ origin, path: '/', method: 'GET' }).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err, origin).toBeInstanceOf(UrlRefusedError);
      }
    } finally {
      await agent.destroy();
    }
  });

  it('the agent refuses a name whose resolver answers loopback', async () => {
    const agent = createSafeAgent({ lookup });
    try {
      const err = await agent.request({ origin: `http://rebind.test:${canary.port}`, path: '/', method: 'GET' }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(UrlRefusedError);
    } finally {
      await agent.destroy();
    }
  });
});

describe('redirects', () => {
  let hub: Served;
  let target = '';
  beforeAll(async () => {
    hub = await serve((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (u.pathname === '/to') {
        res.writeHead(302, { location: target });
        res.end();
      } else if (u.pathname.startsWith('/chain/')) {
        const n = Number(u.pathname.slice('/chain/'.length));
        if (n === 0) res.end('end of chain');
        else {
          res.writeHead(301, { location: `/chain/${n - 1}` });
          res.end('moved');
        }
      } else if (u.pathname === '/loop') {
        res.writeHead(307, { location: '/loop' });
        res.end();
      } else res.end('ok');
    });
  });
  afterAll(() => hub.close());

  const policy = (): FetchPolicy => ({
    maxBytes: 1000,
    // Only the hub itself is exempt: any other local host:port must still be refused.
    allowHosts: [`127.0.0.1:${hub.port}`],
    allowedPorts: [80, 443, canary.port],
    lookup: fakeLookup({ 'rebind.test': ['127.0.0.1'] }),
  });

  it('follows a redirect that stays on the allowed host', async () => {
    target = `http://127.0.0.1:${hub.port}/final.jpg`;
    const got = await openUrl(`http://127.0.0.1:${hub.port}/to`, policy());
    expect((await readAll(got.body)).toString()).toBe('ok');
    expect(got.finalUrl).toBe(target);
    expect(got.filename).toBe('final.jpg');
  });

  it.each([
    ['loopback literal on another port', () => `http://127.0.0.1:${canary.port}/`, 'blocked_address'],
    ['decimal loopback', () => `http://2130706433:${canary.port}/`, 'blocked_address'],
    ['IPv6 loopback', () => `http://[::1]:${canary.port}/`, 'blocked_address'],
    ['a name resolving to loopback (checked at connect)', () => `http://rebind.test:${canary.port}/`, 'blocked_address'],
    ['file scheme', () => 'file:///etc/passwd', 'scheme'],
    ['cloud metadata', () => 'http://169.254.169.254/latest/meta-data/', 'blocked_address'],
  ])('refuses a redirect to %s', async (_name, to, reason) => {
    target = to();
    const r = await refusal(openUrl(`http://127.0.0.1:${hub.port}/to`, policy()));
    expect(r.details.reason).toBe(reason);
    expect(r.message).toMatch(/^redirect refused/);
  });

  it('refuses a redirect to a port outside the allowed list', async () => {
    target = `http://127.0.0.1:${canary.port}/`;
    const r = await refusal(openUrl(`http://127.0.0.1:${hub.port}/to`, { ...policy(), allowedPorts: undefined }));
    expect(r.details.reason).toBe('port');
  });

  it('follows 3 redirects by default and refuses the 4th with a clear message, never requesting its target', async () => {
    const ok = await openUrl(`http://127.0.0.1:${hub.port}/chain/3`, policy());
    expect((await readAll(ok.body)).toString()).toBe('end of chain');
    const before = hub.requests.length;
    const r = await refusal(openUrl(`http://127.0.0.1:${hub.port}/chain/4`, policy()));
    expect(r.details.reason).toBe('redirects');
    expect(r.message).toBe('URL redirected more than 3 times; at most 3 redirects are followed');
    // /chain/4 → 3 → 2 → 1 were requested; /chain/0, the 4th redirect's target, never was.
    expect(hub.requests.slice(before).map((q) => q.url)).toEqual(['/chain/4', '/chain/3', '/chain/2', '/chain/1']);
    const r2 = await refusal(openUrl(`http://127.0.0.1:${hub.port}/chain/3`, { ...policy(), maxRedirects: 2 }));
    expect(r2.details.reason).toBe('redirects');
  });

  it('refuses a redirect loop', async () => {
    const r = await refusal(openUrl(`http://127.0.0.1:${hub.port}/loop`, policy()));
    expect(r.details.reason).toBe('redirects');
    expect(r.message).toMatch(/more than 3/);
  });
});

describe('redirects from https (a self-signed server, trusted by this test only)', () => {
  let dir = '';
  let cert = '';
  let tlsServer: https.Server;
  let tlsPort = 0;
  let plain: Served;
  let tlsRequests: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mediaflow-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    cert = await readFile(path.join(dir, 'cert.pem'), 'utf8');
    plain = await serve((_req, res) => res.end('plain text over http'));
    tlsServer = https.createServer({ key: await readFile(path.join(dir, 'key.pem')), cert }, (req, res) => {
      tlsRequests.push(req.url!);
      if (req.url === '/down') {
        res.writeHead(302, { location: `http://127.0.0.1:${plain.port}/leak` });
        res.end();
      } else if (req.url === '/up') {
        res.writeHead(301, { location: '/secure' });
        res.end();
      } else res.end('secure ok');
    });
    tlsPort = await listen(tlsServer);
  });
  afterAll(async () => {
    await closeServer(tlsServer);
    await plain.close();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    tlsRequests = [];
  });

  const policy = (): FetchPolicy => ({ maxBytes: 1000, allowHosts: [`127.0.0.1:${tlsPort}`, `127.0.0.1:${plain.port}`], ca: cert });

  it('follows an https redirect that stays on https', async () => {
    const got = await openUrl(`https://127.0.0.1:${tlsPort}/up`, policy());
    expect((await readAll(got.body)).toString()).toBe('secure ok');
    expect(got.finalUrl).toBe(`https://127.0.0.1:${tlsPort}/secure`);
  });

  it('an https server whose certificate is not trusted fails for good, naming only the TLS error', async () => {
    const f = await fetchFailure(openUrl(`https://127.0.0.1:${tlsPort}/secure`, { ...policy(), ca: undefined }));
    expect(f.details.reason).toBe('unreachable');
    expect(f.message).toBe('URL fetch failed: TLS certificate not accepted (DEPTH_ZERO_SELF_SIGNED_CERT)');
  });

  it('refuses a redirect from https to http, and the http server is never asked', async () => {
    const before = plain.requests.length;
    const r = await refusal(openUrl(`https://127.0.0.1:${tlsPort}/down`, policy()));
    expect(r.details.reason).toBe('redirect_downgrade');
    expect(r.message).toMatch(/https URL may not redirect to plain http/);
    expect(tlsRequests).toEqual(['/down']);
    expect(plain.requests.length).toBe(before);
  });
});

describe('size cap', () => {
  const local = { allowPrivateNetworks: true, totalTimeoutMs: 20_000 } as const;

  async function expectTooLarge(body: NodeJS.ReadableStream, cap: number): Promise<number> {
    let received = 0;
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        received += chunk.length;
        cb();
      },
    });
    const err = await pipeline(body, sink).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe('FILE_TOO_LARGE');
    expect(received).toBeLessThanOrEqual(cap);
    return received;
  }

  it('cuts a 100 MB chunked body at the cap and drops the connection', async () => {
    let written: Promise<number> = Promise.resolve(0);
    const srv = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'video/mp4' });
      written = flood(res, 100 * MB);
    });
    try {
      const heapBefore = process.memoryUsage().heapUsed;
      const got = await openUrl(`http://127.0.0.1:${srv.port}/big.mp4`, { ...local, maxBytes: MB });
      expect(got.declaredLength).toBeNull();
      await expectTooLarge(got.body, MB);
      // The server only stops when our side closes; loopback buffers hold a few MB at most.
      expect(await written).toBeLessThan(20 * MB);
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(50 * MB);
    } finally {
      await srv.close();
    }
  });

  it('cuts a close-delimited body (no length, no chunking) at the cap', async () => {
    let written: Promise<number> = Promise.resolve(0);
    const raw = await serveRaw((socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/pdf\r\nconnection: close\r\n\r\n');
      written = flood(socket, 100 * MB);
    });
    try {
      const got = await openUrl(`http://127.0.0.1:${raw.port}/doc.pdf`, { ...local, maxBytes: 256 * 1024 });
      await expectTooLarge(got.body, 256 * 1024);
      expect(await written).toBeLessThan(20 * MB);
    } finally {
      await raw.close();
    }
  });

  it('never passes on more than a lying Content-Length: 1000 while the server pushes 100 MB', async () => {
    let written: Promise<number> = Promise.resolve(0);
    const raw = await serveRaw((socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n');
      written = flood(socket, 100 * MB);
    });
    try {
      const got = await openUrl(`http://127.0.0.1:${raw.port}/x`, { ...local, maxBytes: 10 * MB });
      expect(got.declaredLength).toBe(1000);
      let received = 0;
      await pipeline(
        got.body,
        new Writable({
          write(chunk: Buffer, _e, cb) {
            received += chunk.length;
            cb();
          },
        }),
      ).catch(() => undefined);
      // HTTP framing ends the body at the claimed length; the excess is never read into memory.
      expect(received).toBeLessThanOrEqual(1000);
      expect(await written).toBeLessThan(20 * MB);
    } finally {
      await raw.close();
    }
  });

  it('fails at once when Content-Length is over the cap (1000 claimed, cap 500)', async () => {
    const srv = await serve((_req, res) => {
      res.setHeader('content-length', '1000');
      res.end(Buffer.alloc(1000));
    });
    try {
      const err = await openUrl(`http://127.0.0.1:${srv.port}/`, { ...local, maxBytes: 500 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermanentError);
      expect((err as PermanentError).code).toBe('FILE_TOO_LARGE');
    } finally {
      await srv.close();
    }
  });

  it('refuses a 200 MB Content-Length before reading the body', async () => {
    let written: Promise<number> = Promise.resolve(0);
    const srv = await serve((_req, res) => {
      res.writeHead(200, { 'content-length': String(200 * MB) });
      written = flood(res, 200 * MB);
    });
    try {
      const err = await openUrl(`http://127.0.0.1:${srv.port}/`, { ...local, maxBytes: 16 * MB }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermanentError);
      expect((err as PermanentError).code).toBe('FILE_TOO_LARGE');
      expect((err as PermanentError).message).toMatch(/declares 200000000 bytes/);
      // The body was never read: the server could only push what loopback buffers hold.
      expect(await written).toBeLessThan(20 * MB);
    } finally {
      await srv.close();
    }
  });
});

describe('deadline, stalls and retries', () => {
  const local = (extra: Partial<FetchPolicy> = {}): FetchPolicy => ({ maxBytes: 100_000, allowPrivateNetworks: true, ...extra });

  it('fails a body that dribbles one byte a second once a stall window passes, without trying again', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const srv = await serveCounting((socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: 1000\r\n\r\n');
      const t = setInterval(() => socket.write('x'), 1000);
      timers.add(t);
      socket.on('close', () => clearInterval(t));
    });
    try {
      const got = await openUrl(`http://127.0.0.1:${srv.port}/slow.png`, local({ totalTimeoutMs: 3000, stallTimeoutMs: 1000 }));
      const f = await fetchFailure(readAll(got.body));
      expect(f.details.reason).toBe('stalled');
      expect(f.message).toMatch(/^URL transfer stalled: \d+ bytes in 1 s, under the floor of 1024 bytes\/s$/);
      expect(srv.connections()).toBe(1);
    } finally {
      for (const t of timers) clearInterval(t);
      await srv.close();
    }
  });

  it('fails a server that accepts and never answers at the deadline, final, on one connection', async () => {
    const srv = await serveCounting(() => undefined);
    try {
      const f = await fetchFailure(openUrl(`http://127.0.0.1:${srv.port}/`, local({ totalTimeoutMs: 500 })));
      expect(f.details.reason).toBe('deadline');
      expect(f.message).toBe('URL fetch did not finish within the 0.5 s deadline');
      expect(srv.connections()).toBe(1);
    } finally {
      await srv.close();
    }
  });

  it('the deadline also covers a body that stops after the headers', async () => {
    const raw = await serveRaw((socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789');
    });
    try {
      const got = await openUrl(`http://127.0.0.1:${raw.port}/`, local({ totalTimeoutMs: 400 }));
      const f = await fetchFailure(readAll(got.body));
      expect(f.details.reason).toBe('deadline');
      expect(f.message).toMatch(/within the 0.4 s deadline/);
    } finally {
      await raw.close();
    }
  });

  it('retries a refused connection and succeeds once the server is up (refused twice, then served)', async () => {
    const probe = await serve(() => undefined);
    const port = probe.port;
    await probe.close();
    let refusals = 0;
    let late: Served | null = null;
    const onConnectError = (): void => {
      refusals++;
      if (refusals === 2) {
        const server = http.createServer((_req, res) => res.end('up now'));
        late = { port, connections: 0, requests: [], close: () => closeServer(server) };
        server.listen(port, '127.0.0.1');
      }
    };
    subscribe('undici:client:connectError', onConnectError);
    try {
      const got = await openUrl(`http://127.0.0.1:${port}/`, local({ totalTimeoutMs: 3000 }));
      expect((await readAll(got.body)).toString()).toBe('up now');
      expect(refusals).toBe(2);
    } finally {
      unsubscribe('undici:client:connectError', onConnectError);
      await (late as Served | null)?.close();
    }
  });

  it('a server that keeps resetting the connection is retried until the deadline, then fails for good', async () => {
    const srv = await serveCounting((socket) => socket.resetAndDestroy());
    try {
      const f = await fetchFailure(openUrl(`http://127.0.0.1:${srv.port}/`, local({ totalTimeoutMs: 1000 })));
      expect(f.details.reason).toBe('deadline');
      expect(f.message).toBe('URL fetch did not finish within the 1 s deadline (last try: connection reset)');
      expect(srv.connections()).toBeGreaterThan(1);
    } finally {
      await srv.close();
    }
  });

  it('a port nobody listens on is retried until the deadline, then fails for good', async () => {
    const srv = await serve(() => undefined);
    const port = srv.port;
    await srv.close();
    const f = await fetchFailure(openUrl(`http://127.0.0.1:${port}/`, local({ totalTimeoutMs: 800 })));
    expect(f.details.reason).toBe('deadline');
    expect(f.message).toMatch(/\(last try: connection refused\)$/);
  });

  it('a name that does not exist fails at once, asked once', async () => {
    const asked: string[] = [];
    const f = await fetchFailure(openUrl('http://nowhere.test/a.png', { maxBytes: 1000, lookup: fakeLookup({}, asked), totalTimeoutMs: 3000 }));
    expect(f.details.reason).toBe('unreachable');
    expect(f.message).toBe('URL host name does not exist');
    expect(asked).toEqual(['nowhere.test']);
  });

  it('gives up connecting when the connection cannot be set up in time (connect timeout), for good', async () => {
    const hanging = ((..._args: unknown[]) => undefined) as unknown as typeof dns.lookup;
    const f = await fetchFailure(openUrl('http://slow.test/', { maxBytes: 1000, lookup: hanging, connectTimeoutMs: 200, totalTimeoutMs: 10_000 }));
    expect(f.details.reason).toBe('unreachable');
    expect(f.message).toBe('URL host did not accept a connection within 0.2 s');
  });

  it('a connection that breaks in the middle of the body fails for good', async () => {
    const raw = await serveRaw((socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc');
      setTimeout(() => socket.resetAndDestroy(), 50);
    });
    try {
      const got = await openUrl(`http://127.0.0.1:${raw.port}/`, local({ totalTimeoutMs: 3000 }));
      const f = await fetchFailure(readAll(got.body));
      expect(f.details.reason).toBe('transfer');
      expect(f.message).toBe('URL transfer broke off: connection reset');
    } finally {
      await raw.close();
    }
  });

  it("passes the caller's abort through, not as a final error", async () => {
    const raw = await serveRaw(() => undefined);
    try {
      const ac = new AbortController();
      setTimeout(() => ac.abort(new Error('job cancelled')), 100);
      const err = await openUrl(`http://127.0.0.1:${raw.port}/`, { maxBytes: 1000, allowPrivateNetworks: true, signal: ac.signal }).catch((e: unknown) => e);
      expect((err as Error).message).toBe('job cancelled');
      expect(err).not.toBeInstanceOf(PermanentError);
    } finally {
      await raw.close();
    }
  });

  it.each([404, 410, 403, 501])('status %i is final at once, asked once', async (status) => {
    const srv = await serve((_req, res) => {
      res.statusCode = status;
      res.end('nope');
    });
    try {
      const f = await fetchFailure(openUrl(`http://127.0.0.1:${srv.port}/`, local()));
      expect(f.message).toBe(`URL answered ${status}`);
      expect(f.details).toMatchObject({ reason: 'http_status', status });
      expect(srv.requests).toHaveLength(1);
    } finally {
      await srv.close();
    }
  });

  it.each([429, 500, 503])('status %i is retried until the deadline, then final', async (status) => {
    const srv = await serve((_req, res) => {
      res.statusCode = status;
      res.end('later');
    });
    try {
      const f = await fetchFailure(openUrl(`http://127.0.0.1:${srv.port}/`, local({ totalTimeoutMs: 600 })));
      expect(f.details.reason).toBe('deadline');
      expect(f.message).toBe(`URL fetch did not finish within the 0.6 s deadline (last try: URL answered ${status})`);
      expect(srv.requests.length).toBeGreaterThan(1);
    } finally {
      await srv.close();
    }
  });

  it('a 503 that clears up is fetched (503, 503, then 200)', async () => {
    let n = 0;
    const srv = await serve((_req, res) => {
      n++;
      if (n <= 2) res.statusCode = 503;
      res.end(n <= 2 ? 'busy' : 'served');
    });
    try {
      const got = await openUrl(`http://127.0.0.1:${srv.port}/`, local({ totalTimeoutMs: 3000 }));
      expect((await readAll(got.body)).toString()).toBe('served');
      expect(n).toBe(3);
    } finally {
      await srv.close();
    }
  });

  it('a Retry-After past the deadline fails at once instead of waiting for it', async () => {
    const srv = await serve((_req, res) => {
      res.writeHead(503, { 'retry-after': '3600' });
      res.end();
    });
    try {
      const f = await fetchFailure(openUrl(`http://127.0.0.1:${srv.port}/`, local({ totalTimeoutMs: 3000 })));
      expect(f.details).toMatchObject({ reason: 'http_status', status: 503, retryAfterSeconds: 3600 });
      expect(f.message).toBe('URL answered 503 and asked to retry after the fetch deadline');
      expect(srv.requests).toHaveLength(1);
    } finally {
      await srv.close();
    }
  });
});

describe('content as sent', () => {
  it('passes a gzip content-encoding through undecoded', async () => {
    const packed = gzipSync(Buffer.alloc(100_000, 0x41));
    const srv = await serve((_req, res) => {
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-type': 'text/plain', 'content-length': String(packed.length) });
      res.end(packed);
    });
    try {
      // A cap below the inflated size and above the wire size: decoding would trip it.
      const got = await openUrl(`http://127.0.0.1:${srv.port}/`, { maxBytes: 50_000, allowPrivateNetworks: true });
      const bytes = await readAll(got.body);
      expect(bytes.equals(packed)).toBe(true);
    } finally {
      await srv.close();
    }
  });

  it.each([
    ['attachment; filename="../../etc/passwd"', 'passwd'],
    [`attachment; filename="fallback.pdf"; filename*=UTF-8''%E2%82%AC%20rates.pdf`, '€ rates.pdf'],
    ['inline; filename=report.docx', 'report.docx'],
    ['attachment; filename="..\\\\..\\\\win.ini"', 'win.ini'],
    ['attachment; filename="\u202Egpj.exe"', 'gpj.exe'],
    ["attachment; filename*=UTF-8''%E2%80%AEgpj.exe", 'gpj.exe'],
    ['attachment; filename="café.jpg"', 'café.jpg'],
    ['attachment; filename="..."', 'from-path.bin'],
  ])('takes the file name from %j', async (disposition, expected) => {
    const srv = await serve((_req, res) => {
      res.setHeader('content-disposition', Buffer.from(disposition, 'utf8').toString('latin1'));
      res.end('x');
    });
    try {
      const got = await openUrl(`http://127.0.0.1:${srv.port}/dir/from-path.bin`, { maxBytes: 1000, allowPrivateNetworks: true });
      await readAll(got.body);
      expect(got.filename).toBe(expected);
    } finally {
      await srv.close();
    }
  });
});
