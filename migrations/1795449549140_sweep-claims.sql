-- Up Migration
-- Which sweeper claimed a row it moved to `deleting`. The claimer holds a session advisory lock
-- (pg_advisory_lock(1835430775, sweep_claim)) for as long as it works on the batch; when that lock
-- is gone (the process died, its connection closed) the rows are reclaimed at once instead of after
-- a timeout. See src/retention/lease.ts.
ALTER TABLE media ADD COLUMN sweep_claim integer;
CREATE SEQUENCE media_sweep_claim_seq AS integer MINVALUE 1 CYCLE;
-- Media past the retention cap are found by age: without this the cap check scans every live row.
CREATE INDEX media_live_created ON media (created_at) WHERE status NOT IN ('deleting', 'deleted');
-- Recently destroyed devices, whose late-arriving media (an upload that raced the destroy) the sweep catches.
CREATE INDEX devices_destroyed_at ON devices (destroyed_at) WHERE status = 'destroyed';

-- Down Migration
DROP INDEX devices_destroyed_at;
DROP INDEX media_live_created;
DROP SEQUENCE media_sweep_claim_seq;
ALTER TABLE media DROP COLUMN sweep_claim;
