import type { Queryable } from '../pool.js';
import type { Scope } from '../../domain/kinds.js';

export interface AppRow {
  id: string;
  name: string;
  webhook_url: string | null;
  webhook_secret: string;
  limits: Record<string, unknown>;
  created_at: Date;
}

export interface ApiKeyRow {
  id: number;
  app_id: string;
  prefix: string;
  scopes: Scope[];
  revoked_at: Date | null;
  limits: Record<string, number>;
}

export async function insertApp(db: Queryable, a: { id: string; name: string; webhookUrl: string | null; webhookSecret: string; limits?: Record<string, number> }): Promise<AppRow> {
  const { rows } = await db.query<AppRow>(
    'INSERT INTO apps (id, name, webhook_url, webhook_secret, limits) VALUES ($1, $2, $3, $4, $5) RETURNING *',
    [a.id, a.name, a.webhookUrl, a.webhookSecret, JSON.stringify(a.limits ?? {})],
  );
  return rows[0]!;
}

export async function getApp(db: Queryable, id: string): Promise<AppRow | null> {
  const { rows } = await db.query<AppRow>('SELECT * FROM apps WHERE id = $1', [id]);
  return rows[0] ?? null;
}

/** The app's webhook URL; null when it has none (or there is no such app). */
export async function getWebhookUrl(db: Queryable, appId: string): Promise<string | null> {
  const { rows } = await db.query<{ webhook_url: string | null }>('SELECT webhook_url FROM apps WHERE id = $1', [appId]);
  return rows[0]?.webhook_url ?? null;
}

/** Which of these apps have a webhook URL. */
export async function appsWithWebhook(db: Queryable, appIds: readonly string[]): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>('SELECT id FROM apps WHERE id = ANY($1::text[]) AND webhook_url IS NOT NULL', [appIds]);
  return new Set(rows.map((r) => r.id));
}

export async function insertApiKey(db: Queryable, k: { appId: string; prefix: string; hash: string; scopes: readonly Scope[] }): Promise<void> {
  await db.query('INSERT INTO api_keys (app_id, prefix, key_hash, scopes) VALUES ($1, $2, $3, $4)', [k.appId, k.prefix, k.hash, k.scopes]);
}

/** The key for a hash, revoked or not: the caller decides (revoked → 401). */
export async function findApiKeyByHash(db: Queryable, hash: string): Promise<ApiKeyRow | null> {
  const { rows } = await db.query<ApiKeyRow>(
    'SELECT k.id, k.app_id, k.prefix, k.scopes, k.revoked_at, a.limits FROM api_keys k JOIN apps a ON a.id = k.app_id WHERE k.key_hash = $1',
    [hash],
  );
  return rows[0] ?? null;
}

export async function revokeApiKey(db: Queryable, prefix: string): Promise<boolean> {
  const { rowCount } = await db.query('UPDATE api_keys SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL', [prefix]);
  return (rowCount ?? 0) > 0;
}
