import type { Queryable } from '../pool.js';

export interface FolderRow {
  id: string;
  name: string;
  created_at: Date;
}

export async function insertFolder(db: Queryable, appId: string, id: string, name: string): Promise<FolderRow> {
  const { rows } = await db.query<FolderRow>('INSERT INTO folders (app_id, id, name) VALUES ($1, $2, $3) RETURNING id, name, created_at', [appId, id, name]);
  return rows[0]!;
}

/**
 * A page of an app's folders, each with the number of its media clients can still see, and the
 * app's folder count (`total`) on every row; an empty page carries no total (see `countFolders`).
 */
export async function listFoldersWithMediaCount(
  db: Queryable,
  appId: string,
  limit: number,
  offset: number,
): Promise<Array<FolderRow & { total: number; media_count: number }>> {
  const { rows } = await db.query<FolderRow & { total: number; media_count: number }>(
    `SELECT f.id, f.name, f.created_at, count(*) OVER ()::int AS total,
       (SELECT count(*)::int FROM media m WHERE m.app_id = f.app_id AND m.folder_id = f.id AND m.status NOT IN ('deleting', 'deleted')) AS media_count
     FROM folders f WHERE f.app_id = $1 ORDER BY f.created_at, f.id LIMIT $2 OFFSET $3`,
    [appId, limit, offset],
  );
  return rows;
}

export async function countFolders(db: Queryable, appId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM folders WHERE app_id = $1', [appId]);
  return rows[0]!.n;
}

/** Whether the app has this folder: the ownership check of an upload naming one. */
export async function folderExists(db: Queryable, appId: string, id: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM folders WHERE app_id = $1 AND id = $2', [appId, id]);
  return (rowCount ?? 0) > 0;
}
