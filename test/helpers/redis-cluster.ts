/**
 * A real Redis Cluster on this machine, for tests and the soak: Debian's `redis-server` (7.x) with
 * `--cluster-enabled yes`, one process per node on free local ports (client port and cluster-bus
 * port both chosen free), each in its own directory under one temp dir, joined with
 * `redis-cli --cluster create … --cluster-replicas N --cluster-yes`. Nothing is mocked.
 *
 *   import { startRedisCluster } from '../helpers/redis-cluster.js';
 *   const cluster = await startRedisCluster();          // 3 masters, 3 replicas
 *   cluster.url;                                       // redis+cluster://127.0.0.1:p1,127.0.0.1:p2,…  (REDIS_URL)
 *   await cluster.killNode(port);                      // SIGKILL one node (a master: its replica takes over)
 *   await cluster.waitHealthy();                       // cluster_state:ok on every live node, every slot served
 *   await cluster.restartNode(port);                   // the node comes back (as a replica of its old slots' new master)
 *   await cluster.stop();                              // every node killed, the temp dir removed
 *
 * Nodes run with noeviction and no persistence (a test cluster), `cluster-node-timeout` 2000 ms so a
 * killed master's replica is promoted within a few seconds. A test process that exits without
 * `stop()` still kills its nodes (an 'exit' hook). Needs `redis-server` and `redis-cli` on PATH.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './service-process.js';

export interface RedisClusterNode {
  port: number;
  busPort: number;
  dir: string;
  proc: ChildProcess | null;
}

export interface RedisCluster {
  /** `redis+cluster://127.0.0.1:p1,…` with every node as a seed: the REDIS_URL to give mediaflow. */
  url: string;
  nodes: RedisClusterNode[];
  /** Ports of the nodes that are masters now (asked of a live node). */
  masters(): Promise<number[]>;
  /** Sends `signal` (SIGKILL by default) to one node and waits for it to exit. */
  killNode(port: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a killed node again with its own directory and nodes.conf, and waits for it to answer. */
  restartNode(port: number): Promise<void>;
  /**
   * Waits until every live node says cluster_state:ok, sees all 16384 slots served, counts no killed
   * node as a master (after `killNode` of a master: until its replica has been promoted), and every
   * live replica is in sync with its master (so the next master kill fails over too).
   */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHook = false;

function run(file: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

async function until(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await fn()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`redis cluster: ${what} not reached within ${timeoutMs} ms${last ? ` (${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function ask<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

/** Ports of the masters a CLUSTER NODES answer lists as not failing. */
function mastersIn(clusterNodes: string): number[] {
  // <id> <ip:port@bus> <flags> …: flags such as `myself,master` or `master,fail?`.
  return clusterNodes
    .split('\n')
    .map((l) => l.split(' '))
    .filter(([, , flags = '']) => flags.split(',').includes('master') && !/fail/.test(flags))
    .map(([, addr = '']) => Number(/:(\d+)@/.exec(addr)?.[1]))
    .filter((p) => Number.isFinite(p));
}

/** Two distinct free ports: the node's and its cluster bus's. */
async function portPair(taken: Set<number>): Promise<[number, number]> {
  const pick = async () => {
    for (;;) {
      const p = await freePort();
      if (!taken.has(p)) {
        taken.add(p);
        return p;
      }
    }
  };
  return [await pick(), await pick()];
}

function spawnNode(node: RedisClusterNode): ChildProcess {
  const proc = spawn(
    'redis-server',
    [
      '--port', String(node.port),
      '--cluster-port', String(node.busPort),
      '--bind', '127.0.0.1',
      '--cluster-enabled', 'yes',
      '--cluster-config-file', path.join(node.dir, 'nodes.conf'),
      '--cluster-node-timeout', '2000',
      '--dir', node.dir,
      '--save', '',
      '--appendonly', 'no',
      '--maxmemory-policy', 'noeviction',
      '--daemonize', 'no',
      '--protected-mode', 'no',
      '--logfile', path.join(node.dir, 'redis.log'),
    ],
    { stdio: 'ignore' },
  );
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const p of live) p.kill('SIGKILL');
    });
  }
  return proc;
}

async function waitAnswering(node: RedisClusterNode, timeoutMs = 10_000): Promise<void> {
  await until(`node ${node.port} answering`, () => ask(node.port, async (r) => (await r.ping()) === 'PONG'), timeoutMs);
}

export async function startRedisCluster(opts: { masters?: number; replicasPerMaster?: number } = {}): Promise<RedisCluster> {
  const masters = opts.masters ?? 3;
  const replicas = opts.replicasPerMaster ?? 1;
  // A missing binary is one clear error, not a spawn 'error' event nobody hears.
  await run('redis-server', ['--version'], 5000);
  await run('redis-cli', ['--version'], 5000);
  const root = await mkdtemp(path.join(os.tmpdir(), 'mediaflow-redis-cluster-'));
  const taken = new Set<number>();
  const nodes: RedisClusterNode[] = [];
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const [port, busPort] = await portPair(taken);
      const dir = path.join(root, String(port));
      await mkdir(dir);
      nodes.push({ port, busPort, dir, proc: null });
    }
    for (const n of nodes) n.proc = spawnNode(n);
    await Promise.all(nodes.map((n) => waitAnswering(n)));
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], 60_000);
  } catch (err) {
    for (const n of nodes) n.proc?.kill('SIGKILL');
    await rm(root, { recursive: true, force: true });
    throw err;
  }

  const byPort = (port: number) => {
    const n = nodes.find((x) => x.port === port);
    if (!n) throw new Error(`redis cluster: no node on port ${port}`);
    return n;
  };
  const liveNodes = () => nodes.filter((n) => n.proc && n.proc.exitCode === null && n.proc.signalCode === null);

  const cluster: RedisCluster = {
    url: `redis+cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`,
    nodes,
    async masters() {
      for (const n of liveNodes()) {
        try {
          return mastersIn(await ask(n.port, (r) => r.cluster('NODES') as Promise<string>));
        } catch {
          // Try the next node.
        }
      }
      return [];
    },
    async killNode(port, signal = 'SIGKILL') {
      const n = byPort(port);
      const proc = n.proc;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill(signal);
      await exited;
    },
    async restartNode(port) {
      const n = byPort(port);
      if (n.proc && n.proc.exitCode === null && n.proc.signalCode === null) return;
      n.proc = spawnNode(n);
      await waitAnswering(n);
    },
    async waitHealthy(timeoutMs = 30_000) {
      await until(
        'cluster_state:ok on every live node',
        async () => {
          const dead = new Set(nodes.filter((n) => !liveNodes().includes(n)).map((n) => n.port));
          for (const n of liveNodes()) {
            const info = await ask(n.port, (r) => r.cluster('INFO') as Promise<string>);
            if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) return false;
            const view = await ask(n.port, (r) => r.cluster('NODES') as Promise<string>);
            if (mastersIn(view).some((p) => dead.has(p))) return false;
            // A replica that has not synced with its master cannot be promoted: until then the next
            // master kill would leave its slots unserved.
            const replication = await ask(n.port, (r) => r.info('replication'));
            if (/role:slave/.test(replication) && !/master_link_status:up/.test(replication)) return false;
          }
          return true;
        },
        timeoutMs,
      );
    },
    async stop() {
      await Promise.all(nodes.map((n) => cluster.killNode(n.port).catch(() => undefined)));
      await rm(root, { recursive: true, force: true });
    },
  };
  try {
    await cluster.waitHealthy(60_000);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
