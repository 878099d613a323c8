/**
 * What the soak sends: a mix like a messaging product's inbound traffic. Mostly small phone photos,
 * then voice notes, some short videos and documents, and a few broken files that must end `failed`
 * with a contract code. Built from the deterministic fixtures of test/fixtures (cached across runs)
 * and test/helpers/media.ts; each sample is sent many times, each time as a new media.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fixture, type FixtureName } from '../../test/fixtures/generate.js';
import { noiseJpeg, smallJpeg } from '../../test/helpers/media.js';

export type SampleGroup = 'photo' | 'voice_note' | 'video' | 'document' | 'broken';

export interface Sample {
  id: string;
  group: SampleGroup;
  kind: 'image' | 'voice_note' | 'video' | 'document';
  mime: string;
  filename: string;
  bytes: Buffer;
  /** What the media must end as: `ready`, or `failed` with this contract code. */
  expect: { status: 'ready' } | { status: 'failed'; code: string };
}

/** Weights per 100 media. */
export const MIX: Record<SampleGroup, number> = { photo: 72, voice_note: 14, video: 5, document: 7, broken: 2 };

async function fromFixture(id: string, group: SampleGroup, kind: Sample['kind'], mime: string, name: FixtureName, expect: Sample['expect'] = { status: 'ready' }): Promise<Sample> {
  const file = await fixture(name);
  return { id, group, kind, mime, filename: path.basename(file), bytes: await readFile(file), expect };
}

export async function buildCorpus(): Promise<Record<SampleGroup, Sample[]>> {
  const photo = (id: string, bytes: Buffer, mime = 'image/jpeg', filename = `${id}.jpg`): Sample => ({ id, group: 'photo', kind: 'image', mime, filename, bytes, expect: { status: 'ready' } });
  return {
    photo: [
      photo('photo-40k', await noiseJpeg(40_000, 11)),
      photo('photo-120k', await noiseJpeg(120_000, 12)),
      photo('photo-300k', await noiseJpeg(300_000, 13)),
      photo('photo-800k', await noiseJpeg(800_000, 14)),
      photo('photo-vga', await smallJpeg(640, 480, 15)),
      await fromFixture('photo-exif-p3', 'photo', 'image', 'image/jpeg', 'jpegExifOrientation6'),
      await fromFixture('photo-png-alpha', 'photo', 'image', 'image/png', 'pngAlpha'),
      await fromFixture('photo-webp', 'photo', 'image', 'image/webp', 'webpStatic'),
    ],
    voice_note: [
      await fromFixture('voice-ogg-opus', 'voice_note', 'voice_note', 'audio/ogg', 'oggOpusMono'),
      await fromFixture('voice-m4a', 'voice_note', 'voice_note', 'audio/mp4', 'm4a'),
      await fromFixture('voice-webm', 'voice_note', 'voice_note', 'audio/webm', 'webmOpusNoDuration'),
    ],
    video: [
      await fromFixture('video-mp4', 'video', 'video', 'video/mp4', 'mp4Compliant'),
      await fromFixture('video-mp4-portrait', 'video', 'video', 'video/mp4', 'mp4Rotated'),
      await fromFixture('video-mov-pcm', 'video', 'video', 'video/quicktime', 'movPcm'),
    ],
    document: [
      await fromFixture('doc-pdf', 'document', 'document', 'application/pdf', 'pdf'),
      await fromFixture('doc-docx', 'document', 'document', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'docx'),
      await fromFixture('doc-txt', 'document', 'document', 'text/plain', 'text'),
    ],
    broken: [await fromFixture('broken-jpeg', 'broken', 'image', 'image/jpeg', 'jpegGarbage', { status: 'failed', code: 'MEDIA_REJECTED' })],
  };
}

/** A deterministic pseudo-random source (mulberry32), so a run's mix and order repeat. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pickGroup(r: number): SampleGroup {
  let acc = 0;
  const total = Object.values(MIX).reduce((a, b) => a + b, 0);
  for (const [g, w] of Object.entries(MIX) as Array<[SampleGroup, number]>) {
    acc += w / total;
    if (r < acc) return g;
  }
  return 'photo';
}
