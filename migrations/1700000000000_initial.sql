-- Up Migration
CREATE TABLE apps (
  id             text PRIMARY KEY,
  name           text NOT NULL,
  webhook_url    text,
  webhook_secret text NOT NULL,
  limits         jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id           bigserial PRIMARY KEY,
  app_id       text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
  prefix       text NOT NULL UNIQUE,
  key_hash     text NOT NULL UNIQUE,
  scopes       text[] NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz,
  last_used_at timestamptz
);

CREATE TABLE devices (
  app_id       text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
  id           text NOT NULL,
  name         text,
  status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'destroyed')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  destroyed_at timestamptz,
  PRIMARY KEY (app_id, id)
);

CREATE TABLE folders (
  app_id     text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
  id         text NOT NULL,
  name       text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (app_id, id)
);

CREATE TABLE media (
  id              text PRIMARY KEY,
  app_id          text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
  device_id       text,
  folder_id       text,
  kind            text,
  status          text NOT NULL CHECK (status IN ('queued', 'processing', 'ready', 'failed', 'deleting', 'deleted')),
  source          text NOT NULL,
  source_url      text,
  declared_mime   text,
  detected_mime   text,
  mime_type       text,
  original_name   text,
  name            text,
  description     text,
  input_bytes     bigint,
  size_bytes      bigint,
  stored_bytes    bigint,
  checksum        text,
  width           integer,
  height          integer,
  duration_ms     integer,
  pages           integer,
  waveform        jsonb,
  transform       text,
  media_path      text NOT NULL,
  storage_key     text NOT NULL,
  staging_key     text,
  key_id          text,
  variants        jsonb NOT NULL DEFAULT '[]'::jsonb,
  attempts        integer NOT NULL DEFAULT 0,
  error_code      text,
  error_message   text,
  delete_reason   text,
  correlation_id  text,
  expires_at      timestamptz NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  ready_at        timestamptz,
  deleted_at      timestamptz
);
CREATE UNIQUE INDEX media_app_path ON media (app_id, media_path);
CREATE INDEX media_app_created ON media (app_id, created_at);
CREATE INDEX media_app_device ON media (app_id, device_id) WHERE device_id IS NOT NULL;
CREATE INDEX media_due ON media (expires_at) WHERE status NOT IN ('deleting', 'deleted');
CREATE INDEX media_status_updated ON media (status, updated_at) WHERE status IN ('queued', 'processing', 'deleting', 'failed');

CREATE TABLE upload_slots (
  media_id     text PRIMARY KEY,
  app_id       text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
  token_hash   text NOT NULL UNIQUE,
  mime_type    text NOT NULL,
  byte_size    bigint NOT NULL,
  kind         text,
  fields       jsonb NOT NULL DEFAULT '{}'::jsonb,
  expires_at   timestamptz NOT NULL,
  used_at      timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE idempotency_keys (
  app_id        text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
  key           text NOT NULL,
  request_hash  text NOT NULL,
  status_code   integer,
  response      jsonb,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (app_id, key)
);

CREATE TABLE audit_events (
  id         bigserial PRIMARY KEY,
  app_id     text NOT NULL,
  media_id   text,
  event      text NOT NULL,
  reason     text,
  bytes      bigint,
  details    jsonb,
  at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_media ON audit_events (media_id);

CREATE TABLE webhook_deliveries (
  id               text PRIMARY KEY,
  app_id           text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
  event            text NOT NULL,
  media_id         text,
  body             jsonb NOT NULL,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts         integer NOT NULL DEFAULT 0,
  last_status_code integer,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  delivered_at     timestamptz
);

-- Down Migration
DROP TABLE webhook_deliveries;
DROP TABLE audit_events;
DROP TABLE idempotency_keys;
DROP TABLE upload_slots;
DROP TABLE media;
DROP TABLE folders;
DROP TABLE devices;
DROP TABLE api_keys;
DROP TABLE apps;
