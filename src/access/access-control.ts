/** The live access rules: grants that a reload can swap while requests are being served. */
import { GrantTable } from './grants.ts';
import type { Grant } from './grants.ts';
import type { Role } from './policy.ts';
import type { RepoPath } from '../domain/repo-path.ts';

export class AccessControl {
  private table: GrantTable;

  constructor(grants: readonly Grant[]) {
    this.table = new GrantTable(grants);
  }

  /** Replaces the grants; requests already past their access decision are not affected. */
  update(grants: readonly Grant[]): void {
    this.table = new GrantTable(grants);
  }

  /** The user a `{user}` grant gives the repository to, if any (GrantTable.ownerOf). */
  ownerOf(repo: RepoPath): string | undefined {
    return this.table.ownerOf(repo);
  }

  /** The user's role on the repository; anonymous (no-auth) requests get admin. */
  roleFor(user: string | undefined, repo: RepoPath): Role | undefined {
    return user === undefined ? 'admin' : this.table.roleFor(user, repo);
  }
}
