import { createReadStream } from 'node:fs';
import type { BlobStore } from '../storage/blob-store.js';
import { createSealStream, type Keyring, type SealContext } from '../storage/sealed-format.js';

export interface SealedObject {
  sha256: string;
  plainBytes: number;
  sealedBytes: number;
  keyId: string;
}

/** Checksum and encryption in one streaming pass from a scratch file into the store. */
export async function sealFileToStore(
  deps: { store: BlobStore; keyring: Keyring },
  input: { path: string; key: string; ctx: SealContext; signal?: AbortSignal },
): Promise<SealedObject> {
  const seal = createSealStream(deps.keyring, input.ctx);
  const src = createReadStream(input.path, { highWaterMark: 1024 * 1024 });
  src.on('error', (err) => seal.stream.destroy(err));
  src.pipe(seal.stream);
  await deps.store.put(input.key, seal.stream, { signal: input.signal });
  return seal.result;
}
