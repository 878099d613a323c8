import { z } from 'zod';
import { AppError } from '../domain/errors.js';

/** Parses with zod; a failure is 400 VALIDATION_FAILED whose `details` names each field. */
export function parseOr400<T extends z.ZodType>(schema: T, data: unknown): z.infer<T> {
  const r = schema.safeParse(data);
  if (r.success) return r.data;
  const fields: Record<string, string> = {};
  for (const issue of r.error.issues) {
    const key = issue.path.length ? issue.path.join('.') : '_';
    fields[key] ??= issue.message;
  }
  throw new AppError('VALIDATION_FAILED', `invalid ${Object.keys(fields).join(', ')}`, { fields });
}

/** Converts a zod schema to the JSON schema the OpenAPI document shows. */
export function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const s = z.toJSONSchema(schema, { target: 'openapi-3.0', unrepresentable: 'any', io: 'input' }) as Record<string, unknown>;
  delete s.$schema;
  return s;
}
