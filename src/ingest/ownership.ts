import type { Queryable } from '../db/pool.js';
import { getDeviceStatus } from '../db/repos/devices.js';
import { folderExists } from '../db/repos/folders.js';
import { PermanentError } from '../domain/errors.js';

/**
 * Device and folder named by a new media must be this app's (another app's are 404 too, never
 * 403), and a destroyed device takes no new media. Final: a worker does not retry it.
 */
export async function checkOwnership(db: Queryable, appId: string, f: { deviceId?: string | null; folderId?: string | null }): Promise<void> {
  if (f.deviceId && (await getDeviceStatus(db, appId, f.deviceId)) !== 'active') {
    throw new PermanentError('NOT_FOUND', `no device ${f.deviceId}`, { fields: { deviceId: 'not found' } });
  }
  if (f.folderId && !(await folderExists(db, appId, f.folderId))) {
    throw new PermanentError('NOT_FOUND', `no folder ${f.folderId}`, { fields: { folderId: 'not found' } });
  }
}
