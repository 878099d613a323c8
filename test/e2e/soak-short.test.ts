/**
 * The short soak (issue 13): `npm run soak`'s whole topology at a small size, in the suite. A Redis
 * Cluster of 3 masters + 3 replicas, PgBouncer in transaction mode in front of PostgreSQL (a fresh
 * database), s3rver in its own process, 2 API + 3 worker + 2 sweeper processes, a webhook receiver;
 * a few hundred media through every way in, two devices destroyed, short-lived media swept during
 * the load; two faults: workers SIGKILLed (and restarted) and PgBouncer stopped for 10 s. Everything
 * is real; nothing is mocked. The Redis master kill is not one of them here: after a failover,
 * BullMQ 6.7's sweeper worker sometimes stops taking jobs (about 3 runs in 8 in a reproduction; see
 * docs/scaling.md), which would make this test fail at random; the full soak keeps that fault, and
 * test/integration/redis-cluster.test.ts checks an upload reaching ready across a failover. Every invariant
 * of the report must hold. The full run (3,000 media, all six faults) is `npm run soak`; its numbers
 * are in docs/scaling.md.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../scripts/soak/options.js';
import { runSoak } from '../../scripts/soak/run.js';

describe('short soak: a cluster, PgBouncer, seven processes, two faults', () => {
  it('loses nothing, does nothing twice, leaves nothing behind', async () => {
    const report = await runSoak({
      ...DEFAULTS,
      media: 240,
      rate: 10,
      maxBacklog: 60,
      faults: ['worker-kill', 'pgbouncer-stop'],
      workerKillEverySeconds: 12,
      shortTtl: [5, 20],
      loadSeconds: 150,
      settleSeconds: 120,
      verbose: process.env.SOAK_VERBOSE === '1',
    });
    console.log(report.text);
    const broken = report.lines.filter((l) => !l.held).map((l) => `${l.name}: ${l.detail}`);
    expect(broken, report.text).toEqual([]);
    expect(report.text).toMatch(/^invariants: \d+ held, 0 broken$/m);
    // The faults did happen, mid-load.
    expect(report.faults.filter((f) => f.fault === 'worker-kill' && f.detail.startsWith('SIGKILL')).length, report.text).toBeGreaterThanOrEqual(1);
    expect(report.faults.some((f) => f.fault === 'pgbouncer-stop'), report.text).toBe(true);
    expect(report.faults.filter((f) => f.fault === 'device-destroy' && / → 204 /.test(f.detail))).toHaveLength(2);
  }, 420_000);
});
