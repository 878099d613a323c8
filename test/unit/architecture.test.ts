/**
 * The shape DESIGN.md "Where things live" promises, checked on the source itself: no import cycle
 * between files, each layer imports only what its row allows, and SQL is written only under src/db.
 * Reads files under src; touches nothing else.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import madge from 'madge';
import { beforeAll, describe, expect, it } from 'vitest';

/**
 * What the tree still breaks while issue 10's moves land, as `file → rules` in the words the test
 * reports them. The list only shrinks: the test fails on a violation missing from it, and on a listed
 * one that no longer occurs, so it cannot go stale.
 */
const KNOWN_VIOLATIONS: Readonly<Record<string, readonly string[]>> = {};

/** The process-wide logger and metrics registry: any layer that does I/O may report through them. */
const SHARED = ['log.ts', 'metrics.ts'];

/**
 * DESIGN.md "Where things live": what each folder under src may import besides itself, as a folder
 * or one file in it. Folders missing here (api, cli, retention, top-level wiring) are not checked.
 */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  config: [],
  domain: [],
  net: ['domain'],
  storage: ['domain', ...SHARED],
  db: ['domain', ...SHARED],
  queue: ['domain', ...SHARED],
  // "The storage interface": the BlobStore contract and the sealed format, never a driver or the key files.
  pipeline: ['domain', 'net', 'storage/blob-store.ts', 'storage/sealed-format.ts', 'storage/sealed-store.ts', ...SHARED],
  webhooks: ['domain', 'db', 'queue', 'net', ...SHARED],
  ingest: ['domain', 'db', 'queue', 'storage', 'pipeline', ...SHARED],
  // Everything but api and cli; runtime.ts is the shared handles (pool, queues, store) a handler runs on.
  jobs: ['config', 'domain', 'net', 'storage', 'db', 'queue', 'pipeline', 'ingest', 'retention', 'webhooks', 'runtime.ts', ...SHARED],
};

/** Packages src/domain may use: computation only, no file, network, process or database access. */
const DOMAIN_PACKAGES = ['node:crypto', 'zod'];

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const TSCONFIG = fileURLToPath(new URL('../../tsconfig.json', import.meta.url));

function sourceFiles(dir = ''): string[] {
  return readdirSync(path.join(SRC, dir), { withFileTypes: true })
    .flatMap((e) => {
      const rel = dir === '' ? e.name : `${dir}/${e.name}`;
      if (e.isDirectory()) return sourceFiles(rel);
      return e.name.endsWith('.ts') ? [rel] : [];
    })
    .sort();
}

// Import clauses as the grammar allows them, anchored at a line start so comments and strings do not count.
const STATIC_IMPORT = /^[ \t]*(?:import|export)\s+(?:type\s+)?(?:[\w$]+\s*,\s*)?(?:\{[^}]*\}|\*(?:\s+as\s+[\w$]+)?|[\w$]+)\s*from\s*(['"])([^'"\n]+)\1/gm;
const BARE_IMPORT = /^[ \t]*import\s*(['"])([^'"\n]+)\1/gm;
/** Dynamic imports, `import('…').Type` in type positions, and require. */
const CALL_IMPORT = /\b(?:import|require)\(\s*(['"])([^'"\n]+)\1\s*\)/g;

interface FileImports {
  /** Files of ours, relative to src (`db/pool.ts`); `../…` when outside src. */
  internal: { target: string; specifier: string }[];
  packages: string[];
}

function readImports(file: string, text: string): FileImports {
  const specifiers = [STATIC_IMPORT, BARE_IMPORT, CALL_IMPORT].flatMap((re) => [...text.matchAll(re)].map((m) => m[2]!));
  const out: FileImports = { internal: [], packages: [] };
  for (const specifier of new Set(specifiers)) {
    if (!specifier.startsWith('.')) {
      out.packages.push(specifier);
      continue;
    }
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier)).replace(/\.js$/, '.ts');
    out.internal.push({ target, specifier });
  }
  return out;
}

/** The rule an import of `target` from `layer` breaks, or null when the layer's row allows it. */
function brokenRule(layer: string, target: string): string | null {
  if (target.startsWith(`${layer}/`)) return null;
  const allowed = MAY_IMPORT[layer]!;
  if (allowed.some((a) => target === a || target.startsWith(`${a}/`))) return null;
  if (target.startsWith('..')) return `imports ${target}`;
  const [top] = target.split('/');
  const partlyAllowed = allowed.some((a) => a.startsWith(`${top}/`));
  if (partlyAllowed || top === target) return `imports ${target}`;
  return `imports ${top}/`;
}

/** `file: rule` → what makes it so, one line per occurrence. */
type Violations = Map<string, string[]>;

function add(found: Violations, file: string, rule: string, detail: string): void {
  const key = `src/${file}: ${rule}`;
  found.set(key, [...(found.get(key) ?? []), detail]);
}

/**
 * Fails on a violation not in KNOWN_VIOLATIONS, listing each with where it comes from, and on a
 * listed one of this family that no longer occurs.
 */
function expectOnlyKnown(found: Violations, family: (rule: string) => boolean): void {
  const known = new Set(Object.entries(KNOWN_VIOLATIONS).flatMap(([file, rules]) => rules.filter(family).map((r) => `${file}: ${r}`)));
  const fresh = [...found].filter(([key]) => !known.has(key)).map(([key, details]) => `${key}\n      ${details.join('\n      ')}`);
  const gone = [...known].filter((key) => !found.has(key));
  // One assertion, so a run that fixes one rule and breaks another reports both.
  expect({ 'new: fix, do not list': fresh, 'fixed: remove from KNOWN_VIOLATIONS': gone }).toEqual({
    'new: fix, do not list': [],
    'fixed: remove from KNOWN_VIOLATIONS': [],
  });
}

const isLayerRule = (rule: string): boolean => rule.startsWith('imports ');
const isPackageRule = (rule: string): boolean => rule.startsWith('uses ');
const isSqlRule = (rule: string): boolean => rule.startsWith('.query(');

describe('architecture (DESIGN.md "Where things live")', () => {
  let files: string[];
  let texts: Map<string, string>;
  let imports: Map<string, FileImports>;
  let graph: Awaited<ReturnType<typeof madge>>;

  beforeAll(async () => {
    files = sourceFiles();
    texts = new Map(files.map((f) => [f, readFileSync(path.join(SRC, f), 'utf8')]));
    imports = new Map(files.map((f) => [f, readImports(f, texts.get(f)!)]));
    // Type-only imports are kept (skipTypeImports: false, madge's default, as `madge --circular` runs):
    // erased at run time, they still tie two modules' designs together, and none closes a cycle today.
    graph = await madge(SRC, { fileExtensions: ['ts'], tsConfig: TSCONFIG, detectiveOptions: { ts: { skipTypeImports: false } } });
  });

  it('reads every file under src, and madge resolves every import', () => {
    expect(files.length).toBeGreaterThan(50);
    expect(Object.keys(graph.obj()).sort()).toEqual(files);
    expect(graph.warnings().skipped).toEqual([]);
  });

  it('lists known violations only in words the rules below report', () => {
    const unchecked = Object.values(KNOWN_VIOLATIONS)
      .flat()
      .filter((rule) => !isLayerRule(rule) && !isPackageRule(rule) && !isSqlRule(rule));
    expect(unchecked).toEqual([]);
  });

  it('has no import cycle between files', () => {
    expect(graph.circular().map((cycle) => cycle.join(' → '))).toEqual([]);
  });

  it('sees the same imports as madge, so the layer rules below miss none', () => {
    const differing = files.flatMap((f) => {
      const ours = new Set(imports.get(f)!.internal.map((i) => i.target));
      const theirs = new Set(graph.obj()[f] ?? []);
      const onlyOurs = [...ours].filter((t) => !theirs.has(t));
      const onlyMadge = [...theirs].filter((t) => !ours.has(t));
      return onlyOurs.length + onlyMadge.length === 0 ? [] : [`${f}: only read here ${JSON.stringify(onlyOurs)}, only madge ${JSON.stringify(onlyMadge)}`];
    });
    expect(differing).toEqual([]);
  });

  it('keeps each layer to the imports its row allows', () => {
    const found: Violations = new Map();
    for (const file of files) {
      const layer = file.split('/')[0]!;
      if (!(layer in MAY_IMPORT)) continue;
      for (const { target, specifier } of imports.get(file)!.internal) {
        const rule = brokenRule(layer, target);
        if (rule !== null) add(found, file, rule, specifier);
      }
    }
    expectOnlyKnown(found, isLayerRule);
  });

  it('keeps src/domain free of I/O: it imports only pure packages', () => {
    const found: Violations = new Map();
    for (const file of files.filter((f) => f.startsWith('domain/'))) {
      for (const pkg of imports.get(file)!.packages) {
        if (!DOMAIN_PACKAGES.includes(pkg)) add(found, file, `uses ${pkg}`, pkg);
      }
    }
    expectOnlyKnown(found, isPackageRule);
  });

  it('writes SQL only under src/db (no .query( call elsewhere)', () => {
    const found: Violations = new Map();
    for (const file of files.filter((f) => !f.startsWith('db/'))) {
      texts
        .get(file)!
        .split('\n')
        .forEach((line, i) => {
          if (/\.query\s*(<|\()/.test(line)) add(found, file, '.query( outside src/db/', `line ${i + 1}: ${line.trim()}`);
        });
    }
    expectOnlyKnown(found, isSqlRule);
  });
});
