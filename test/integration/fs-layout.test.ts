/**
 * The fs store's folder inside DATA_DIR (real files in a temp dir): a data dir of the earlier
 * layout, with the store's folders beside the development key, is moved into `store/` once, and the
 * key stays where it was, outside the store.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { fsStoreRoot, moveLegacyFsLayout } from '../../src/storage/create-store.js';
import { createFsStore } from '../../src/storage/fs-store.js';

let dir = '';
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('moves objects/ and staging/ of an earlier layout into DATA_DIR/store, once, and readable by the store', async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mf-layout-'));
  await mkdir(path.join(dir, 'objects', 'app_a'), { recursive: true });
  await mkdir(path.join(dir, 'staging', 'app_a'), { recursive: true });
  await writeFile(path.join(dir, 'objects', 'app_a', 'med_x.bin'), 'sealed bytes');
  await writeFile(path.join(dir, 'master.key'), 'dev key\n');

  expect(await moveLegacyFsLayout(dir)).toEqual(['objects', 'staging']);
  expect(await moveLegacyFsLayout(dir)).toEqual([]);
  const store = createFsStore({ root: fsStoreRoot(dir) });
  const chunks: Buffer[] = [];
  for await (const c of await store.get('objects/app_a/med_x.bin')) chunks.push(c as Buffer);
  expect(Buffer.concat(chunks).toString()).toBe('sealed bytes');
  expect(await readFile(path.join(dir, 'master.key'), 'utf8')).toBe('dev key\n');
  await expect(store.get('master.key')).rejects.toThrow();
  await expect(store.get('../master.key')).rejects.toThrow();
  await store.close();
});
