/**
 * Thin entry point: the retention sweeper and its job scheduler (`mediaflow start --role sweeper`).
 * Run with `node --import tsx workers/sweeper.worker.ts`; several may run, they split the work.
 */
process.argv.splice(2, process.argv.length - 2, 'start', '--role', 'sweeper');
await import('../src/cli/main.js');
