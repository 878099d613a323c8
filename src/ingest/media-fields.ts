import { z } from 'zod';
import { CLIENT_ID_PATTERN } from '../domain/ids.js';
import { MEDIA_KINDS } from '../domain/kinds.js';

/** The optional fields every way in accepts (multipart fields or JSON properties). */
export const mediaFieldsSchema = z.object({
  kind: z.enum(MEDIA_KINDS).optional(),
  name: z.string().max(255).optional(),
  description: z.string().max(4096).optional(),
  folderId: z.string().max(64).optional(),
  deviceId: z.string().regex(CLIENT_ID_PATTERN, 'letters, digits, _ and - (max 64)').optional(),
  ttlSeconds: z.coerce.number().int().positive().optional(),
  correlationId: z.string().max(256).optional(),
});
export type MediaFields = z.infer<typeof mediaFieldsSchema>;
