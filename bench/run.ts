/**
 * `npm run bench`: every benchmark in turn, each printing markdown tables with ratios to the
 * baselines it measures in the same run. `npm run bench -- crypto pipeline` runs a subset.
 */
const ALL = ['crypto', 'storage', 'pipeline', 'normalize', 'sweep', 'tus'] as const;

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const names = wanted.length ? wanted : [...ALL];
let failed = 0;
for (const name of names) {
  console.log(`\n## ${name}\n`);
  try {
    const mod = (await import(`./${name}.bench.ts`)) as { run(): Promise<void> };
    await mod.run();
  } catch (err) {
    failed++;
    console.error(`bench ${name} failed:`, err);
  }
}
process.exit(failed ? 1 : 0);
