-- Up Migration
-- Resumable (tus) uploads in progress. The bytes live in the store, sealed as they arrive
-- (`tus/<appId>/<id>/<firstSegment>-<random>.part`, each a run of whole 64 KiB segments of one
-- object); this row says which parts make up the upload so far and up to which offset, who owns it,
-- when it expires, and which request may write to it now. The sealed header (a wrapped data key, as
-- at the start of every sealed object) is kept here so every API process can go on sealing segments
-- of the same object. On completion the parts become the media's staging object and `media_id` a
-- media row; the row stays until it expires so a late HEAD still answers.
CREATE TABLE tus_uploads (
  id             text PRIMARY KEY,
  app_id         text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
  media_id       text NOT NULL UNIQUE,
  upload_length  bigint NOT NULL CHECK (upload_length > 0),
  sealed_offset  bigint NOT NULL DEFAULT 0,
  parts          jsonb NOT NULL DEFAULT '[]'::jsonb,
  sealed_header  bytea NOT NULL,
  kind           text,
  declared_mime  text,
  detected_mime  text,
  original_name  text,
  fields         jsonb NOT NULL DEFAULT '{}'::jsonb,
  metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- A lease, not a session lock (PgBouncer in transaction mode): the request holding the token may
  -- write until locked_until, and renews it while it works.
  lock_token     text,
  locked_until   timestamptz,
  completed_at   timestamptz,
  expires_at     timestamptz NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tus_uploads_expires_at ON tus_uploads (expires_at);

-- Down Migration
DROP TABLE tus_uploads;
