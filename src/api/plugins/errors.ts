import type { FastifyError, FastifyInstance } from 'fastify';
import { AppError, ERROR_STATUS, type ErrorCode } from '../../domain/errors.js';
import { isDatabaseDown } from '../../db/errors.js';

/** The error envelope of API.md: `{success:false, error:{code,message,request_id,details?}}`. */
export function envelope(code: ErrorCode, message: string, requestId: string, details?: unknown) {
  return { success: false as const, error: { code, message, request_id: requestId, ...(details === undefined ? {} : { details }) } };
}

export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const fe = err as FastifyError & { code?: string };
  if (fe?.validation) {
    const fields: Record<string, string> = {};
    for (const v of fe.validation) fields[(v.instancePath || v.params?.missingProperty || '_').toString().replace(/^\//, '')] = v.message ?? 'invalid';
    return new AppError('VALIDATION_FAILED', fe.message, { fields });
  }
  switch (fe?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
    case 'FST_PARTS_LIMIT':
      return new AppError('FILE_TOO_LARGE', 'the request body is larger than allowed');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('VALIDATION_FAILED', 'send multipart/form-data or application/json', { fields: { 'content-type': 'unsupported' } });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError('VALIDATION_FAILED', fe.message, { fields: { body: 'malformed' } });
    case 'FST_FILES_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new AppError('VALIDATION_FAILED', fe.message);
  }
  if (isDatabaseDown(err)) return new AppError('QUEUE_UNAVAILABLE', 'the database is unavailable; nothing was kept, retry shortly');
  if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const code = (Object.entries(ERROR_STATUS).find(([, s]) => s === fe.statusCode)?.[0] ?? 'VALIDATION_FAILED') as ErrorCode;
    return new AppError(code, fe.message);
  }
  return new AppError('INTERNAL', 'internal error');
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    const e = toAppError(err);
    const status = (e as AppError & { status: number }).status ?? ERROR_STATUS[e.code];
    if (status >= 500) req.log.error({ err, code: e.code }, 'request failed');
    else req.log.info({ code: e.code, reason: e.message }, 'request refused');
    if (e.code === 'RATE_LIMITED' && !reply.getHeader('retry-after')) reply.header('retry-after', '1');
    void reply.code(status).send(envelope(e.code, e.message, req.id, e.details));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(envelope('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`, req.id));
  });
}
