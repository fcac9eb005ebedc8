/**
 * The web view: `/.ratchet/ui/` (a server-rendered table of repositories: size, objects, newest
 * snapshot and its age, fresh or stale, quota, trash, refused changes) and `/.ratchet/api/repos`
 * (the same rows as JSON). Each caller sees the repositories their grants cover, capped by the
 * listener's ceiling: a host sees its own. The page is for users with the read-only or admin role
 * somewhere (the people who look after backups); the API for every authenticated user, so a host
 * can check its own freshness. Everything is served by Ratchet itself under a strict
 * Content-Security-Policy: no inline script, no other origin. The table works without
 * JavaScript; the script only sorts and filters it.
 */
import { capRole } from '../access/policy.ts';
import type { Role } from '../access/policy.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import { repoFromKey } from '../domain/repo-path.ts';
import { RatchetError } from '../errors.ts';
import type { HttpRequest } from '../util/http-types.ts';
import type { RepoReportSources, RepoRow } from '../view/repo-report.ts';
import { repoReport } from '../view/repo-report.ts';
import type { ClientAddress } from './client-address.ts';
import type { AccessOptions } from './endpoint-access.ts';
import { webIcon, webScript, webStyle } from './web-assets.ts';
import { renderPage } from './web-page.ts';

import { uiPath } from './web-page.ts';
export const apiReposPath = '/.ratchet/api/repos';

export interface WebViewOptions extends AccessOptions {
  readonly view: RepoReportSources;
}

/** An answer: the body and its headers. */
export interface WebAnswer {
  readonly contentType: string;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

// Only this server's own script and style; no frames, forms, plugins or base changes.
const pageSecurity = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

const assets: Readonly<Record<string, WebAnswer>> = {
  [`${uiPath}app.js`]: {
    contentType: 'text/javascript; charset=utf-8',
    body: webScript,
    headers: pageSecurity,
  },
  [`${uiPath}style.css`]: { contentType: 'text/css; charset=utf-8', body: webStyle, headers: pageSecurity },
  [`${uiPath}icon.svg`]: { contentType: 'image/svg+xml', body: webIcon, headers: pageSecurity },
};

/** True for the paths this module answers. */
export function isWebViewPath(path: string): boolean {
  return path === apiReposPath || path === '/.ratchet/ui' || path.startsWith(uiPath);
}

/** Answers a web view request (GET or HEAD; the caller checked the method). */
export async function serveWebView(
  path: string,
  req: HttpRequest,
  options: WebViewOptions,
  client: ClientAddress,
  onUser: (user: string | undefined) => void,
): Promise<WebAnswer> {
  // The script and style hold no data: anyone may have them.
  const asset = assets[path];
  if (asset !== undefined) return asset;
  if (path !== apiReposPath && path !== uiPath && path !== '/.ratchet/ui')
    throw new RatchetError('NOT_FOUND', 'not found');
  const user = await options.identify(req, client);
  onUser(user);
  if (options.limits.active) await options.limits.admit(user);
  const roleOn = (repo: RepoPath): Role | undefined => {
    const role = options.access.roleFor(user, repo);
    return role === undefined ? undefined : capRole(role, options.maxRole);
  };
  const rows = repoReport(options.view, (repo) => roleOn(repo) !== undefined);
  if (rows === undefined)
    throw new RatchetError('UNAVAILABLE', 'the repositories are still being counted; try again shortly', {
      headers: { 'Retry-After': '5' },
    });
  if (path === apiReposPath) {
    // Absent values as null, so that every row has every field.
    const json = JSON.stringify({ repos: rows }, (_key, value: unknown) => value ?? null);
    return { contentType: 'application/json; charset=utf-8', body: `${json}\n` };
  }
  if (!looksAfterBackups(roleOn, rows))
    throw new RatchetError('FORBIDDEN', 'the web view is for users with the read-only or admin role');
  return { contentType: 'text/html; charset=utf-8', body: renderPage(rows, user), headers: pageSecurity };
}

/** True when the user has the read-only or admin role on the root or on a repository they see. */
function looksAfterBackups(roleOn: (repo: RepoPath) => Role | undefined, rows: readonly RepoRow[]): boolean {
  const watches = (role: Role | undefined): boolean => role === 'read-only' || role === 'admin';
  return watches(roleOn([])) || rows.some((row) => watches(roleOn(repoFromKey(row.repo.slice(1, -1)))));
}
