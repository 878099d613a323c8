import { mkdir, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import type { BlobStore } from './blob-store.js';
import { createFsStore } from './fs-store.js';
import { createS3Store, type S3StoreOptions } from './s3-store.js';

export type { S3StoreOptions } from './s3-store.js';

export interface StoreConfig {
  driver: 'fs' | 's3';
  /** DATA_DIR: the `fs` driver keeps its objects in `<dataDir>/store` (see `fsStoreRoot`). */
  dataDir: string;
  /** Required when `driver` is `s3`. */
  s3?: S3StoreOptions;
}

/** The process's one BlobStore, chosen by configuration. Call once at start-up and share it. */
export function createStore(cfg: StoreConfig): BlobStore {
  switch (cfg.driver) {
    case 'fs':
      return createFsStore({ root: fsStoreRoot(cfg.dataDir) });
    case 's3':
      if (!cfg.s3) throw new Error('storage driver s3 needs s3 settings (bucket, region, endpoint...)');
      return createS3Store(cfg.s3);
    default: {
      const driver: never = cfg.driver;
      throw new Error(`unknown storage driver ${String(driver)}`);
    }
  }
}

/**
 * The fs store's root is a folder of its own inside DATA_DIR, so nothing else kept in DATA_DIR (the
 * development master key above all) is ever a store key that a request or a job could name.
 */
export function fsStoreRoot(dataDir: string): string {
  return path.join(dataDir, 'store');
}

/** The top-level folders of the store; before the store had a folder of its own they sat in DATA_DIR. */
const STORE_FOLDERS = ['objects', 'staging', 'inbox'] as const;

/**
 * Moves a data dir of the earlier layout (`<DATA_DIR>/objects`, `staging`, `inbox`) into
 * `<DATA_DIR>/store`, once, by rename (same file system, atomic per folder). Returns what moved.
 */
export async function moveLegacyFsLayout(dataDir: string): Promise<string[]> {
  const moved: string[] = [];
  const root = fsStoreRoot(dataDir);
  for (const name of STORE_FOLDERS) {
    const from = path.join(dataDir, name);
    const to = path.join(root, name);
    if (!(await isDir(from)) || (await isDir(to))) continue;
    await mkdir(root, { recursive: true });
    await rename(from, to);
    moved.push(name);
  }
  return moved;
}

async function isDir(p: string): Promise<boolean> {
  return stat(p).then((s) => s.isDirectory(), () => false);
}
