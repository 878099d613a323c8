import type { BlobStore } from './blob-store.js';

const BATCH = 1000;

/**
 * Deletes every object under `prefix` (the parts of one resumable upload): listed, then deleted in
 * batches. Returns how many keys and bytes went. Throws the store's error when a delete fails; what
 * was not deleted is found again by the next call.
 */
export async function deletePrefix(store: BlobStore, prefix: string): Promise<{ keys: number; bytes: number }> {
  let batch: string[] = [];
  let keys = 0;
  let bytes = 0;
  for await (const o of store.list(prefix)) {
    batch.push(o.key);
    bytes += o.size;
    if (batch.length >= BATCH) {
      await store.delete(batch);
      keys += batch.length;
      batch = [];
    }
  }
  if (batch.length) await store.delete(batch);
  return { keys: keys + batch.length, bytes };
}
