/**
 * The core path against the running service over HTTP: real Redis, real PostgreSQL, the fs store,
 * real sharp. Nothing is mocked. The flows are shared with the S3 run (s3-core-path.test.ts) in
 * test/helpers/core-flows.ts, so both drivers answer to exactly the same checks.
 */
import { afterAll, beforeAll } from 'vitest';
import { fsStoreRoot } from '../../src/storage/create-store.js';
import { defineCoreFlows, fsInspector } from '../helpers/core-flows.js';
import { startService, type TestService } from '../helpers/service.js';

let svc: TestService;

beforeAll(async () => {
  svc = await startService();
});

afterAll(async () => {
  await svc?.stop();
});

defineCoreFlows('fs', () => ({ svc, inspector: fsInspector(fsStoreRoot(svc.config.DATA_DIR)) }));
