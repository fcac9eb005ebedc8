/** References to stored objects, and what a listing says of each. */
import type { ObjectType } from './object-types.ts';
import type { RepoPath } from './repo-path.ts';

/** One stored file of a repository: its config, or an object of a type. */
export type ObjectRef =
  | { readonly repo: RepoPath; readonly type: 'config' }
  | { readonly repo: RepoPath; readonly type: ObjectType; readonly name: string };

/** One object in a listing. */
export interface ObjectEntry {
  readonly name: string;
  readonly size: number;
  /**
   * When the object was stored (ms since the epoch), where the backend knows it without extra
   * work: always for snapshots (the time of the last backup), optional for other types.
   */
  readonly modifiedMs?: number;
}
