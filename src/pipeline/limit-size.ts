import { Transform, type TransformCallback } from 'node:stream';
import { AppError } from '../domain/errors.js';

/**
 * Passes bytes through until `maxBytes`, then fails with FILE_TOO_LARGE: the cap is enforced while
 * streaming, whatever a Content-Length claimed, so a truncated file is never mistaken for a whole one.
 */
export class SizeLimiter extends Transform {
  bytes = 0;
  constructor(
    readonly maxBytes: number,
    private readonly what = 'the file',
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      cb(new AppError('FILE_TOO_LARGE', `${this.what} is larger than the limit of ${this.maxBytes} bytes`, { maxBytes: this.maxBytes }));
      return;
    }
    cb(null, chunk);
  }
}
