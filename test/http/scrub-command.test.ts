/**
 * `ratchet scrub` on what goes wrong besides flipped bytes: an object the scrub may not read
 * (real permissions: the command runs as `nobody`), a repository whose data folder cannot be
 * listed (objects directly in data/), and a data folder that is not there. Each is reported and
 * the rest is still checked; the exit code says which.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { sha256 } from '../helpers/http.ts';
import { projectRoot, ratchetCommand, runRatchet, withTempDir } from '../helpers/ratchet-process.ts';

/** Writes an object file as restic's local layout has it; returns its path. */
async function object(dir: string, repo: string, type: string, data: Buffer): Promise<string> {
  const name = sha256(data);
  const folder = path.join(dir, repo, type, ...(type === 'data' ? [name.slice(0, 2)] : []));
  await mkdir(folder, { recursive: true });
  await mkdir(path.join(dir, repo, 'keys'), { recursive: true });
  const file = path.join(folder, name);
  await writeFile(file, data, { mode: 0o644 });
  return file;
}

describe('ratchet scrub, when objects or folders cannot be read', () => {
  it('reports an unreadable object, checks the others, and exits 2 (not checked is an error)', async () => {
    await withTempDir(async (dir) => {
      await chmod(dir, 0o755);
      await object(dir, 'a', 'data', randomBytes(300));
      const secret = await object(dir, 'a', 'data', randomBytes(300));
      await object(dir, 'b', 'index', randomBytes(300));
      await chmod(secret, 0o600);
      const result = spawnSync(ratchetCommand(), ['scrub', '--path', dir], {
        cwd: projectRoot,
        uid: 65534,
        gid: 65534,
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(result.status, 2, result.stderr);
      assert.match(
        result.stdout,
        new RegExp(`^unreadable: /a/ data/${path.basename(secret)} \\(EACCES`, 'm'),
      );
      assert.equal(result.stdout.trim().split('\n').length, 1, result.stdout);
      assert.match(result.stderr, /scrub: 3 objects, .*: 0 corrupt, 1 unreadable/);
    });
  });

  it('says which folder it could not list, checks the other repositories, and exits 2', async () => {
    await withTempDir(async (dir) => {
      await object(dir, 'a', 'data', randomBytes(300));
      const flat = randomBytes(200);
      await object(dir, 'b', 'snapshots', randomBytes(100));
      // The nginx recipe's layout: an object directly in data/.
      await mkdir(path.join(dir, 'b', 'data'));
      await writeFile(path.join(dir, 'b', 'data', sha256(flat)), flat);
      const result = await runRatchet(['scrub', '--path', dir]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(
        result.stderr,
        /error: cannot list \/b\/ data\/: this repository has data objects directly in data\//,
      );
      assert.match(result.stderr, /scrub: 2 objects/);
      assert.match(result.stderr, /error: 1 folders could not be listed/);
    });
  });

  it('refuses a data folder that is not there instead of calling it sound', async () => {
    await withTempDir(async (dir) => {
      const result = await runRatchet(['scrub', '--path', path.join(dir, 'typo')]);
      assert.equal(result.code, 2);
      assert.match(result.stderr, /--path: .*typo is not a folder/);
      assert.doesNotMatch(result.stderr, /all sound/);
    });
  });
});
