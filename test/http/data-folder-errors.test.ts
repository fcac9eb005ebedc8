/**
 * A data folder the server cannot use stops the start with a message that names the folder and
 * what to do, not the errno text of whichever file was touched first: real permissions (the
 * server started as `nobody`), a real read-only mount, and a file in place of the folder.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { projectRoot, ratchetCommand, runRatchet, withTempDir } from '../helpers/ratchet-process.ts';
import { withTmpfs } from './operations-helpers.ts';

const serve = (dataDir: string): string[] => ['--path', dataDir, '--no-auth', '--listen', '127.0.0.1:0'];
const nobody = 65534;

describe('an unusable data folder', () => {
  it('that this user may not write: names the folder, the user and the remedy', async () => {
    await withTempDir(async (dir) => {
      await chmod(dir, 0o755);
      const dataDir = path.join(dir, 'data');
      await mkdir(dataDir, { mode: 0o700 });
      for (const target of [dataDir, path.join(dataDir, 'not-yet')]) {
        const result = spawnSync(ratchetCommand(), serve(target), {
          cwd: projectRoot,
          uid: nobody,
          gid: nobody,
          encoding: 'utf8',
          timeout: 30_000,
        });
        assert.equal(result.status, 1, result.stderr);
        assert.equal(
          result.stderr.trim(),
          `ratchet: the data folder ${target} cannot be created or written by this user (uid ${nobody}): give that user write access to it (chown -R) or choose another --path`,
        );
      }
    });
  });

  it('on a read-only file system: says so, for a missing folder', async () => {
    await withTmpfs('1m', async (mount) => {
      execFileSync('mount', ['-o', 'remount,ro', mount]);
      const dataDir = path.join(mount, 'data');
      const result = await runRatchet(serve(dataDir));
      assert.equal(result.code, 1);
      assert.equal(
        result.stderr.trim(),
        `ratchet: the data folder ${dataDir} is on a read-only file system: remount it read-write or choose another --path`,
      );
    });
  });

  it('that is a file: says so', async () => {
    await withTempDir(async (dir) => {
      const file = path.join(dir, 'data');
      await writeFile(file, 'x');
      const result = await runRatchet(serve(file));
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        /the data folder .*\/data is not a folder \(or a part of its path is a file\)/,
      );
    });
  });
});
