/** Reading a job's progress for the media object: what BullMQ stores, and a Redis that fails or hangs. */
import { describe, expect, it } from 'vitest';
import { parseProgress, readJobProgress } from '../../src/queue/job-progress.js';

const queue = { toKey: (id: string) => `mf:media-ingest:${id}` };

describe('parseProgress', () => {
  it.each([
    ['a number', '42', 42],
    ['a fraction, rounded', '37.6', 38],
    ['the end', '100', 100],
    ['over 100, clamped', '140', 100],
    ['negative, clamped', '-3', 0],
    ['never reported', null, undefined],
    ['an object (not a percentage)', '{"step":"upload"}', undefined],
    ['not JSON', 'abc', undefined],
  ])('%s', (_name, raw, expected) => {
    expect(parseProgress(raw)).toBe(expected);
  });
});

describe('readJobProgress', () => {
  it('reads the progress field of the job hash named by the job id', async () => {
    const asked: unknown[] = [];
    const redis = { hget: async (key: string, field: string) => (asked.push([key, field]), '55') };
    expect(await readJobProgress(redis, queue, 'med_abc')).toBe(55);
    expect(asked).toEqual([['mf:media-ingest:med_abc', 'progress']]);
  });

  it('leaves the progress out when Redis refuses or never answers', async () => {
    const refusing = { hget: () => Promise.reject(new Error('Connection is closed.')) };
    const hanging = { hget: () => new Promise<string | null>(() => undefined) };
    expect(await readJobProgress(refusing, queue, 'med_abc')).toBeUndefined();
    expect(await readJobProgress(hanging, queue, 'med_abc', 20)).toBeUndefined();
  });
});
