/**
 * The services under the soak's mediaflow processes, started on this machine and torn down at the
 * end: Redis (a 3-master/3-replica cluster, or one redis-server), PgBouncer in transaction mode in
 * front of the local PostgreSQL (or PostgreSQL directly), and the S3 test server in a child process.
 * Every one listens on 127.0.0.1 only, on a free port. The cluster and PgBouncer come from
 * test/helpers (shared with the tests); this module adds the faults the soak needs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { startPgBouncer } from '../../test/helpers/pgbouncer.js';
import { startRedisCluster } from '../../test/helpers/redis-cluster.js';
import { freePort, ROOT } from '../../test/helpers/service-process.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitUntil(what: string, fn: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await fn()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (${String(last)})` : ''}`);
    await sleep(intervalMs);
  }
}

function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((r) => proc.once('exit', () => r()));
}

const alive = (proc: ChildProcess | undefined): proc is ChildProcess => !!proc && proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined;

// ---------------------------------------------------------------------------------------------
// Redis

export interface RedisUnderTest {
  /** What REDIS_URL is set to. */
  url: string;
  /** The hash-tagged (cluster) or plain queue prefix. */
  prefix: string;
  mode: 'cluster' | 'single';
  pids(): number[];
  members?(): Array<{ name: string; pid: number }>;
  /**
   * The fault: SIGKILL the master that holds the queue prefix's slot (cluster: its replica is
   * promoted; single: the server comes back from its append-only file). Resolves once Redis answers
   * again, with what happened.
   */
  killMaster(): Promise<string>;
  /** Commands each live node has processed since it (re)started, with its role. */
  commandCounts(): Promise<Array<{ name: string; role: string; commands: number }>>;
  stop(): Promise<void>;
}

/** `INFO` of the Redis on `port`: its role and total_commands_processed. */
async function infoOf(port: number): Promise<{ role: string; commands: number }> {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    const info = await r.info();
    return { role: /role:(\w+)/.exec(info)?.[1] ?? '?', commands: Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? 0) };
  } finally {
    r.disconnect();
  }
}

/** One redis-server on a free port with an append-only file, so a killed server comes back with its data. */
export async function startSingleRedis(dir: string, prefix: string): Promise<RedisUnderTest> {
  const port = await freePort();
  await mkdir(dir, { recursive: true });
  let proc: ChildProcess | undefined;
  const url = `redis://127.0.0.1:${port}`;
  const start = async (): Promise<void> => {
    proc = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--dir', dir, '--maxmemory-policy', 'noeviction'],
      { stdio: 'ignore' },
    );
    await waitUntil('redis-server answers', () => ping(url), 15_000);
  };
  await start();
  return {
    url,
    prefix,
    mode: 'single',
    pids: () => (alive(proc) ? [proc.pid!] : []),
    commandCounts: async () => [{ name: 'redis', ...(await infoOf(port)) }],
    async killMaster() {
      const p = proc!;
      const t0 = Date.now();
      p.kill('SIGKILL');
      await exited(p);
      await sleep(2000);
      await start();
      return `single redis-server SIGKILLed, back from its AOF after ${((Date.now() - t0) / 1000).toFixed(1)} s`;
    },
    async stop() {
      if (alive(proc)) {
        proc.kill('SIGTERM');
        await exited(proc);
      }
    },
  };
}

async function ping(url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } finally {
    r.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL and PgBouncer

export const PG_ADMIN_URL = process.env.SOAK_PG_ADMIN_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export function databaseUrl(adminUrl: string, name: string, port?: number): string {
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  if (port) u.port = String(port);
  return u.toString();
}

export async function createDatabase(name: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE "${name}"`);
  } finally {
    await c.end();
  }
}

export async function dropDatabase(name: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await c.end();
  }
}

export interface PgUnderTest {
  /** What DATABASE_URL is set to (through PgBouncer, or direct). */
  url: string;
  mode: 'pgbouncer' | 'direct';
  pids(): number[];
  /** The fault: PgBouncer down (its port refuses) for `ms`, then back. Direct mode has no such fault. */
  outage?(ms: number): Promise<string>;
  stop(): Promise<void>;
}

export function directPg(database: string): PgUnderTest {
  return { url: databaseUrl(PG_ADMIN_URL, database), mode: 'direct', pids: () => [], stop: async () => undefined };
}

/**
 * Debian's pgbouncer in transaction mode in front of the PostgreSQL of PG_ADMIN_URL
 * (test/helpers/pgbouncer.ts): the soak's DATABASE_URL. Its pool is sized for the soak's seven
 * processes (each a pg pool of 10): 40 server connections, 1000 clients.
 */
export async function startSoakPgBouncer(database: string): Promise<PgUnderTest> {
  const bouncer = await startPgBouncer({ upstreamUrl: PG_ADMIN_URL, poolMode: 'transaction', defaultPoolSize: 40, maxClientConn: 1000 });
  return {
    url: bouncer.via(databaseUrl(PG_ADMIN_URL, database)),
    mode: 'pgbouncer',
    pids: () => [],
    async outage(ms) {
      await bouncer.stop();
      await sleep(ms);
      await bouncer.start();
      return `PgBouncer stopped (SIGTERM: client connections cut, port refusing), started again after ${(ms / 1000).toFixed(0)} s`;
    },
    stop: () => bouncer.close(),
  };
}

/** A Redis Cluster of 3 masters and 3 replicas (test/helpers/redis-cluster.ts) and the master-kill fault. */
export async function startSoakRedisCluster(prefix: string): Promise<RedisUnderTest> {
  const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
  const live = () => cluster.nodes.filter((n) => n.proc && n.proc.exitCode === null && n.proc.signalCode === null);
  const ask = async (port: number, ...args: string[]): Promise<string> => {
    const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
    r.on('error', () => undefined);
    try {
      await r.connect();
      return String(await r.call(...(args as [string, ...string[]])));
    } finally {
      r.disconnect();
    }
  };
  /** The port of the live master serving `slot`, as `via` sees the cluster. */
  const masterOf = async (slot: number, via: number): Promise<number | undefined> => {
    for (const line of (await ask(via, 'CLUSTER', 'NODES')).split('\n')) {
      const f = line.split(' ');
      if (!f[2]?.split(',').includes('master') || /fail/.test(f[2])) continue;
      for (const range of f.slice(8)) {
        const [a, b] = range.split('-').map(Number);
        if (slot >= a! && slot <= (b ?? a)!) return Number(/:(\d+)@/.exec(f[1]!)?.[1]);
      }
    }
    return undefined;
  };
  return {
    url: cluster.url,
    prefix,
    mode: 'cluster',
    pids: () => live().map((n) => n.proc!.pid!),
    members: () => live().map((n) => ({ name: `redis:${n.port}`, pid: n.proc!.pid! })),
    commandCounts: () => Promise.all(live().map(async (n) => ({ name: `redis:${n.port}`, ...(await infoOf(n.port)) }))),
    async killMaster() {
      const t0 = Date.now();
      const via = live()[0]!.port;
      // Every key of the prefix hashes to the slot of its {tag}: one master holds all of mediaflow's keys.
      const slot = Number(await ask(via, 'CLUSTER', 'KEYSLOT', `${prefix}:x`));
      const port = await masterOf(slot, via);
      if (port === undefined) return `no master found for slot ${slot}`;
      await cluster.killNode(port);
      await cluster.waitHealthy(60_000);
      const promoted = await masterOf(slot, live()[0]!.port);
      const failoverMs = Date.now() - t0;
      await sleep(1000);
      await cluster.restartNode(port);
      await cluster.waitHealthy(60_000);
      return `SIGKILL master :${port} (slot ${slot} of ${prefix}); replica :${promoted} took over in ${(failoverMs / 1000).toFixed(1)} s; the old master rejoined as a replica`;
    },
    stop: () => cluster.stop(),
  };
}

// ---------------------------------------------------------------------------------------------
// S3

export interface S3UnderTest {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  pids(): number[];
  /** The fault: listener closed and connections cut for `ms`, then back over the same data. */
  outage(ms: number): Promise<string>;
  /** Requests served so far, by S3 operation. */
  stats(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/** scripts/soak/s3-child.ts in its own Node process (tsx), driven over stdin. */
export async function startS3Child(): Promise<S3UnderTest> {
  const proc = spawn(process.execPath, ['--no-warnings', '--import', 'tsx', path.join(ROOT, 'scripts/soak/s3-child.ts')], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! });
  const waiting: Array<(line: string) => void> = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  const nextLine = (what: string) =>
    new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`s3 child: no answer to ${what}`)), 30_000);
      waiting.push((l) => {
        clearTimeout(t);
        resolve(l);
      });
    });
  const info = JSON.parse(await nextLine('start')) as { endpoint: string; bucket: string; region: string; accessKeyId: string; secretAccessKey: string };
  const command = async (cmd: 'stop' | 'start'): Promise<void> => {
    const answer = nextLine(cmd);
    proc.stdin!.write(`${cmd}\n`);
    const l = await answer;
    if (l !== `ok ${cmd}`) throw new Error(`s3 child: ${l}`);
  };
  return {
    ...info,
    pids: () => (alive(proc) ? [proc.pid!] : []),
    async stats() {
      const answer = nextLine('stats');
      proc.stdin!.write('stats\n');
      return JSON.parse(await answer) as Record<string, number>;
    },
    async outage(ms) {
      await command('stop');
      await sleep(ms);
      await command('start');
      return `S3 server down (port refusing) for ${(ms / 1000).toFixed(0)} s`;
    },
    async stop() {
      proc.stdin!.end();
      await Promise.race([exited(proc), sleep(15_000).then(() => proc.kill('SIGKILL'))]);
    },
  };
}
