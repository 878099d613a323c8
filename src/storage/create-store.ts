import type { BlobStore } from './blob-store.js';
import { createFsStore } from './fs-store.js';
import { createS3Store, type S3StoreOptions } from './s3-store.js';

export type { S3StoreOptions } from './s3-store.js';

export interface StoreConfig {
  driver: 'fs' | 's3';
  /** Root of the `fs` driver's objects. */
  dataDir: string;
  /** Required when `driver` is `s3`. */
  s3?: S3StoreOptions;
}

/** The process's one BlobStore, chosen by configuration. Call once at start-up and share it. */
export function createStore(cfg: StoreConfig): BlobStore {
  switch (cfg.driver) {
    case 'fs':
      return createFsStore({ root: cfg.dataDir });
    case 's3':
      if (!cfg.s3) throw new Error('storage driver s3 needs s3 settings (bucket, region, endpoint...)');
      return createS3Store(cfg.s3);
    default: {
      const driver: never = cfg.driver;
      throw new Error(`unknown storage driver ${String(driver)}`);
    }
  }
}
