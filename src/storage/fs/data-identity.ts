/**
 * The identity of a data folder and its start count, kept in `<path>/.ratchet/state.json`:
 * a random id made on the first start, and a generation bumped (durably) on every start. With
 * the root folder's device and inode, they tell whether a saved index was written for this very
 * folder by the previous run (index-file.ts): an index copied from another folder carries
 * another id or inode, and an older index of this folder an older generation.
 */
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { replaceFileDurably } from './durable.ts';
import { isMissing } from './fs-errors.ts';

/** Which data folder, and which run of the server on it. */
export interface DataIdentity {
  /** Random id made on the first start. */
  readonly id: string;
  /** The root folder's device and inode (decimal). */
  readonly dev: string;
  readonly ino: string;
  /** Bumped on every start; a saved index is used only if it carries the current one. */
  readonly generation: number;
}

const fileName = 'state.json';

/**
 * The identity recorded in stateDir for the folder at root, and why a new one was made (first
 * start, unreadable file) when it was; the generation is not advanced yet.
 */
export async function readDataIdentity(
  stateDir: string,
  root: string,
): Promise<{ identity: DataIdentity; problem?: string }> {
  const info = await stat(root, { bigint: true });
  const place = { dev: info.dev.toString(), ino: info.ino.toString() };
  let text: string;
  try {
    text = await readFile(path.join(stateDir, fileName), 'utf8');
  } catch (err) {
    if (!isMissing(err)) throw err;
    return { identity: fresh(place) };
  }
  try {
    const saved = JSON.parse(text) as unknown;
    if (typeof saved === 'object' && saved !== null && 'id' in saved && 'generation' in saved) {
      const { id, generation } = saved;
      if (typeof id === 'string' && /^[0-9a-f]{32}$/.test(id) && Number.isSafeInteger(generation)) {
        return { identity: { id, generation: generation as number, ...place } };
      }
    }
  } catch {
    // Reported below.
  }
  return { identity: fresh(place), problem: `${fileName} is damaged; the data folder gets a new id` };
}

function fresh(place: { dev: string; ino: string }): DataIdentity {
  return { id: randomBytes(16).toString('hex'), generation: 0, ...place };
}

/** Records the next generation durably and returns the identity carrying it. */
export async function advanceGeneration(
  stateDir: string,
  identity: DataIdentity,
  fileMode: number,
): Promise<DataIdentity> {
  const next = { ...identity, generation: identity.generation + 1 };
  const text = `${JSON.stringify({ id: next.id, generation: next.generation })}\n`;
  await replaceFileDurably(path.join(stateDir, fileName), fileMode, (write) => write(text));
  return next;
}
