-- Up Migration
-- A sweep batch's lease as a row instead of a session advisory lock, so the sweeper holds no session
-- state and runs behind PgBouncer in transaction mode. A lease is live while `expires_at` is ahead of
-- the database clock; its holder renews it while the batch runs and deletes it when done. Rows in
-- `deleting` stamped (media.sweep_claim) with a token that has no live lease were left by a sweeper
-- that died, and the next sweep takes them over: at most one lease period after the death.
-- Tokens still come from media_sweep_claim_seq; `holder` tells two leases of one token apart should
-- the sequence wrap onto a lapsed one. See src/retention/lease.ts.
CREATE TABLE sweep_leases (
  token integer PRIMARY KEY,
  holder uuid NOT NULL,
  expires_at timestamptz NOT NULL,
  taken_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE sweep_leases;
