import { createWriteStream } from 'node:fs';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PermanentError } from '../domain/errors.js';
import { stagingKey } from '../domain/ids.js';
import type { IngestPayload } from '../queue/payloads.js';
import { BlobNotFoundError, type BlobStore } from '../storage/blob-store.js';
import { openObject, type Keyring } from '../storage/sealed-format.js';
import { openUrl } from './fetch-source.js';
import { SizeLimiter } from './limit-size.js';

export interface AcquireDeps {
  store: BlobStore;
  keyring: Keyring;
  allowPrivateUrls: boolean;
  fileSourceRoot?: string;
}

export interface AcquiredInput {
  path: string;
  bytes: number;
  contentType: string | null;
  filename: string | null;
}

/**
 * Brings a job's source into the job's scratch directory as plaintext (os.tmpdir() only),
 * enforcing `maxBytes` while the bytes move.
 */
export async function acquireInput(
  deps: AcquireDeps,
  input: { appId: string; mediaId: string; source: IngestPayload['source']; scratchDir: string; maxBytes: number; signal?: AbortSignal },
): Promise<AcquiredInput> {
  const out = path.join(input.scratchDir, 'input');
  let body: Readable;
  let contentType: string | null = null;
  let filename: string | null = null;
  const src = input.source;
  if (src.type === 'storage') {
    if (src.key.startsWith('staging/')) {
      // Our own sealed staging object: only the one made for this media may be opened.
      if (src.key !== stagingKey(input.appId, input.mediaId)) throw new PermanentError('VALIDATION_FAILED', 'staging key does not belong to this media');
      body = await openStored(() => openObject(deps.store, src.key, deps.keyring, { purpose: 'staging', appId: input.appId, mediaId: input.mediaId }));
    } else {
      if (src.key.startsWith('objects/') || src.key.includes('..')) throw new PermanentError('VALIDATION_FAILED', 'storage source key is not allowed');
      body = await openStored(() => deps.store.get(src.key));
      filename = path.posix.basename(src.key);
    }
  } else if (src.type === 'url') {
    const fetched = await openUrl(src.url, { maxBytes: input.maxBytes, allowPrivateNetworks: deps.allowPrivateUrls, signal: input.signal });
    body = fetched.body;
    contentType = fetched.contentType;
    filename = fetched.filename;
  } else {
    body = await openLocalFile(src.path, deps.fileSourceRoot);
    filename = path.basename(src.path);
  }
  const limiter = new SizeLimiter(input.maxBytes);
  await pipeline(body, limiter, createWriteStream(out, { mode: 0o600 }), { signal: input.signal });
  return { path: out, bytes: limiter.bytes, contentType, filename };
}

async function openStored(open: () => Promise<Readable>): Promise<Readable> {
  try {
    return await open();
  } catch (err) {
    if (err instanceof BlobNotFoundError) throw new PermanentError('NOT_FOUND', 'the source object is gone (expired staging or deleted)');
    throw err;
  }
}

async function openLocalFile(p: string, root: string | undefined): Promise<Readable> {
  if (!path.isAbsolute(p) || p.includes('\0')) throw new PermanentError('VALIDATION_FAILED', 'file source must be an absolute path');
  let real: string;
  try {
    real = await realpath(p);
  } catch {
    throw new PermanentError('NOT_FOUND', 'file source does not exist');
  }
  if (root) {
    const r = await realpath(root).catch(() => path.resolve(root));
    if (real !== r && !real.startsWith(r + path.sep)) throw new PermanentError('VALIDATION_FAILED', 'file source lies outside FILE_SOURCE_ROOT');
  }
  const st = await stat(real);
  if (!st.isFile()) throw new PermanentError('VALIDATION_FAILED', 'file source is not a regular file');
  return createReadStream(real);
}

