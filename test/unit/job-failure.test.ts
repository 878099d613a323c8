/** decideFailure, the one place that makes a job's failure final or leaves it to retry, as a table. */
import { UnrecoverableError } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { AppError, PermanentError, StorageError } from '../../src/domain/errors.js';
import { decideFailure } from '../../src/jobs/failure.js';

const dbDown = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

describe('decideFailure', () => {
  it.each([
    ['a content rejection', new PermanentError('MEDIA_REJECTED', 'bad'), false, { kind: 'permanent', final: true }],
    ['an AppError with a content code', new AppError('VALIDATION_FAILED', 'no such inbox'), false, { kind: 'permanent', final: true }],
    ['an unreadable payload', new UnrecoverableError('invalid ingest payload'), false, { kind: 'permanent', final: true }],
    ['storage down, last attempt', new StorageError('s3 answered 503'), true, { kind: 'outage', final: false }],
    ['PostgreSQL down, last attempt', dbDown, true, { kind: 'outage', final: false }],
    ['Redis down, last attempt', new AppError('QUEUE_UNAVAILABLE', 'redis'), true, { kind: 'outage', final: false }],
    ['any other fault, attempts left', new Error('ffmpeg crashed'), false, { kind: 'transient', final: false }],
    ['any other fault, last attempt', new Error('ffmpeg crashed'), true, { kind: 'transient', final: true }],
  ])('%s', (_, err, finalAttempt, expected) => {
    expect(decideFailure(err, { finalAttempt })).toEqual(expected);
  });
});
