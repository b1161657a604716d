/** JSON schema pieces every route module shares. */

/** Ids in paths: what newId() makes (base64url), bounded. */
export const ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
export const ID_RE = new RegExp(ID_PATTERN);

export const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: ID_PATTERN } },
} as const;

export const errorSchema = {
  type: 'object',
  properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } } },
} as const;
