-- Up Migration
-- The processing run that owns a `queued`/`processing` row: each run of the media job writes a fresh
-- random token here when it claims the row, and every later state change of that run (kind, ready,
-- failed, back to queued) is conditional on it. A stalled job taken over by a second run therefore
-- leaves the first run unable to commit, fail or requeue the row. See src/pipeline/process-media.ts.
ALTER TABLE media ADD COLUMN claim_token text;

-- Down Migration
ALTER TABLE media DROP COLUMN claim_token;
