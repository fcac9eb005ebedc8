/** Which data folders count as remote (src/storage/fs/filesystem-type.ts). */
import assert from 'node:assert/strict';
import { statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { remoteFilesystemName, remoteFilesystemOf } from '../../src/storage/fs/filesystem-type.ts';

describe('remote filesystem detection', () => {
  it('names network and FUSE filesystems by their statfs type, signed or not', () => {
    assert.equal(remoteFilesystemName(0x6969), 'nfs');
    assert.equal(remoteFilesystemName(0x65735546), 'fuse');
    assert.equal(remoteFilesystemName(0xff534d42 | 0), 'cifs');
    assert.equal(remoteFilesystemName(0xef53), undefined, 'ext4');
    assert.equal(remoteFilesystemName(0x01021994), undefined, 'tmpfs');
  });

  it('looks at the nearest existing parent of a folder that does not exist yet', async () => {
    const local = os.tmpdir();
    assert.equal(remoteFilesystemName((await statfs(local)).type), undefined, 'this test needs a local /tmp');
    assert.equal(await remoteFilesystemOf(path.join(local, 'not', 'there', 'yet')), undefined);
  });
});
