/**
 * A long-lived image normalizer in its own process, for the bench's "sharp in a child process"
 * table: the cost of moving untrusted-image decoding out of the worker, measured against the same
 * normalize() call in-process. Started once with child_process.fork; each IPC message is one image
 * ({id, path, mime, scratchDir}), answered with {id, ok, ms} or {id, ok: false, error}. Several
 * messages may be in flight at once, as a pooled child would serve several worker slots.
 *   fork('bench/normalize-image-child.ts', [], { execArgv: ['--import', 'tsx'] })
 */
import sharp from 'sharp';
import { silentLogger } from '../src/log.js';
import { normalize } from '../src/pipeline/normalize.js';

interface Job {
  id: number;
  path: string;
  mime: string;
  scratchDir: string;
}

process.on('message', (job: Job) => {
  const started = performance.now();
  normalize({ inputPath: job.path, sniffedMime: job.mime, kind: 'image', scratchDir: job.scratchDir, log: silentLogger }).then(
    (out) => process.send!({ id: job.id, ok: true, ms: performance.now() - started, outputPath: out.outputPath }),
    (err: unknown) => process.send!({ id: job.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
});
process.send!({ ready: true, concurrency: sharp.concurrency() });
