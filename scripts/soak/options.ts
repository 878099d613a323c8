/**
 * The soak's settings: command-line flags first, then SOAK_* variables, then defaults. Every run is
 * bounded by a media count and by time.
 */
export const FAULTS = ['worker-kill', 'api-kill', 'redis-master-kill', 'pgbouncer-stop', 's3-stop', 'sweeper-kill'] as const;
export type Fault = (typeof FAULTS)[number];

export interface SoakOptions {
  /** How many media the load sends. */
  media: number;
  /** Media started per second (an open loop: the rate does not bend to the service). */
  rate: number;
  /** The load waits while more than this many accepted media are unfinished. */
  maxBacklog: number;
  /** Hard bound on the load phase, seconds: no new media after it. */
  loadSeconds: number;
  /** Bound on waiting for everything to settle after the load, seconds. */
  settleSeconds: number;
  /** Share of the media sent before the first fault (the "without faults" numbers). */
  baselineShare: number;
  faults: Fault[];
  redis: 'cluster' | 'single';
  pg: 'pgbouncer' | 'direct';
  apis: number;
  workers: number;
  sweepers: number;
  /** Seconds between worker kills. */
  workerKillEverySeconds: number;
  /** How long PgBouncer and S3 stay down. */
  outageSeconds: number;
  seed: number;
  /** Lifetime range, seconds, of the one media in ten that expires during the run. */
  shortTtl: [number, number];
  /** Keep the work directory (logs, data) instead of removing it. */
  keep: boolean;
  /** Where to write the report as JSON too. */
  jsonOut?: string;
  /** Progress lines on stderr. */
  verbose: boolean;
}

export const DEFAULTS: SoakOptions = {
  media: 3000,
  rate: 10,
  maxBacklog: 100,
  loadSeconds: 1800,
  settleSeconds: 300,
  baselineShare: 0.25,
  faults: [...FAULTS],
  redis: 'cluster',
  pg: 'pgbouncer',
  apis: 2,
  workers: 3,
  sweepers: 2,
  workerKillEverySeconds: 20,
  outageSeconds: 10,
  seed: 42,
  shortTtl: [20, 60],
  keep: false,
  verbose: true,
};

const HELP = `npm run soak -- [options]     (every option also reads SOAK_<NAME>, e.g. SOAK_MEDIA=500)
  --media N            media to send (default ${DEFAULTS.media})
  --rate R             media started per second (default ${DEFAULTS.rate})
  --max-backlog N      pause the load while more than N accepted media are unfinished (default ${DEFAULTS.maxBacklog})
  --load-seconds S     no new media after S seconds (default ${DEFAULTS.loadSeconds})
  --settle-seconds S   wait at most S seconds for everything to finish after the load (default ${DEFAULTS.settleSeconds})
  --faults LIST        comma list of ${FAULTS.join(', ')}; "none" for none (default all)
  --worker-kill-every S  seconds between worker kills (default ${DEFAULTS.workerKillEverySeconds}); --outage-seconds S: PgBouncer/S3 down time (default ${DEFAULTS.outageSeconds})
  --baseline-share F   share of the media sent before the first fault (default ${DEFAULTS.baselineShare})
  --redis cluster|single          3 masters + 3 replicas, or one redis-server (default cluster)
  --pg pgbouncer|direct           PgBouncer in transaction mode, or PostgreSQL directly (default pgbouncer)
  --apis N --workers N --sweepers N   process counts (default 2, 3, 2)
  --short-ttl A-B      one media in ten lives A to B seconds, so sweeps delete during the load (default 20-60)
  --seed N             the mix and order of media (default 42)
  --json FILE          also write the report as JSON
  SOAK_PG_ADMIN_URL    the PostgreSQL to use (default TEST_DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres)
  --keep               keep the work directory (process logs, data)
  --quiet              no progress lines`;

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): SoakOptions | 'help' {
  const o: SoakOptions = { ...DEFAULTS, faults: [...DEFAULTS.faults] };
  const flags = new Map<string, string>();
  for (const [k, v] of Object.entries(env)) if (k.startsWith('SOAK_') && v) flags.set(k.slice(5).toLowerCase().replace(/_/g, '-'), v);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') return 'help';
    if (!a.startsWith('--')) throw new Error(`soak: unexpected argument ${a}\n${HELP}`);
    const [name, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (name === 'keep' || name === 'quiet') flags.set(name, 'true');
    else flags.set(name, inline ?? argv[++i] ?? '');
  }
  const num = (name: string, min: number, int = true): number | undefined => {
    const v = flags.get(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || (int && !Number.isInteger(n))) throw new Error(`soak: --${name} must be ${int ? 'an integer' : 'a number'} >= ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  for (const [flag, key, min, int] of [
    ['media', 'media', 1, true], ['rate', 'rate', 0.1, false], ['max-backlog', 'maxBacklog', 1, true], ['load-seconds', 'loadSeconds', 1, true], ['settle-seconds', 'settleSeconds', 1, true],
    ['apis', 'apis', 1, true], ['workers', 'workers', 1, true], ['sweepers', 'sweepers', 1, true], ['seed', 'seed', 0, true],
    ['worker-kill-every', 'workerKillEverySeconds', 1, true], ['outage-seconds', 'outageSeconds', 1, true], ['baseline-share', 'baselineShare', 0, false],
  ] as const) {
    const v = num(flag, min, int);
    if (v !== undefined) (o as unknown as Record<string, number>)[key] = v;
  }
  const ttl = flags.get('short-ttl');
  if (ttl !== undefined) {
    const m = /^(\d+)-(\d+)$/.exec(ttl);
    if (!m || Number(m[1]) < 1 || Number(m[2]) < Number(m[1])) throw new Error(`soak: --short-ttl must look like 20-60, got ${JSON.stringify(ttl)}`);
    o.shortTtl = [Number(m[1]), Number(m[2])];
  }
  const faults = flags.get('faults');
  if (faults !== undefined) {
    const list = faults === 'none' ? [] : faults.split(',').map((f) => f.trim()).filter(Boolean);
    const bad = list.find((f) => !(FAULTS as readonly string[]).includes(f));
    if (bad) throw new Error(`soak: unknown fault ${JSON.stringify(bad)}; known: ${FAULTS.join(', ')}`);
    o.faults = list as Fault[];
  }
  const redis = flags.get('redis');
  if (redis !== undefined) {
    if (redis !== 'cluster' && redis !== 'single') throw new Error('soak: --redis must be cluster or single');
    o.redis = redis;
  }
  const pgMode = flags.get('pg');
  if (pgMode !== undefined) {
    if (pgMode !== 'pgbouncer' && pgMode !== 'direct') throw new Error('soak: --pg must be pgbouncer or direct');
    o.pg = pgMode;
  }
  if (o.faults.includes('pgbouncer-stop') && o.pg === 'direct') throw new Error('soak: the pgbouncer-stop fault needs --pg pgbouncer');
  if (o.faults.includes('api-kill') && o.apis < 2) throw new Error('soak: the api-kill fault needs at least 2 API processes');
  const yes = (v: string | undefined) => v === 'true' || v === '1' || v === 'yes';
  if (yes(flags.get('keep'))) o.keep = true;
  if (yes(flags.get('quiet'))) o.verbose = false;
  if (flags.get('json')) o.jsonOut = flags.get('json');
  return o;
}

export { HELP };
