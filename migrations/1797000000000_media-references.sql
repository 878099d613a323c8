-- Up Migration
-- Scheduled sends that need a media (issue 15): the caller's own `ref`, unique per media, and when it
-- sends. `live_until` is `send_at` + REFERENCE_GRACE_SECONDS at the time of writing: a reference is
-- over by itself past it, so every reader asks one indexed column instead of being handed the setting.
-- A reference never keeps a media by itself: only `extend` moves `media.expires_at`.
CREATE TABLE media_references (
  media_id   text NOT NULL REFERENCES media(id) ON DELETE CASCADE,
  ref        text NOT NULL CHECK (ref ~ '^[A-Za-z0-9._:-]{1,128}$'),
  send_at    timestamptz NOT NULL,
  live_until timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (media_id, ref)
);
-- The media object's `references` summary and the live checks (count, next send) of one media.
CREATE INDEX media_references_live ON media_references (media_id, live_until);

-- When `media.expiring` was recorded for this media: set by the same statement that writes the
-- event's outbox row, conditional on being NULL, so the notice is sent once whatever the number of
-- sweeper processes or restarts.
ALTER TABLE media ADD COLUMN expiry_noticed_at timestamptz;

-- Down Migration
ALTER TABLE media DROP COLUMN expiry_noticed_at;
DROP TABLE media_references;
