/**
 * Small state files (the scrub's position, the size history): read as JSON, anything missing or
 * unreadable being undefined (a fresh start), and replaced whole through a temporary file and a
 * rename, so a crash leaves the old file or the new one, never half of one.
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';

/** The file's parsed JSON; undefined when it is missing or not JSON. */
export async function readJsonFile(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** Replaces the file with the value as JSON (owner-only); a failed write (a full disk) leaves no temporary file. */
export async function writeJsonFile(file: string, value: unknown): Promise<void> {
  const temp = `${file}.tmp`;
  try {
    await writeFile(temp, JSON.stringify(value), { mode: 0o600 });
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw err;
  }
}
