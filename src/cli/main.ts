import { Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig, type Config } from '../config/index.js';
import { createLogger } from '../log.js';
import { ROLES, type Role } from '../roles.js';
import { exitOnFailure, runRole } from '../run-role.js';

/**
 * The `mediaflow` command. Every command takes --json; errors print one line (or a JSON error)
 * and exit non-zero.
 */
function config(): Config {
  return loadConfig(process.env);
}

function out(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human()}\n`);
}

async function withRuntime<T>(fn: (rt: import('../runtime.js').Runtime) => Promise<T>): Promise<T> {
  const { createRuntime } = await import('../runtime.js');
  const cfg = config();
  const log = createLogger({ level: cfg.LOG_LEVEL ?? 'warn', destination: 2 });
  const rt = await createRuntime(cfg, log);
  try {
    return await fn(rt);
  } finally {
    await rt.close();
  }
}

const program = new Command('mediaflow')
  .description('Queue-driven media processing: ingest, validate, normalize, encrypt, store, expire.')
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Configuration comes from the environment (PORT, DATABASE_URL, REDIS_URL, STORAGE_DRIVER, DATA_DIR,
MASTER_KEYS/ACTIVE_KEY_ID, ...); a bad value stops with one line naming the variable.
Every command takes --json. \`mediaflow <command> --help\` shows a command's options.

Examples:
  mediaflow start --role worker
  mediaflow apps create --name demo --json
  mediaflow ingest ./clip.mp4 --app app_123 --wait
  mediaflow stats --json`,
  )
  .configureOutput({ outputError: (s, write) => write(s) });

program
  .command('migrate')
  .description('create the database if missing and apply pending migrations')
  .option('--json', 'machine-readable output')
  .action(async (o: { json?: boolean }) => {
    const { migrate, sessionDatabaseUrl } = await import('../db/migrate.js');
    const ran = await migrate(sessionDatabaseUrl(config()), createLogger({ level: 'warn', destination: 2 }));
    out(!!o.json, { applied: ran }, () => (ran.length ? `applied ${ran.join(', ')}` : 'no pending migrations'));
  });

program
  .command('start')
  .description('apply migrations, then run the API, workers and sweeper (or one role)')
  .addOption(new Option('--role <role>', 'which role to run').choices([...ROLES]).default('all'))
  .option('--json', 'accepted for symmetry; logs are JSON lines')
  .action(async (o: { role: Role }) => {
    const cfg = config();
    await runRole(cfg, createLogger({ level: cfg.LOG_LEVEL }), o.role);
  });

program
  .command('doctor')
  .description('check Node, ffmpeg, Redis, PostgreSQL, storage and master keys, with what to fix; exit 1 when a check fails')
  .option('--json', 'a JSON array of {check, status, detail, fix}')
  .action(async (o: { json?: boolean }) => {
    const { doctor } = await import('./doctor.js');
    process.exitCode = await doctor({ json: !!o.json });
  });

const apps = program.command('apps').description('manage apps');
apps
  .command('create')
  .description('create an app with an all-scopes API key and a webhook secret')
  .requiredOption('--name <name>', 'display name')
  .option('--webhook-url <url>', 'where media.* events are POSTed')
  .option('--max-bytes <limits>', 'per-kind delivered limits for this app, e.g. document=100000000,video=32000000')
  .option('--json', 'machine-readable output')
  .action(async (o: { name: string; webhookUrl?: string; maxBytes?: string; json?: boolean }) => {
    const { createApp } = await import('./admin.js');
    const res = await withRuntime((rt) => createApp(rt, o));
    out(!!o.json, res, () => `app ${res.app.id}\napi key (shown once): ${res.apiKey}\nwebhook secret: ${res.webhookSecret}`);
  });

const keys = program.command('keys').description('manage API keys');
keys
  .command('create')
  .requiredOption('--app <id>', 'app id')
  .requiredOption('--scopes <list>', 'comma-separated: media:read,media:write,media:delete,devices:write')
  .option('--json', 'machine-readable output')
  .action(async (o: { app: string; scopes: string; json?: boolean }) => {
    const { createKey } = await import('./admin.js');
    const res = await withRuntime((rt) => createKey(rt, o.app, o.scopes));
    out(!!o.json, res, () => `api key (shown once): ${res.apiKey}\nscopes: ${res.scopes.join(',')}`);
  });
keys
  .command('revoke')
  .requiredOption('--key-prefix <prefix>', 'the visible prefix, e.g. mf_ab12cd34')
  .option('--json', 'machine-readable output')
  .action(async (o: { keyPrefix: string; json?: boolean }) => {
    const { revokeKey } = await import('./admin.js');
    const res = await withRuntime((rt) => revokeKey(rt, o.keyPrefix));
    out(!!o.json, res, () => (res.revoked ? `revoked ${o.keyPrefix}` : `no active key ${o.keyPrefix}`));
    if (!res.revoked) process.exitCode = 1;
  });

const users = program.command('users').description('manage web console users (they sign in at /console and act for their app)');
users
  .command('create')
  .description('create a console user; the password is read from stdin or a prompt, hashed with scrypt, never printed')
  .requiredOption('--app <id>', 'the app the user belongs to')
  .requiredOption('--email <email>', 'the sign-in email')
  .option('--password-stdin', 'read the password from stdin (one line) instead of prompting')
  .option('--json', 'machine-readable output')
  .addHelpText('after', '\nExample:\n  printf %s "$PASSWORD" | mediaflow users create --app app_123 --email ops@example.com --password-stdin')
  .action(async (o: { app: string; email: string; passwordStdin?: boolean; json?: boolean }) => {
    const { readPassword } = await import('./password-input.js');
    const { createUser } = await import('./admin.js');
    const password = await readPassword(!!o.passwordStdin);
    const res = await withRuntime((rt) => createUser(rt, { app: o.app, email: o.email, password }));
    out(!!o.json, res, () => `console user ${res.user.email} (${res.user.id}) of app ${res.user.appId}`);
  });
users
  .command('list')
  .option('--app <id>', 'only this app\'s users')
  .option('--json', 'machine-readable output')
  .action(async (o: { app?: string; json?: boolean }) => {
    const { listUsers } = await import('./admin.js');
    const res = await withRuntime((rt) => listUsers(rt, o));
    out(!!o.json, res, () => res.users.map((u) => `${u.email.padEnd(32)} ${u.appId} ${u.disabledAt ? `disabled ${u.disabledAt}` : 'active'}`).join('\n') || 'no console users');
  });
users
  .command('disable')
  .requiredOption('--email <email>', 'the user to disable; their sessions end at once')
  .option('--json', 'machine-readable output')
  .action(async (o: { email: string; json?: boolean }) => {
    const { disableUser } = await import('./admin.js');
    const res = await withRuntime((rt) => disableUser(rt, o));
    out(!!o.json, res, () => (res.disabled ? `disabled ${res.email}` : `no active console user ${res.email}`));
    if (!res.disabled) process.exitCode = 1;
  });

program
  .command('ingest')
  .description('ingest a file or URL like the API does (sniffed, encrypted, queued); --wait shows progress until it settles')
  .argument('<fileOrUrl>', 'a local file, or an http(s) URL a worker fetches')
  .requiredOption('--app <id>', 'app id (from `mediaflow apps create`)')
  .addOption(new Option('--kind <kind>', 'what the media is; inferred from the bytes when omitted').choices(['image', 'video', 'audio', 'voice_note', 'document', 'sticker']))
  .option('--device <id>', 'device that owns the media (must exist in the app)')
  .option('--wait', 'wait until ready or failed, with a progress bar on a terminal (plain lines otherwise), on stderr')
  .option('--timeout <seconds>', 'with --wait: give up waiting after this long (the media keeps going)', (v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('a positive number of seconds');
    return n;
  }, 600)
  .option('--json', 'print the media object as one JSON line')
  .addHelpText(
    'after',
    `
Needs the service's environment (DATABASE_URL, REDIS_URL, storage and master key settings), and a
worker running somewhere (\`mediaflow start --role worker\`) for the media to become ready.
Progress goes to stderr; stdout is only the media object. Exits 1 when the media failed.

Examples:
  mediaflow ingest ./clip.mov --app app_123 --wait
  mediaflow ingest https://example.com/a.jpg --app app_123 --kind image --json`,
  )
  .action(async (target: string, o: { app: string; kind?: string; device?: string; wait?: boolean; timeout?: number; json?: boolean }) => {
    const { ingest } = await import('./ingest.js');
    const res = await withRuntime((rt) => ingest(rt, target, o));
    out(!!o.json, res, () => JSON.stringify(res, null, 2));
    if ((res as { status?: string }).status === 'failed') process.exitCode = 1;
  });

program
  .command('sweep')
  .description('run one retention sweep now (due media, then orphaned staging objects)')
  .option('--dry-run', 'show what would be deleted, delete nothing')
  .option('--max-batches <n>', 'stop after this many batches of SWEEP_BATCH_SIZE', (v) => Number.parseInt(v, 10))
  .option('--json', 'machine-readable output')
  .action(async (o: { dryRun?: boolean; maxBatches?: number; json?: boolean }) => {
    const { sweep } = await import('../retention/sweep.js');
    const { sweepExpiredTusUploads } = await import('../retention/tus-uploads.js');
    const res = await withRuntime(async (rt) => {
      const swept = await sweep(rt, { batchSize: rt.config.SWEEP_BATCH_SIZE, maxRetentionSeconds: rt.config.MAX_RETENTION_SECONDS, dryRun: !!o.dryRun, maxBatches: o.maxBatches, leaseSeconds: rt.config.SWEEP_LEASE_SECONDS });
      // Resumable uploads past their expiry go too, as in the scheduled sweep (not on a dry run).
      const tusUploads = o.dryRun ? { uploads: 0, bytes: 0, failed: 0 } : await sweepExpiredTusUploads(rt, { maxBatches: o.maxBatches });
      return { ...swept, tusUploads, failed: swept.failed + tusUploads.failed };
    });
    out(
      !!o.json,
      res,
      () =>
        `${o.dryRun ? 'would delete' : 'deleted'} ${res.deleted} media, ${res.bytesFreed} bytes ${JSON.stringify(res.byReason)}; ` +
        `staging objects ${res.staging.deleted}; expired resumable uploads ${res.tusUploads.uploads}; failed ${res.failed}; backlog ${res.backlog}`,
    );
    if (res.failed > 0) process.exitCode = 1;
  });

program
  .command('orphans')
  .description('report objects with no media row and ready media with no object; --fix deletes the objects and marks the media failed')
  .option('--fix', 'delete orphan objects and mark ready media whose object is gone failed (STORAGE_UNAVAILABLE)')
  .option('--min-age <seconds>', 'ignore objects younger than this (default 3600)', (v) => Number.parseInt(v, 10))
  .option('--limit <n>', 'items listed per section (default 1000; counts are always complete)', (v) => Number.parseInt(v, 10))
  .option('--json', 'machine-readable output')
  .action(async (o: { fix?: boolean; minAge?: number; limit?: number; json?: boolean }) => {
    const { reconcileOrphans } = await import('../retention/orphans.js');
    const { sessionDatabaseUrl } = await import('../db/migrate.js');
    const { createPool } = await import('../db/pool.js');
    // The scan keeps its listing in a temporary table: a session, so a direct URL (not PgBouncer's transaction mode).
    const res = await withRuntime(async (rt) => {
      const session = rt.config.DATABASE_MIGRATION_URL ? createPool(sessionDatabaseUrl(rt.config), { max: 1 }) : undefined;
      try {
        return await reconcileOrphans(session ? { ...rt, pool: session } : rt, { fix: !!o.fix, minAgeSeconds: o.minAge, limit: o.limit });
      } finally {
        await session?.end();
      }
    });
    out(!!o.json, res, () => {
      const lines = [
        `scanned ${res.scanned.objects} objects and ${res.scanned.readyRows} ready media`,
        `objects with no row: ${res.objectsWithoutRow.count} (${res.objectsWithoutRow.bytes} bytes)`,
        ...res.objectsWithoutRow.items.map((i) => `  ${i.why.padEnd(12)} ${i.key}`),
        `ready media with no object: ${res.rowsWithoutObject.count}`,
        ...res.rowsWithoutObject.items.map((i) => `  ${i.id} ${i.objectMissing ? i.storageKey : i.missingVariants.join(', ')}`),
      ];
      if (res.fixed) lines.push(`fixed: ${JSON.stringify(res.fixed)}`);
      return lines.join('\n');
    });
  });

const media = program.command('media').description('inspect media');
media
  .command('expiring')
  .description('referenced media (a scheduled send still needs them) that will be gone before a time, soonest first')
  .requiredOption('--before <iso>', 'an ISO 8601 date-time, e.g. 2026-12-24T09:00:00Z', (v) => {
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(v) || Number.isNaN(Date.parse(v))) {
      throw new InvalidArgumentError('expected an ISO 8601 date-time with an offset, e.g. 2026-12-24T09:00:00Z');
    }
    return new Date(v);
  })
  .option('--app <id>', 'only this app')
  .option('--limit <n>', 'media listed (default 1000; total is always complete)', (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
    return n;
  })
  .option('--json', 'machine-readable output: {before, total, items: [{id, appId, status, expiresAt, references, refs}]}')
  .action(async (o: { before: Date; app?: string; limit?: number; json?: boolean }) => {
    const { listReferencedExpiringBefore } = await import('../db/repos/references.js');
    const res = await withRuntime((rt) => listReferencedExpiringBefore(rt.pool, o.before, { appId: o.app, limit: o.limit ?? 1000 }));
    const value = { before: o.before.toISOString(), ...res };
    out(!!o.json, value, () =>
      [
        `${res.total} referenced media gone before ${value.before}`,
        ...res.items.map((m) => `  ${m.id}  ${m.appId}  expires ${m.expiresAt}  ${m.refs.map((r) => `${r.ref}@${r.sendAt}`).join(' ')}`),
      ].join('\n'),
    );
  });

program
  .command('stats')
  .description('queue depths, media counts by status and kind, bytes stored')
  .option('--json', 'machine-readable output')
  .addHelpText('after', '\nExample:\n  mediaflow stats --json | jq .queues')
  .action(async (o: { json?: boolean }) => {
    const { stats } = await import('./admin.js');
    const res = await withRuntime((rt) => stats(rt));
    out(!!o.json, res, () => formatStats(res));
  });

/** `stats` for a person: one line per queue, then media by status and kind. */
function formatStats(s: { queues: Record<string, Record<string, number>>; media: { byStatus: Record<string, number>; byKind: Record<string, number> }; bytesStored: number }): string {
  const kv = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  const lines = ['queues'];
  for (const [name, counts] of Object.entries(s.queues)) lines.push(`  ${name.padEnd(16)} ${kv(counts)}`);
  lines.push(`media by status  ${kv(s.media.byStatus)}`, `media by kind    ${kv(s.media.byKind)}`, `bytes stored     ${s.bytesStored} (${(s.bytesStored / 1e6).toFixed(1)} MB)`);
  return lines.join('\n');
}

program.parseAsync(process.argv).catch((err: unknown) => {
  if (process.argv.includes('--json')) {
    const code = (err as { code?: string }).code;
    process.stdout.write(`${JSON.stringify({ error: { code: code ?? 'ERROR', message: (err as Error)?.message ?? String(err) } })}\n`);
  }
  exitOnFailure(err);
});
