/**
 * The deployment files, checked without a Docker engine (none runs here): docker-compose.yml is
 * validated by Debian's docker-compose v1 when it is installed (`config -q` resolves anchors,
 * interpolation and the schema), and always by a structural check of the parsed YAML; the
 * Dockerfile by what it must say. A last check covers what `npm ci --omit=dev` would break: every
 * package the runtime sources import must be a production dependency.
 * Real: the files in the repository, the docker-compose binary when present.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const composeText = readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');
const compose = parse(composeText, { merge: true }) as Record<string, any>;
const services = compose.services as Record<string, any>;
const ROLES = ['api', 'worker', 'sweeper'] as const;

function hasBinary(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

describe('docker-compose.yml', () => {
  it.runIf(hasBinary('docker-compose'))('passes `docker-compose config -q` (compose v1 schema, anchors, interpolation)', () => {
    const env = { ...process.env, MASTER_KEYS: 'k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', ACTIVE_KEY_ID: 'k1', CONSOLE_SESSION_SECRET: 'c'.repeat(32) };
    // Throws with compose's own message when the file is invalid.
    execFileSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: ROOT, env, stdio: 'pipe' });
    // Without the key ring it must refuse, naming the variable.
    const bare = { ...process.env };
    delete bare.MASTER_KEYS;
    delete bare.ACTIVE_KEY_ID;
    const r = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: ROOT, env: bare, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('MASTER_KEYS');
  });

  it('has no top-level name: (compose v1 rejects it) and the services of the stack', () => {
    expect(compose).not.toHaveProperty('name');
    for (const s of ['redis', 'postgres', 'minio', 'minio-init', ...ROLES]) expect(services, s).toHaveProperty(s);
  });

  it('runs redis with AOF everysec and noeviction', () => {
    const cmd = [].concat(services.redis.command).join(' ');
    expect(cmd).toMatch(/--appendonly yes\b/);
    expect(cmd).toMatch(/--appendfsync everysec\b/);
    expect(cmd).toMatch(/--maxmemory-policy noeviction\b/);
    expect(services.redis.volumes?.length).toBeGreaterThan(0);
  });

  it('runs every role from the same image with --role, against redis, postgres and minio', () => {
    for (const role of ROLES) {
      const s = services[role];
      expect(s.image, role).toBe(services.api.image);
      expect(s.build, role).toBeDefined();
      expect(s.command, role).toEqual(['start', '--role', role]);
      expect(s.environment.STORAGE_DRIVER, role).toBe('s3');
      expect(s.environment.S3_ENDPOINT, role).toBe('http://minio:9000');
      expect(s.environment.S3_FORCE_PATH_STYLE, role).toBe('true');
      expect(s.environment.REDIS_URL, role).toBe('redis://redis:6379');
      expect(s.environment.DATABASE_URL, role).toMatch(/@postgres:5432\//);
      expect(s.environment.MASTER_KEYS, role).toMatch(/^\$\{MASTER_KEYS:\?/);
      expect(Object.keys(s.depends_on ?? {}).sort(), role).toEqual(['minio-init', 'postgres', 'redis']);
      expect(s.depends_on['minio-init'].condition).toBe('service_completed_successfully');
      // Docker's default 10 s before SIGKILL is shorter than the graceful drain.
      const grace = Number(/^(\d+)s$/.exec(s.stop_grace_period)?.[1]);
      expect(grace, role).toBeGreaterThan(Number(s.environment.SHUTDOWN_TIMEOUT_SECONDS));
    }
    // Roles without the API are health-checked on their metrics server.
    expect(services.worker.environment.HEALTHCHECK_PORT).toBe(services.worker.environment.METRICS_PORT);
    expect(services.sweeper.environment.HEALTHCHECK_PORT).toBe(services.sweeper.environment.METRICS_PORT);
  });

  it('lets the worker scale: no container_name, no host ports', () => {
    expect(services.worker).not.toHaveProperty('container_name');
    expect(services.worker).not.toHaveProperty('ports');
    expect(services.sweeper).not.toHaveProperty('container_name');
  });

  it('creates the bucket once, in a one-shot service, with the credentials the roles use', () => {
    const init = services['minio-init'];
    expect(init.restart).toBe('no');
    expect([].concat(init.command).join(' ')).toMatch(/mc mb --ignore-existing local\/mediaflow/);
    expect(services.api.environment.S3_BUCKET).toBe('mediaflow');
    expect(services.api.environment.S3_ACCESS_KEY_ID).toBe(services.minio.environment.MINIO_ROOT_USER);
    expect(services.api.environment.S3_SECRET_ACCESS_KEY).toBe(services.minio.environment.MINIO_ROOT_PASSWORD);
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const instructions = text.split('\n').filter((l) => /^[A-Z]+\s/.test(l));

  it('is multi-stage on node:24-slim with Debian ffmpeg, prod deps only, a non-root user and a healthcheck', () => {
    const froms = instructions.filter((l) => l.startsWith('FROM '));
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const f of froms) expect(f).toMatch(/^FROM node:24-slim\b/);
    expect(text).toMatch(/apt-get install[^\n]*\bffmpeg\b/);
    expect(text).toMatch(/npm ci --omit=dev\b/);
    expect(text).toMatch(/COPY --from=deps /);
    const user = instructions.filter((l) => l.startsWith('USER ')).pop();
    expect(user).toBeDefined();
    expect(user).not.toMatch(/\broot\b|\b0\b/);
    expect(text).toMatch(/HEALTHCHECK[\s\S]*\/healthz/);
    expect(text).toMatch(/ENTRYPOINT \[.*"bin\/mediaflow\.js"\]/);
  });

  it('copies only paths that exist, and the image runs the sources the tests run', () => {
    for (const l of instructions.filter((x) => x.startsWith('COPY ') && !x.includes('--from'))) {
      const parts = l.split(/\s+/).slice(1, -1);
      for (const p of parts) expect(existsSync(path.join(ROOT, p)), p).toBe(true);
    }
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    // bin/mediaflow.js loads the TypeScript through tsx, so tsx must survive --omit=dev.
    expect(pkg.dependencies).toHaveProperty('tsx');
  });

  it('imports no devDependency from runtime code (npm ci --omit=dev would break the image)', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const prod = new Set(Object.keys(pkg.dependencies));
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    const files: string[] = [path.join(ROOT, 'bin/mediaflow.js')];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(ts|js|mjs)$/.test(e.name)) files.push(p);
      }
    };
    walk(path.join(ROOT, 'src'));
    const missing: string[] = [];
    for (const f of files) {
      const src = readFileSync(f, 'utf8');
      // Type-only imports vanish at run time.
      for (const m of src.matchAll(/^\s*import\s+(?!type\s)(?:[^'"]*?from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm)) {
        const spec = m[1] ?? m[2]!;
        if (spec.startsWith('.') || spec.startsWith('/') || builtins.has(spec)) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (!prod.has(name)) missing.push(`${path.relative(ROOT, f)}: ${spec}`);
      }
    }
    expect(missing).toEqual([]);
  });
});

describe('.dockerignore', () => {
  it('keeps node_modules, data and the git history out of the build context', () => {
    const lines = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const p of ['node_modules', 'data', '.git', '.env']) expect(lines, p).toContain(p);
  });
});
