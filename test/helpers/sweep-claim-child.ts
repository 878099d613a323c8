/**
 * A sweeper that dies mid-batch, for the crash-safety test: it takes a lease, claims a batch of due
 * media (marking them `deleting`), optionally deletes their objects, prints what it claimed, then
 * hangs until the test SIGKILLs it. Run as `node --import tsx test/helpers/sweep-claim-child.ts`
 * with DATABASE_URL, DATA_DIR, SWEEP_BATCH_SIZE, SWEEP_LEASE_SECONDS and CRASH_AFTER=claim|bytes.
 */
import { createPool } from '../../src/db/pool.js';
import { claimDue } from '../../src/db/repos/media.js';
import { acquireLease } from '../../src/retention/lease.js';
import { deleteObjectsOf } from '../../src/retention/purge-media.js';
import { fsStoreRoot } from '../../src/storage/create-store.js';
import { createFsStore } from '../../src/storage/fs-store.js';

const pool = createPool(process.env.DATABASE_URL!);
const lease = await acquireLease(pool, Number(process.env.SWEEP_LEASE_SECONDS ?? 30));
const rows = await claimDue(lease.db, lease.token, Number(process.env.SWEEP_BATCH_SIZE ?? 100), 90 * 24 * 3600);
if (process.env.CRASH_AFTER === 'bytes') await deleteObjectsOf(createFsStore({ root: fsStoreRoot(process.env.DATA_DIR!) }), rows);
process.stdout.write(`${JSON.stringify({ token: lease.token, ids: rows.map((r) => r.id) })}\n`);
// Hold the lease (renewing it) as a sweeper busy with this batch would, until killed.
setInterval(() => undefined, 1 << 30);
