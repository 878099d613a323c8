import type { Queryable } from '../pool.js';

export interface ConsoleUserRow {
  id: string;
  app_id: string;
  email: string;
  password_hash: string;
  created_at: Date;
  disabled_at: Date | null;
  last_signed_in_at: Date | null;
}

/** What a request with a session cookie needs: the session is live and its user still enabled. */
export interface LiveSession {
  session_id: string;
  user_id: string;
  app_id: string;
  email: string;
  expires_at: Date;
  /** The app's per-kind limits, as an API key of the app has them. */
  limits: Record<string, number>;
}

export async function insertConsoleUser(db: Queryable, u: { id: string; appId: string; email: string; passwordHash: string }): Promise<ConsoleUserRow | null> {
  const { rows } = await db.query<ConsoleUserRow>(
    `INSERT INTO console_users (id, app_id, email, password_hash) VALUES ($1, $2, $3, $4)
     ON CONFLICT (email) DO NOTHING RETURNING *`,
    [u.id, u.appId, u.email, u.passwordHash],
  );
  return rows[0] ?? null;
}

export async function listConsoleUsers(db: Queryable, appId?: string): Promise<ConsoleUserRow[]> {
  const { rows } = await db.query<ConsoleUserRow>(
    'SELECT * FROM console_users WHERE ($1::text IS NULL OR app_id = $1) ORDER BY app_id, email',
    [appId ?? null],
  );
  return rows;
}

/** Disables the user and ends every session of theirs; false when there is no such enabled user. */
export async function disableConsoleUser(db: Queryable, email: string): Promise<boolean> {
  const { rows } = await db.query<{ id: string }>(
    `WITH u AS (UPDATE console_users SET disabled_at = now() WHERE email = $1 AND disabled_at IS NULL RETURNING id),
          s AS (UPDATE console_sessions SET revoked_at = now() WHERE user_id IN (SELECT id FROM u) AND revoked_at IS NULL)
     SELECT id FROM u`,
    [email],
  );
  return rows.length > 0;
}

export async function findConsoleUserByEmail(db: Queryable, email: string): Promise<ConsoleUserRow | null> {
  const { rows } = await db.query<ConsoleUserRow>('SELECT * FROM console_users WHERE email = $1', [email]);
  return rows[0] ?? null;
}

/** A sign-in: the session row, and the user's last sign-in time. */
export async function openConsoleSession(db: Queryable, s: { id: string; userId: string; expiresAt: Date }): Promise<void> {
  await db.query(
    `WITH s AS (INSERT INTO console_sessions (id, user_id, expires_at) VALUES ($1, $2, $3)),
          -- Ended sessions of this user are forgotten here: the table holds live ones and a day of history.
          old AS (DELETE FROM console_sessions WHERE user_id = $2 AND expires_at < now() - interval '1 day')
     UPDATE console_users SET last_signed_in_at = now() WHERE id = $2`,
    [s.id, s.userId, s.expiresAt],
  );
}

export async function findLiveConsoleSession(db: Queryable, sessionId: string): Promise<LiveSession | null> {
  const { rows } = await db.query<LiveSession>(
    `SELECT s.id AS session_id, u.id AS user_id, u.app_id, u.email, s.expires_at, a.limits
     FROM console_sessions s JOIN console_users u ON u.id = s.user_id JOIN apps a ON a.id = u.app_id
     WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > now() AND u.disabled_at IS NULL`,
    [sessionId],
  );
  return rows[0] ?? null;
}

export async function revokeConsoleSession(db: Queryable, sessionId: string): Promise<void> {
  await db.query('UPDATE console_sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [sessionId]);
}
