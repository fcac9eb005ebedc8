#!/usr/bin/env node
/**
 * Builds dist/ (npm run build) only when a source is newer than the last build, so that
 * `npm start` starts in about a second. The last build is dist/.tsbuildinfo (written by every
 * tsc build); the sources are src/, package.json and the tsconfig files. A packed install has no
 * src/ and is never rebuilt here.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const stamp = path.join(root, 'dist', '.tsbuildinfo');
const entry = path.join(root, 'dist', 'cli', 'main.js');

/** The newest modification time below `dir` (files only), 0 when it does not exist. */
function newest(dir) {
  if (!existsSync(dir)) return 0;
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    latest = Math.max(latest, statSync(path.join(entry.parentPath ?? entry.path, entry.name)).mtimeMs);
  }
  return latest;
}

const sources = path.join(root, 'src');
if (!existsSync(sources)) process.exit(existsSync(entry) ? 0 : 1);
const inputs = ['package.json', 'tsconfig.json', 'tsconfig.build.json']
  .map((file) => path.join(root, file))
  .filter((file) => existsSync(file))
  .map((file) => statSync(file).mtimeMs);
const built = existsSync(stamp) && existsSync(entry) ? statSync(stamp).mtimeMs : 0;
if (Math.max(newest(sources), ...inputs) <= built) process.exit(0);
const result = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
// An incremental build that found nothing to do leaves the stamp as it was: mark this check.
if (result.status === 0) utimesSync(stamp, new Date(), new Date());
process.exit(result.status ?? 1);
