/**
 * Thin entry point: the media-ingest and webhook workers (`mediaflow start --role worker`).
 * Run with `node --import tsx workers/media.worker.ts`; scale by running more of them.
 */
process.argv.splice(2, process.argv.length - 2, 'start', '--role', 'worker');
await import('../src/cli/main.js');
