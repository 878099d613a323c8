/**
 * Thin entry point: the HTTP API alone (`mediaflow start --role api`).
 * Run with `node --import tsx workers/api.worker.ts`; stateless, put several behind a load balancer.
 */
process.argv.splice(2, process.argv.length - 2, 'start', '--role', 'api');
await import('../src/cli/main.js');
