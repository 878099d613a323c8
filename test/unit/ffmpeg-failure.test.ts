import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/domain/errors.js';
import { classifyToolFailure, summarizeStderr, toolFailureError } from '../../src/pipeline/ffmpeg/failure.js';

const base = { tool: 'ffmpeg' as const, exitCode: 1, exitSignal: null, stderrTail: '', timedOut: false };

describe('classifyToolFailure', () => {
  it.each([
    ['[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d] moov atom not found\nfile:/tmp/x: Invalid data found when processing input', 'content'],
    ['[matroska,webm @ 0x1] EBML header parsing failed', 'content'],
    ['Error while decoding stream #0:0: Invalid data found when processing input', 'content'],
    ['Conversion failed!', 'transient'],
    ['', 'transient'],
  ])('ffmpeg exit 1 with %j → %s', (stderrTail, kind) => {
    expect(classifyToolFailure({ ...base, stderrTail })).toBe(kind);
  });
  it('a signal from outside is transient, whatever stderr says', () => {
    expect(classifyToolFailure({ ...base, exitCode: null, exitSignal: 'SIGKILL', stderrTail: 'Invalid data found' })).toBe('transient');
    expect(classifyToolFailure({ ...base, exitCode: null, exitSignal: 'SIGTERM' })).toBe('transient');
  });
  it('our own timeout is final: the budget is far above the work, so the input is what is stuck', () => {
    expect(classifyToolFailure({ ...base, exitCode: null, exitSignal: 'SIGKILL', timedOut: true })).toBe('content');
    expect(classifyToolFailure({ ...base, tool: 'ffprobe', exitCode: null, exitSignal: 'SIGKILL', timedOut: true })).toBe('content');
  });
  it('ffprobe failing on our own scratch file means the media is unreadable', () => {
    expect(classifyToolFailure({ ...base, tool: 'ffprobe', stderrTail: 'something new' })).toBe('content');
  });
});

describe('toolFailureError', () => {
  it('content → PermanentError MEDIA_REJECTED without our paths; transient → plain Error', () => {
    const p = toolFailureError({ ...base, stderrTail: '[mov @ 0xabc] moov atom not found\nfile:/tmp/job/in.bin: Invalid data found when processing input\n' }, 'probing');
    expect(p).toBeInstanceOf(PermanentError);
    expect((p as PermanentError).code).toBe('MEDIA_REJECTED');
    expect(p.message).toBe('probing: the media could not be decoded (input: Invalid data found when processing input)');
    const t = toolFailureError({ ...base, exitCode: null, exitSignal: 'SIGKILL' }, 'transcoding');
    expect(t).not.toBeInstanceOf(PermanentError);
    expect(t.message).toBe('transcoding: ffmpeg was killed by SIGKILL');
  });
  it('a timeout says which tool, what it was doing, and the limit', () => {
    const e = toolFailureError({ ...base, tool: 'ffprobe', exitCode: null, exitSignal: 'SIGKILL', timedOut: true, timeoutMs: 1500 }, 'probing the media');
    expect(e).toBeInstanceOf(PermanentError);
    expect((e as PermanentError).code).toBe('MEDIA_REJECTED');
    expect(e.message).toBe('probing the media: ffprobe did not finish within 1.5 s and was stopped (the input stalls or is too costly to process)');
    expect(toolFailureError({ ...base, exitSignal: 'SIGKILL', timedOut: true, timeoutMs: 30_000 }, 'x').message).toMatch(/^x: ffmpeg did not finish within 30 s /);
  });
  it('summarizeStderr keeps the last meaningful line, bounded', () => {
    expect(summarizeStderr('\n\n[aac @ 0x7f] Too many bits\n\n')).toBe('Too many bits');
    expect(summarizeStderr('x'.repeat(500))).toHaveLength(201);
  });
});
