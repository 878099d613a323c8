import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.js';
import { parseMasterKeys, type Keyring } from './sealed-format.js';

export const DEV_KEY_FILE = 'master.key';

/**
 * Production sets MASTER_KEYS/ACTIVE_KEY_ID. Without them, a development key is read from (or
 * generated into) DATA_DIR with a warning: media sealed with it is lost if the file is.
 */
export async function loadKeyring(
  cfg: { MASTER_KEYS?: string; ACTIVE_KEY_ID?: string; MASTER_KEY?: string; DATA_DIR: string; NODE_ENV: string },
  log: Logger,
): Promise<Keyring> {
  if (cfg.MASTER_KEYS) return parseMasterKeys(cfg.MASTER_KEYS, cfg.ACTIVE_KEY_ID ?? '');
  if (cfg.MASTER_KEY) return parseMasterKeys(`dev:${cfg.MASTER_KEY}`, 'dev');
  const file = path.join(cfg.DATA_DIR, DEV_KEY_FILE);
  let b64: string;
  try {
    b64 = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await mkdir(cfg.DATA_DIR, { recursive: true });
    b64 = randomBytes(32).toString('base64');
    try {
      await writeFile(file, `${b64}\n`, { mode: 0o600, flag: 'wx' });
      log.warn({ file }, 'no MASTER_KEYS set: generated a development master key; set MASTER_KEYS and ACTIVE_KEY_ID in production');
    } catch (e) {
      // Another process generated it first: use theirs.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      b64 = (await readFile(file, 'utf8')).trim();
    }
  }
  if (cfg.NODE_ENV === 'production') log.warn('using a development master key from DATA_DIR in production');
  return parseMasterKeys(`dev:${b64}`, 'dev');
}
