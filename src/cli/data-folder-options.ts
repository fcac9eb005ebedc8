/**
 * The data folder and repository options of the commands that work on the folder directly
 * (`scrub`, `trash`), beside a running server or without one.
 */
import { stat } from 'node:fs/promises';
import { UsageError } from '../config/options.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import { parseRepoText } from '../protocol/route.ts';
import { FsStorage } from '../storage/fs/fs-storage.ts';

/**
 * The data folder's storage, for reading and for the trash: no init() (no lock, no sweep), as a
 * server may be running on it. A mistyped --path is refused rather than read as an empty folder.
 */
export async function openDataFolder(dir: string): Promise<FsStorage> {
  if (!(await stat(dir).catch(() => undefined))?.isDirectory())
    throw new UsageError(`--path: ${dir} is not a folder`);
  return new FsStorage({ root: dir });
}

/** A --repo value (`/host1/`, `host1`, `/` for the root) as a repository path. */
export function repoOption(text: string): RepoPath {
  const repo = parseRepoText(text);
  if (repo === undefined) throw new UsageError(`--repo: "${text}" is no repository path`);
  return repo;
}
