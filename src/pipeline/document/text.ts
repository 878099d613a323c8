/**
 * Plain text: valid UTF-8 (a BOM is fine) with no NUL byte, checked as it streams (pure). A NUL
 * means binary content sniffed as text, or UTF-16, which receivers would show as garbage.
 */
import { PermanentError } from '../../domain/errors.js';

export interface TextValidator {
  push(chunk: Buffer): void;
  end(): void;
}

export function createTextValidator(): TextValidator {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let offset = 0;
  const decode = (chunk?: Buffer): void => {
    try {
      if (chunk) decoder.decode(chunk, { stream: true });
      else decoder.decode();
    } catch {
      throw new PermanentError('MEDIA_REJECTED', `the text is not valid UTF-8 (near byte ${offset})`);
    }
  };
  return {
    push(chunk: Buffer): void {
      const nul = chunk.indexOf(0);
      if (nul !== -1) throw new PermanentError('MEDIA_REJECTED', `the text contains a NUL byte at ${offset + nul}`);
      decode(chunk);
      offset += chunk.length;
    },
    end(): void {
      // A multi-byte sequence cut off at the end of the file.
      decode();
    },
  };
}
