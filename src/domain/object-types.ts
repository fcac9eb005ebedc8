/** restic's object types and object names: the vocabulary every layer shares. */

export const objectTypes = ['data', 'keys', 'locks', 'snapshots', 'index'] as const;
export type ObjectType = (typeof objectTypes)[number];

const objectNamePattern = /^[0-9a-f]{64}$/;

/** True when the text is a valid object name: 64 lowercase hex characters (its SHA-256). */
export function isObjectName(text: string): boolean {
  return text.length === 64 && objectNamePattern.test(text);
}

/** True when the text names one of the five object types. */
export function isObjectType(text: string): text is ObjectType {
  return (objectTypes as readonly string[]).includes(text);
}
