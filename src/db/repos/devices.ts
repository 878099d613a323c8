import type { Queryable } from '../pool.js';

export interface DeviceRow {
  app_id: string;
  id: string;
  name: string | null;
  status: 'active' | 'destroyed';
  created_at: Date;
  destroyed_at: Date | null;
}

/** A new device; null when the id is taken (destroyed ids included: they are never reused). */
export async function insertDevice(db: Queryable, appId: string, id: string, name: string | null): Promise<DeviceRow | null> {
  const { rows } = await db.query<DeviceRow>(
    `INSERT INTO devices (app_id, id, name) VALUES ($1, $2, $3) ON CONFLICT (app_id, id) DO NOTHING RETURNING *`,
    [appId, id, name],
  );
  return rows[0] ?? null;
}

/** An active device with the number of its media clients can still see. */
export async function getActiveDeviceWithMediaCount(db: Queryable, appId: string, id: string): Promise<(DeviceRow & { media_count: number }) | null> {
  const { rows } = await db.query<DeviceRow & { media_count: number }>(
    `SELECT d.*, (SELECT count(*)::int FROM media m WHERE m.app_id = d.app_id AND m.device_id = d.id AND m.status NOT IN ('deleting', 'deleted')) AS media_count
     FROM devices d WHERE d.app_id = $1 AND d.id = $2 AND d.status = 'active'`,
    [appId, id],
  );
  return rows[0] ?? null;
}

/** active → destroyed; false when there is no such active device. */
export async function destroyDevice(db: Queryable, appId: string, id: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE devices SET status = 'destroyed', destroyed_at = now() WHERE app_id = $1 AND id = $2 AND status = 'active'`,
    [appId, id],
  );
  return (rowCount ?? 0) > 0;
}

/** The status of an app's device, or null when the app has no such device: the ownership check of an upload naming one. */
export async function getDeviceStatus(db: Queryable, appId: string, id: string): Promise<DeviceRow['status'] | null> {
  const { rows } = await db.query<{ status: DeviceRow['status'] }>('SELECT status FROM devices WHERE app_id = $1 AND id = $2', [appId, id]);
  return rows[0]?.status ?? null;
}
