import type { MediaKind } from '../domain/kinds.js';
import type { Logger } from '../log.js';

export interface NormalizeInput {
  /** Plaintext scratch file, already size-capped and sniffed ('' when `inputBuffer` holds the bytes). */
  inputPath: string;
  /**
   * The plaintext held in memory instead of a file: a small input the image step decodes where it
   * is (see `decodesInMemory` in normalize.ts); its output then comes back in `outputBuffer`.
   */
  inputBuffer?: Buffer | undefined;
  /** Canonical MIME from file-type / text detection (see canonicalMime in domain/policies). */
  sniffedMime: string;
  kind: MediaKind;
  /** Per-job dir in os.tmpdir(); outputs are written here; the caller removes it. */
  scratchDir: string;
  log: Logger;
  /** Abort kills ffmpeg's process group; sharp work is checked between phases. */
  signal?: AbortSignal | undefined;
  /** 0..100, throttled here (at most about once a second, increasing only). */
  onProgress?: ((percent: number) => void) | undefined;
  /**
   * Caps the wall-clock limit of every tool run (ffprobe, ffmpeg, heif-convert) of this call. Unset,
   * each run gets its budget from `toolTimeoutMs` (from the media's duration), which is the default
   * the worker uses; a caller with a tighter deadline, or a test of a stuck run, sets it lower.
   */
  maxToolMs?: number | undefined;
  /**
   * The most bytes the stored file may have: the app's override of the kind's delivered limit.
   * Unset, the kind's own (MEDIA_POLICIES[kind].maxBytes). The input may be larger: it is made to fit.
   */
  deliveredLimitBytes?: number | undefined;
}

export interface NormalizeVariant {
  name: 'poster';
  path: string;
  mimeType: string;
}

/**
 * - `kept`: the bytes as sent (outputPath === inputPath);
 * - `remuxed`: streams copied unchanged into a new container;
 * - `transcoded`: re-encoded, stored in the format it came in (JPEG → JPEG, MP4 → MP4);
 * - `converted`: re-encoded into another format (PNG → JPEG, WebM → MP4, WAV → AAC/MP4).
 */
export type NormalizeTransform = 'kept' | 'remuxed' | 'transcoded' | 'converted';

export interface NormalizeOutput {
  /** The file to store (may equal inputPath when kept as sent; '' when `outputBuffer` holds the bytes). */
  outputPath: string;
  /** The bytes to store, when the input came in memory (`inputBuffer`): nothing was written to disk. */
  outputBuffer?: Buffer;
  /** Stored MIME. */
  mimeType: string;
  transform: NormalizeTransform;
  width: number | null;
  height: number | null;
  durationMs: number | null;
  pages: number | null;
  /** 64 values 0..100 for voice notes. */
  waveform: number[] | null;
  variants: NormalizeVariant[];
}

/** `transcoded` when the stored type is the sniffed one, else `converted`. */
export function reencodedTransform(sniffedMime: string, storedMime: string): 'transcoded' | 'converted' {
  return sniffedMime === storedMime ? 'transcoded' : 'converted';
}
