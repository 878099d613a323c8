import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { nodeSatisfies } from '../../src/cli/doctor.js';

describe("doctor's Node check against package.json engines", () => {
  const engines = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } }).engines.node;

  it('accepts the versions the project is tested on (Node 20 and the Node 24 of scripts/test-node24.sh)', () => {
    expect(nodeSatisfies(engines, '20.20.2')).toBe(true);
    expect(nodeSatisfies(engines, '24.21.0')).toBe(true);
  });

  it('refuses versions outside the range', () => {
    expect(nodeSatisfies(engines, '20.18.3')).toBe(false);
    expect(nodeSatisfies(engines, '18.20.0')).toBe(false);
    expect(nodeSatisfies(engines, '21.7.0')).toBe(false);
    expect(nodeSatisfies(engines, '25.0.0')).toBe(false);
  });

  it('reads >= and ^ alternatives, and gives up on other forms', () => {
    expect(nodeSatisfies('>=20.19', '22.0.0')).toBe(true);
    expect(nodeSatisfies('>=20.19', '20.18.9')).toBe(false);
    expect(nodeSatisfies('^22.12.0', '22.12.0')).toBe(true);
    expect(nodeSatisfies('^22.12.0', '22.11.9')).toBe(false);
    expect(nodeSatisfies('^22.12.0', '23.0.0')).toBe(false);
    expect(nodeSatisfies('^20.19.0 || ^24.0.0', 'v24.1.0')).toBe(true);
    expect(nodeSatisfies('20.x', '20.1.0')).toBeNull();
    expect(nodeSatisfies('', '20.1.0')).toBeNull();
  });
});
