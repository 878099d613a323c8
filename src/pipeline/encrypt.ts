import { createReadStream } from 'node:fs';
import type { BlobStore } from '../storage/blob-store.js';
import { createSealStream, type Keyring, type SealContext } from '../storage/sealed-format.js';

export interface SealedObject {
  sha256: string;
  plainBytes: number;
  sealedBytes: number;
  keyId: string;
}

/**
 * Checksum and encryption in one streaming pass from a scratch file into the store, under a key of
 * the caller's own run that nothing points at until the caller commits (so the put is `fresh`).
 */
export async function sealFileToStore(
  deps: { store: BlobStore; keyring: Keyring },
  input: { path: string; key: string; ctx: SealContext; signal?: AbortSignal },
): Promise<SealedObject> {
  const seal = createSealStream(deps.keyring, input.ctx);
  const src = createReadStream(input.path, { highWaterMark: 1024 * 1024 });
  src.on('error', (err) => seal.stream.destroy(err));
  src.pipe(seal.stream);
  await deps.store.put(input.key, seal.stream, { signal: input.signal, fresh: true });
  return seal.result;
}

/** The same pass from plaintext held in memory (a small job's output): no file is read or written. */
export async function sealBufferToStore(
  deps: { store: BlobStore; keyring: Keyring },
  input: { bytes: Buffer; key: string; ctx: SealContext; signal?: AbortSignal },
): Promise<SealedObject> {
  const seal = createSealStream(deps.keyring, input.ctx);
  seal.stream.end(input.bytes);
  await deps.store.put(input.key, seal.stream, { signal: input.signal, fresh: true });
  return seal.result;
}
