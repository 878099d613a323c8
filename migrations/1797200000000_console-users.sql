-- Up Migration
-- People who sign in to the web console (issue 17). A console user belongs to one app and acts
-- for it with every scope. The password is stored as an scrypt hash (src/domain/password.ts),
-- never in clear. Emails are kept lower-cased so one person has one account per app.
CREATE TABLE console_users (
  id             text PRIMARY KEY,
  app_id         text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
  email          text NOT NULL CHECK (email = lower(email)),
  password_hash  text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  disabled_at    timestamptz,
  last_signed_in_at timestamptz
);
-- Sign-in looks a user up by email alone: one account per email across apps keeps that unambiguous.
CREATE UNIQUE INDEX console_users_email ON console_users (email);
CREATE INDEX console_users_app ON console_users (app_id);

-- One row per sign-in. The cookie's JWT names its session; every request checks the row, so signing
-- out (revoked_at) or disabling the user ends the session at once although the token is still signed.
CREATE TABLE console_sessions (
  id            text PRIMARY KEY,
  user_id       text NOT NULL REFERENCES console_users(id) ON DELETE CASCADE,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  revoked_at    timestamptz
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- Down Migration
DROP TABLE console_sessions;
DROP TABLE console_users;
