import { canonicalMime } from '../../domain/policies.js';

/**
 * The ffmpeg demuxer forced for a sniffed type. Forcing `-f` means ffmpeg never guesses the format
 * from content, so a file that sniffs as MP4 cannot be read as an HLS playlist, a concat script or
 * an image sequence, whatever bytes it holds. Types not listed are not given to ffmpeg at all.
 */
const DEMUXERS: Readonly<Record<string, string>> = {
  'video/mp4': 'mov',
  'video/3gpp': 'mov',
  'video/quicktime': 'mov',
  'audio/mp4': 'mov',
  'audio/3gpp': 'mov',
  'video/webm': 'matroska',
  'audio/webm': 'matroska',
  'video/matroska': 'matroska',
  'video/vnd.avi': 'avi',
  'audio/mpeg': 'mp3',
  'audio/ogg': 'ogg',
  'audio/aac': 'aac',
  'audio/amr': 'amr',
  'audio/wav': 'wav',
  'audio/flac': 'flac',
  'image/bmp': 'bmp_pipe',
};

export function demuxerFor(sniffedMime: string): string | null {
  return DEMUXERS[canonicalMime(sniffedMime)] ?? null;
}
