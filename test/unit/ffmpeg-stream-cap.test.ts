import { describe, expect, it } from 'vitest';
import { AUDIO_LIMITS, MAX_STREAMS, streamCountRefusal, VIDEO_LIMITS, VOICE_NOTE_LIMITS } from '../../src/pipeline/ffmpeg/av-limits.js';

const counts = (video: number, audio: number, attachedPictures = 0, other = 0): { video: number; audio: number; attachedPictures: number; other: number } => ({
  video,
  audio,
  attachedPictures,
  other,
});

describe('streamCountRefusal', () => {
  it.each([
    ['a plain clip', counts(1, 1), null],
    ['audio only', counts(0, 1), null],
    ['an iPhone HDR clip: video, audio, 4 metadata tracks', counts(1, 1, 0, 4), null],
    ['a GoPro clip: video, audio, tmcd, gpmd, fdsc', counts(1, 1, 0, 3), null],
    ['an MP3 with cover art', counts(0, 1, 1), null],
    ['exactly the cap', counts(1, 15), null],
    ['one over the cap', counts(1, 16), 'the file has 17 streams, over the limit of 16 (one video and one audio stream are kept)'],
    ['12 audio streams and a video, under a cap of 8', counts(1, 12), 'the file has 13 streams, over the limit of 8 (one video and one audio stream are kept)', 8],
    ['hundreds of data streams', counts(1, 1, 0, 500), 'the file has 502 streams, over the limit of 16 (one video and one audio stream are kept)'],
    ['attached pictures count too', counts(0, 1, 16), 'the file has 17 streams, over the limit of 16 (one video and one audio stream are kept)'],
  ] as Array<[string, ReturnType<typeof counts>, string | null, number?]>)('%s', (_name, c, expected, max) => {
    expect(streamCountRefusal(c, max ?? MAX_STREAMS)).toBe(expected);
  });

  it('every ffmpeg kind carries the cap', () => {
    expect(MAX_STREAMS).toBe(16);
    expect([VIDEO_LIMITS.maxStreams, AUDIO_LIMITS.maxStreams, VOICE_NOTE_LIMITS.maxStreams]).toEqual([MAX_STREAMS, MAX_STREAMS, MAX_STREAMS]);
  });
});
