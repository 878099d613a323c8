import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/**
 * A connection to Redis: one server (`redis://`, `rediss://`) or a Redis Cluster reached through a
 * seed list (`redis+cluster://host1:7000,host2:7001`, `rediss+cluster://` for TLS). Both speak the
 * same commands; on a cluster every key mediaflow and BullMQ write must share one hash slot, which
 * the queue prefix guarantees when it holds a hash tag (`{mediaflow}`): see `clusterPrefixProblem`.
 */
export type RedisConnection = Redis | Cluster;

export interface ClusterTarget {
  nodes: Array<{ host: string; port: number }>;
  username?: string;
  password?: string;
  tls: boolean;
}

const CLUSTER_URL = /^(rediss?)\+cluster:\/\/(?:([^@/?#]*)@)?([^/?#@]+)\/?$/i;

/** True for a `redis+cluster://` (or `rediss+cluster://`) seed list. */
export function isClusterUrl(url: string): boolean {
  return /^rediss?\+cluster:\/\//i.test(url);
}

/**
 * The seed nodes and credentials of a cluster URL: `redis+cluster://[user:password@]h1:p1,h2:p2,…`
 * (a port defaults to 6379; IPv6 hosts in brackets). Throws on anything else, without echoing the
 * URL (it may hold a password).
 */
export function parseClusterUrl(url: string): ClusterTarget {
  const m = CLUSTER_URL.exec(url.trim());
  if (!m) throw new Error('a cluster REDIS_URL looks like redis+cluster://host1:port1,host2:port2 (no path, no query)');
  const [user, ...pass] = (m[2] ?? '').split(':');
  const nodes = m[3]!.split(',').map((seed) => {
    const s = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(seed.trim());
    const port = s?.[2] === undefined ? 6379 : Number(s[2]);
    if (!s || port < 1 || port > 65535) throw new Error('each cluster seed is host:port (IPv6 in brackets), separated by commas');
    return { host: s[1]!.replace(/^\[(.*)\]$/, '$1'), port };
  });
  return {
    nodes,
    username: user ? decodeURIComponent(user) : undefined,
    password: pass.length ? decodeURIComponent(pass.join(':')) : undefined,
    tls: m[1]!.toLowerCase() === 'rediss',
  };
}

/**
 * Why `prefix` cannot be used on a cluster, or null when it can. Redis Cluster hashes only the part
 * of a key between its first `{` and the next `}` when that part is not empty; every key starts with
 * the prefix, so a prefix with such a tag puts all of mediaflow's and BullMQ's keys in one slot, and
 * their multi-key scripts run. Without one, BullMQ's scripts fail with CROSSSLOT at the first job.
 */
export function clusterPrefixProblem(prefix: string): string | null {
  const open = prefix.indexOf('{');
  const close = open < 0 ? -1 : prefix.indexOf('}', open + 1);
  if (open >= 0 && close > open + 1) return null;
  return `QUEUE_PREFIX "${prefix}" has no hash tag: on a Redis Cluster every key must share one slot, so use a prefix like "{${prefix.replace(/[{}]/g, '') || 'mediaflow'}}"`;
}

/** Throws the clear message of `clusterPrefixProblem` when a cluster (a URL or a connection) meets a prefix without a hash tag. */
export function assertPrefixFits(target: string | RedisConnection, prefix: string): void {
  if (!(typeof target === 'string' ? isClusterUrl(target) : target.isCluster)) return;
  const problem = clusterPrefixProblem(prefix);
  if (problem) throw new Error(problem);
}

function clusterOptions(target: ClusterTarget, redisOptions: NonNullable<ClusterOptions['redisOptions']>, rest: ClusterOptions): ClusterOptions {
  return {
    ...rest,
    redisOptions: {
      ...redisOptions,
      ...(target.username ? { username: target.username } : {}),
      ...(target.password ? { password: target.password } : {}),
      ...(target.tls ? { tls: {} } : {}),
    },
  };
}

/**
 * Producers fail fast (no offline queue, one retry) so the API answers 503 in well under 2 s when
 * Redis is gone; workers wait out disconnects (BullMQ requires maxRetriesPerRequest: null). On a
 * cluster the same holds; a failover (a replica promoted) is retried after a short delay, and a
 * producer that meets the cluster between states gets its 503.
 */
export function createRedis(url: string, role: 'producer' | 'worker', extra: RedisOptions = {}): RedisConnection {
  const common: RedisOptions = { connectTimeout: 2000, lazyConnect: false, ...extra };
  const producer = role === 'producer';
  let redis: RedisConnection;
  if (isClusterUrl(url)) {
    const target = parseClusterUrl(url);
    redis = new Cluster(
      target.nodes,
      clusterOptions(
        target,
        producer ? { ...common, maxRetriesPerRequest: 1, commandTimeout: 1500 } : { ...common, maxRetriesPerRequest: null },
        {
          lazyConnect: common.lazyConnect,
          enableOfflineQueue: !producer,
          enableReadyCheck: true,
          slotsRefreshTimeout: 2000,
          retryDelayOnFailover: 200,
          retryDelayOnClusterDown: 300,
          retryDelayOnTryAgain: 200,
          clusterRetryStrategy: producer ? (n) => Math.min(n * 200, 2000) : (n) => Math.min(n * 500, 5000),
        },
      ),
    );
  } else {
    const opts: RedisOptions = producer
      ? { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 1500, retryStrategy: (n) => Math.min(n * 200, 2000) }
      : { ...common, maxRetriesPerRequest: null, enableReadyCheck: true, retryStrategy: (n) => Math.min(n * 500, 5000) };
    redis = new Redis(url, opts);
  }
  // Connection errors surface through commands; without a listener ioredis would print them all.
  redis.on('error', () => undefined);
  return redis;
}

/**
 * A plain connection with ioredis's own defaults and these options, to one server or to a cluster
 * (offline queue on, so a first command waits for the connection): for `mediaflow/producer`.
 */
export function openRedis(url: string, options: RedisOptions): RedisConnection {
  if (!isClusterUrl(url)) return new Redis(url, options);
  const target = parseClusterUrl(url);
  return new Cluster(target.nodes, clusterOptions(target, options, { retryDelayOnFailover: 200, retryDelayOnClusterDown: 300 }));
}

/** Resolves once the connection is ready, or rejects after `timeoutMs`. */
export async function waitReady(redis: RedisConnection, timeoutMs = 5000): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      cleanup();
      reject(new Error(`redis not ready after ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(t);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}

/**
 * One connection attempt with no retry, for start-up checks and `mediaflow doctor`: resolves with a
 * ready connection (the caller disconnects it), or rejects with what the socket said (ECONNREFUSED,
 * ENOTFOUND, a timeout, a refused AUTH) rather than ioredis's bare "Connection is closed.". On a
 * cluster the seeds are tried one by one as plain servers first (a cluster client reports only
 * "None of startup nodes is available"), then the cluster itself: ready means a seed answered with
 * the slot map and the cluster says its state is ok.
 */
export async function connectOnce(url: string, timeoutMs = 2000): Promise<RedisConnection> {
  const single: RedisOptions = { lazyConnect: true, connectTimeout: timeoutMs, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false };
  if (!isClusterUrl(url)) return once(new Redis(url, single), timeoutMs);
  const target = parseClusterUrl(url);
  const auth = { username: target.username, password: target.password, ...(target.tls ? { tls: {} } : {}) };
  let firstError: unknown;
  let answered = false;
  for (const node of target.nodes) {
    try {
      (await once(new Redis({ ...single, ...auth, host: node.host, port: node.port }), timeoutMs)).disconnect();
      answered = true;
      break;
    } catch (err) {
      firstError ??= err;
    }
  }
  if (!answered) throw firstError;
  const cluster = new Cluster(
    target.nodes,
    clusterOptions(
      target,
      { connectTimeout: timeoutMs, maxRetriesPerRequest: 0 },
      { lazyConnect: true, enableOfflineQueue: false, enableReadyCheck: true, slotsRefreshTimeout: timeoutMs, clusterRetryStrategy: () => null },
    ),
  );
  return once(cluster, timeoutMs);
}

async function once<T extends RedisConnection>(redis: T, timeoutMs: number): Promise<T> {
  let cause: Error | undefined;
  redis.on('error', (err: Error) => (cause ??= err));
  // connectTimeout ends at the TCP handshake; a peer that accepts and then says nothing (not a
  // Redis) would hold the ready check forever.
  const deadline = setTimeout(() => {
    cause ??= Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
    redis.disconnect();
  }, timeoutMs);
  try {
    await redis.connect();
    return redis;
  } catch (err) {
    redis.disconnect();
    throw cause ?? err;
  } finally {
    clearTimeout(deadline);
  }
}

/**
 * Closes politely (QUIT, so replies in flight arrive), or drops the sockets when that does not end
 * within `timeoutMs`: a cluster caught mid-failover may never answer the QUIT.
 */
export async function closeRedis(redis: RedisConnection, timeoutMs = 2000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), timeoutMs)));
  try {
    const res = await Promise.race([redis.quit().then(() => 'quit' as const, () => 'late' as const), late]);
    if (res === 'late') redis.disconnect();
  } finally {
    clearTimeout(timer);
  }
}

/** Every master of a cluster, or the one server: for checks that read a server's settings. */
export function serversOf(redis: RedisConnection): Redis[] {
  return redis instanceof Cluster ? redis.nodes('master') : [redis];
}
