/**
 * Real services for the integration and e2e tiers. This machine runs Redis and PostgreSQL locally
 * (REDIS_URL / DATABASE_URL override); each test file makes its own database and queue prefix.
 * testcontainers is the fallback for machines with a Docker engine and no local services: it is
 * imported lazily so machines without Docker pay nothing.
 */
export default async function setup(): Promise<void> {
  process.env.TEST_REDIS_URL ??= process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  process.env.TEST_DATABASE_URL ??= process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
}
