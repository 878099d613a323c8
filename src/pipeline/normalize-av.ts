import type { NormalizeInput, NormalizeOutput } from './normalize-types.js';
import { normalizeAudio } from './normalize-audio.js';
import { normalizeVideo } from './normalize-video.js';
import { normalizeVoiceNote } from './normalize-voice-note.js';

/** Audio and video kinds, each through ffmpeg with its own decision and output format. */
export async function normalizeAv(input: NormalizeInput): Promise<NormalizeOutput> {
  switch (input.kind) {
    case 'video':
      return normalizeVideo(input);
    case 'audio':
      return normalizeAudio(input);
    case 'voice_note':
      return normalizeVoiceNote(input);
    default:
      throw new Error(`normalizeAv does not handle the ${input.kind} kind`);
  }
}
