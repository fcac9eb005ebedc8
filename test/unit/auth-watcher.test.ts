import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basicAuthorization } from '../../src/auth/basic-credentials.ts';
import { startHtpasswdAuth } from '../../src/auth/htpasswd-auth.ts';
import { hashPassword } from '../../src/auth/htpasswd-file.ts';
import { HtpasswdWatcher } from '../../src/auth/htpasswd-watcher.ts';
import type { HtpasswdWatcherOptions } from '../../src/auth/htpasswd-watcher.ts';
import { RatchetError } from '../../src/errors.ts';
import { capturingLogger } from '../helpers/logger.ts';
import type { LogLine } from '../helpers/logger.ts';
import { sleep, waitFor } from '../helpers/wait.ts';

let root = '';
let counter = 0;
const sha = '{SHA}q/eq1kOINtvlJqojGr3i0O73TUI='; // correct horse battery staple
const closers: (() => unknown)[] = [];

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'ratchet-watcher-'));
});
after(async () => {
  for (const close of closers) await close();
  await rm(root, { recursive: true, force: true });
});

async function freshFile(content?: string): Promise<string> {
  const dir = path.join(root, `case-${counter++}`);
  await mkdir(dir);
  const file = path.join(dir, '.htpasswd');
  if (content !== undefined) await writeFile(file, content, { mode: 0o600 });
  return file;
}

async function replaceByRename(file: string, content: string): Promise<void> {
  const temp = `${file}.new`;
  await writeFile(temp, content, { mode: 0o600 });
  await rename(temp, file);
}

async function start(
  file: string,
  options: Partial<HtpasswdWatcherOptions> = {},
): Promise<{ watcher: HtpasswdWatcher; users: () => string[]; loads: () => number; lines: LogLine[] }> {
  const { logger, lines } = capturingLogger();
  let current: ReadonlyMap<string, string> = new Map();
  let loads = 0;
  const watcher = await HtpasswdWatcher.start({
    file,
    logger,
    onUsers: (users) => {
      current = users;
      loads++;
    },
    debounceMs: 20,
    pollIntervalMs: 0,
    ...options,
  });
  closers.push(() => watcher.close());
  return { watcher, users: () => [...current.keys()], loads: () => loads, lines };
}

describe('HtpasswdWatcher', () => {
  it('loads the file at start', async () => {
    const file = await freshFile(`alice:${sha}\nbob:${sha}\n`);
    const { users } = await start(file);
    assert.deepEqual(users(), ['alice', 'bob']);
  });

  it('reloads when the file is replaced by a rename (folder watch)', async () => {
    const file = await freshFile(`alice:${sha}\n`);
    const { users } = await start(file);
    await replaceByRename(file, `alice:${sha}\ncarol:${sha}\n`);
    await waitFor(() => users().includes('carol'), 'carol after the first rename');
    // And again: a watch on the old inode would have gone quiet by now.
    await replaceByRename(file, `dave:${sha}\n`);
    await waitFor(() => users().join() === 'dave', 'dave after the second rename');
  });

  it('reloads when the file is rewritten in place (folder watch)', async () => {
    const file = await freshFile(`alice:${sha}\n`);
    const { users } = await start(file);
    await writeFile(file, `alice:${sha}\nerin:${sha}\n`);
    await waitFor(() => users().includes('erin'), 'erin');
  });

  it('notices a rename-replace by polling alone', async () => {
    const file = await freshFile(`alice:${sha}\n`);
    const { users } = await start(file, { watch: false, pollIntervalMs: 30 });
    await replaceByRename(file, `frank:${sha}\n`);
    await waitFor(() => users().join() === 'frank', 'frank');
  });

  it('reloads on demand (SIGHUP) and reports the outcome', async () => {
    const file = await freshFile(`alice:${sha}\n`);
    const { watcher, users, loads } = await start(file, { watch: false, pollIntervalMs: 0 });
    await writeFile(file, `alice:${sha}\ngrace:${sha}\n`);
    await sleep(100);
    assert.deepEqual(users(), ['alice']);
    const outcome = await watcher.reload();
    assert.deepEqual(outcome, { status: 'loaded', users: 2, warnings: [] });
    assert.deepEqual(users(), ['alice', 'grace']);
    assert.deepEqual(await watcher.reload(), { status: 'unchanged', users: 2 });
    assert.equal(loads(), 2);
  });

  it('keeps the previous users when the file becomes unparsable or unreadable, and logs why', async () => {
    const file = await freshFile(`alice:${sha}\n`);
    const { watcher, users, lines } = await start(file, { watch: false });
    await writeFile(file, `alice:${sha}\nthis line has no colon\n`);
    const broken = await watcher.reload();
    assert.equal(broken.status, 'failed');
    assert.deepEqual(users(), ['alice']);
    const error = lines.find((l) => l.level === 50);
    assert.match(
      error?.msg ?? '',
      /the htpasswd file \/.+ could not be loaded; keeping the previous 1 users/,
    );
    assert.match(error?.error ?? '', /line 2/);

    await writeFile(file, Buffer.from([0x61, 0x3a, 0xff, 0x0a]));
    assert.equal((await watcher.reload()).status, 'failed');
    // User lines of which none is usable: a mistake, not "no users".
    await writeFile(file, `alice:plaintext\nbob:$2y$99$x\n`);
    const unusable = await watcher.reload();
    assert.equal(unusable.status, 'failed');
    assert.match(
      unusable.status === 'failed' ? unusable.error : '',
      /has user lines but no usable user.*line 1: user "alice": unsupported hash scheme; .*line 2/,
    );
    assert.deepEqual(users(), ['alice']);

    await rm(file);
    await mkdir(file);
    assert.deepEqual(await watcher.reload(), { status: 'failed', error: 'not a regular file' });
    assert.deepEqual(users(), ['alice']);

    await rm(file, { recursive: true });
    await writeFile(file, `alice:${sha}\nheidi:${sha}\n`);
    assert.equal((await watcher.reload()).status, 'loaded');
    assert.deepEqual(users(), ['alice', 'heidi']);
  });

  it('a broken file written while watched keeps the users too', async () => {
    const file = await freshFile(`alice:${sha}\n`);
    const { users, lines } = await start(file);
    await replaceByRename(file, 'garbage\n');
    await waitFor(() => lines.some((l) => l.level === 50), 'the error log');
    assert.deepEqual(users(), ['alice']);
  });

  it('treats a missing file as no users, with a warning, and loads it once it appears', async () => {
    const file = await freshFile();
    const { users, lines, watcher } = await start(file);
    assert.deepEqual(users(), []);
    assert.ok(lines.some((l) => l.level === 40 && /does not exist/.test(l.msg)));
    await replaceByRename(file, `ivan:${sha}\n`);
    await waitFor(() => users().join() === 'ivan', 'ivan');
    await rm(file);
    assert.deepEqual(await watcher.reload(), { status: 'missing' });
    assert.deepEqual(users(), []);
  });

  it('logs skipped lines with their line numbers, and a world-readable file', async () => {
    const file = await freshFile(`alice:${sha}\n.bad:${sha}\nbob:plaintext\n`);
    await chmod(file, 0o644);
    const { users, lines } = await start(file);
    assert.deepEqual(users(), ['alice']);
    const warnings = lines.filter((l) => l.level === 40);
    assert.deepEqual(
      warnings.filter((l) => l.line !== undefined).map((l) => l.line),
      [2, 3],
    );
    // Each names the file, so that an operator with several servers knows which one to fix.
    assert.ok(
      warnings.some(
        (l) => l.msg === `${file} line 3: user "bob": unsupported hash scheme; the line is skipped`,
      ),
    );
    assert.ok(warnings.some((l) => l.msg === `${file} is readable by every local user; chmod 600 it`));
  });

  it('refuses to start on a file that exists but cannot be used', async () => {
    const file = await freshFile('not an htpasswd file\n');
    await assert.rejects(start(file), /cannot load the htpasswd file .*line 1/);
  });

  it('shares one reload among concurrent requests', async () => {
    const file = await freshFile(`alice:${sha}\n`);
    const { watcher, loads } = await start(file, { watch: false });
    await writeFile(file, `alice:${sha}\njudy:${sha}\n`);
    const outcomes = await Promise.all([watcher.reload(), watcher.reload(), watcher.reload()]);
    // The first call loads the change; the two made meanwhile share one more reload, which finds
    // the file as the first left it.
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['loaded', 'unchanged', 'unchanged'],
    );
    assert.equal(loads(), 2);
  });
});

describe('startHtpasswdAuth', () => {
  it('authenticates against the file and follows its changes', async () => {
    const file = await freshFile(`alice:${await hashPassword('first', 4)}\n`);
    const { logger } = capturingLogger();
    const auth = await startHtpasswdAuth({ file, logger, debounceMs: 20, pollIntervalMs: 0 });
    closers.push(() => auth.close());
    assert.equal(await auth.authenticate(basicAuthorization('alice', 'first'), '192.0.2.1'), 'alice');
    await replaceByRename(file, `alice:${await hashPassword('second', 4)}\n`);
    await waitFor(() => auth.stats().cachedCredentials === 0, 'the cache to drop alice');
    await assert.rejects(
      auth.authenticate(basicAuthorization('alice', 'first'), '192.0.2.1'),
      (err: unknown) => err instanceof RatchetError && err.code === 'UNAUTHORIZED',
    );
    assert.equal(await auth.authenticate(basicAuthorization('alice', 'second'), '192.0.2.1'), 'alice');
    assert.equal((await auth.reload()).status, 'unchanged');
    assert.equal(auth.stats().users, 1);
  });

  it('fails to start on an unusable file', async () => {
    const file = await freshFile('garbage\n');
    const { logger } = capturingLogger();
    await assert.rejects(startHtpasswdAuth({ file, logger }), /cannot load/);
  });
});
