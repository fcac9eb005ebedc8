import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  chmod,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Command, CommanderError } from 'commander';
import { ensureInitialAdmin, updateHtpasswdFile } from '../../src/auth/htpasswd-file.ts';
import { parseHtpasswd } from '../../src/auth/htpasswd.ts';
import { verifyPassword } from '../../src/auth/verifiers.ts';
import { promptHidden, registerUserCommands } from '../../src/cli/user-command.ts';
import type { UserCommandIo } from '../../src/cli/user-command.ts';
import { silentLogger } from '../../src/log/logger.ts';

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const sha = '{SHA}q/eq1kOINtvlJqojGr3i0O73TUI=';

let root = '';
let counter = 0;
before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'ratchet-user-'));
});
after(() => rm(root, { recursive: true, force: true }));

async function freshDir(): Promise<string> {
  const dir = path.join(root, `case-${counter++}`);
  await mkdir(dir);
  return dir;
}

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `ratchet <args>` in-process, with the password lines as standard input. */
async function cli(args: string[], stdin = '', program = new Command('ratchet')): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const io: UserCommandIo = {
    stdin: Readable.from([Buffer.from(stdin, 'utf8')]),
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  };
  program.exitOverride().configureOutput({
    writeOut: (text) => (stdout += text),
    writeErr: (text) => (stderr += text),
  });
  registerUserCommands(program, io);
  try {
    await program.parseAsync(args, { from: 'user' });
    return { code: 0, stdout, stderr };
  } catch (err) {
    if (err instanceof CommanderError) return { code: err.exitCode, stdout, stderr };
    throw err;
  }
}

/** True when apache2-utils' htpasswd accepts the password for the user. */
async function htpasswdAccepts(file: string, user: string, password: string): Promise<boolean> {
  try {
    await run('htpasswd', ['-vb', file, user, password]);
    return true;
  } catch {
    return false;
  }
}

const driver = `
import { Command, CommanderError } from 'commander';
const { registerUserCommands } = await import(process.env.RATCHET_USER_COMMAND);
const program = new Command('ratchet').exitOverride();
registerUserCommands(program);
try {
  await program.parseAsync(process.argv.slice(1), { from: 'user' });
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  throw err;
}
`;
const driverEnv = {
  ...process.env,
  RATCHET_USER_COMMAND: new URL('../../src/cli/user-command.ts', import.meta.url).href,
  RATCHET_DRIVER: driver,
};

/** Runs the user command in a real node process, standard input from a pipe. */
function spawnCli(args: string[], stdin: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', driver, ...args], {
      cwd: repoRoot,
      env: driverEnv,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
    child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

/** Runs the user command on a real terminal (script(1) allocates a pty), typing after each prompt. */
function ptyCli(args: string[], answers: string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const command = `"${process.execPath}" --import tsx --input-type=module -e "$RATCHET_DRIVER" ${args.join(' ')}`;
    const child = spawn('script', ['-qec', command, '/dev/null'], { cwd: repoRoot, env: driverEnv });
    let output = '';
    let prompts = 0;
    child.stdout.on('data', (data: Buffer) => {
      output += data.toString();
      const seen = output.match(/password[^:\n]*: /gi)?.length ?? 0;
      while (prompts < seen && prompts < answers.length) child.stdin.write(`${answers[prompts++]}\r`);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: output, stderr: '' }));
  });
}

describe('ratchet user add', () => {
  it('creates the file 0600 with a $2y$ bcrypt hash that htpasswd verifies', async () => {
    const file = path.join(await freshDir(), '.htpasswd');
    const result = await cli(
      ['user', 'add', 'alice', '--cost', '4', '--htpasswd-file', file],
      'alice-secret\n',
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /added user "alice"/);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.match(await readFile(file, 'utf8'), /^alice:\$2y\$04\$[./A-Za-z0-9]{53}\n$/);
    assert.equal(await htpasswdAccepts(file, 'alice', 'alice-secret'), true);
    assert.equal(await htpasswdAccepts(file, 'alice', 'alice-secreT'), false);
  });

  it('keeps every other line, and takes a UTF-8 password from stdin (CRLF too)', async () => {
    const file = path.join(await freshDir(), '.htpasswd');
    const before = `# managed by hand\nbob:${sha}\nodd:$y$j9T$unsupported\n\ncarol:${sha}\n`;
    await writeFile(file, before, { mode: 0o600 });
    const result = await cli(
      ['user', 'add', 'jürgen', '--cost', '4', '--htpasswd-file', file],
      'pässwörd-日本\r\n',
    );
    assert.equal(result.code, 0, result.stderr);
    const after = await readFile(file, 'utf8');
    assert.ok(after.startsWith(before));
    assert.match(after.slice(before.length), /^jürgen:\$2y\$04\$.{53}\n$/);
    assert.equal(await htpasswdAccepts(file, 'jürgen', 'pässwörd-日本'), true);
    assert.equal(await verifyPassword('pässwörd-日本', parseHtpasswd(after).users.get('jürgen') ?? ''), true);
  });

  it('refuses an existing user (exit 1) and leaves the file alone', async () => {
    const file = path.join(await freshDir(), '.htpasswd');
    await writeFile(file, `bob:${sha}\n`, { mode: 0o600 });
    const result = await cli(['user', 'add', 'bob', '--htpasswd-file', file], 'x\n');
    assert.equal(result.code, 1);
    assert.match(result.stderr, /user "bob" already exists .*ratchet user passwd bob/);
    assert.equal(await readFile(file, 'utf8'), `bob:${sha}\n`);
  });

  it('refuses empty, over-long and missing passwords (exit 1)', async () => {
    const file = path.join(await freshDir(), '.htpasswd');
    for (const [stdin, message] of [
      ['\n', /the password is empty/],
      ['', /the password is empty/],
      [`${'x'.repeat(73)}\n`, /longer than 72 bytes/],
      [`${'é'.repeat(37)}\n`, /longer than 72 bytes/],
    ] as const) {
      const result = await cli(['user', 'add', 'alice', '--cost', '4', '--htpasswd-file', file], stdin);
      assert.equal(result.code, 1, JSON.stringify(stdin));
      assert.match(result.stderr, message);
    }
    await assert.rejects(stat(file), { code: 'ENOENT' });
  });

  it('puts the file in <path>/.htpasswd by default, creating the folder', async () => {
    const dir = path.join(await freshDir(), 'data');
    const result = await cli(['user', 'add', 'alice', '--cost', '4', '--path', dir], 'pw\n');
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await htpasswdAccepts(path.join(dir, '.htpasswd'), 'alice', 'pw'), true);
  });

  it('honours --path and --htpasswd-file given to a parent program that defines them too', async () => {
    const dir = await freshDir();
    const program = () =>
      new Command('ratchet')
        .option('--path <dir>', 'data', './data')
        .option('--htpasswd-file <file>', 'users');
    const viaPath = await cli(['user', 'add', 'alice', '--cost', '4', '--path', dir], 'pw\n', program());
    assert.equal(viaPath.code, 0, viaPath.stderr);
    assert.equal(await htpasswdAccepts(path.join(dir, '.htpasswd'), 'alice', 'pw'), true);
    const file = path.join(dir, 'users');
    const viaFile = await cli(
      ['--htpasswd-file', file, 'user', 'add', 'bob', '--cost', '4'],
      'pw\n',
      program(),
    );
    assert.equal(viaFile.code, 0, viaFile.stderr);
    assert.equal(await htpasswdAccepts(file, 'bob', 'pw'), true);
  });

  it('reports usage errors with exit code 2', async () => {
    const file = path.join(await freshDir(), '.htpasswd');
    const cases: [string[], RegExp][] = [
      [['user', 'add', 'a:b', '--htpasswd-file', file], /invalid user name "a:b"/],
      [['user', 'add', '.hidden', '--htpasswd-file', file], /starts with a dot/],
      [
        ['user', 'add', 'alice', '--cost', '3', '--htpasswd-file', file],
        /cost must be a whole number from 4 to 17/,
      ],
      [['user', 'add', 'alice', '--cost', 'ten', '--htpasswd-file', file], /cost/],
      [['user', 'add', '--htpasswd-file', file], /missing required argument/],
      [['user', 'add', 'alice', 'extra', '--htpasswd-file', file], /too many arguments/],
      [['user', 'add', 'alice', '--bogus'], /unknown option/],
      [['user', 'frobnicate'], /unknown command|Usage/],
      [['user'], /Usage/],
    ];
    for (const [args, message] of cases) {
      const result = await cli(args, 'pw\n');
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message, args.join(' '));
    }
    await assert.rejects(stat(file), { code: 'ENOENT' });
  });

  it('prints help with exit code 0', async () => {
    const result = await cli(['user', 'add', '--help']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /--password-stdin/);
    assert.match(result.stdout, /--htpasswd-file/);
  });
});

describe('ratchet user passwd', () => {
  it('replaces the hash in place, keeping other lines and the file mode', async () => {
    const file = path.join(await freshDir(), '.htpasswd');
    const added = await cli(['user', 'add', 'alice', '--cost', '4', '--htpasswd-file', file], 'old\n');
    assert.equal(added.code, 0, added.stderr);
    await writeFile(
      file,
      `# top\r\nbob:${sha}\r\n${(await readFile(file, 'utf8')).trimEnd()}\r\ncarol:${sha}\r\n`,
    );
    await chmod(file, 0o640);
    const result = await cli(['user', 'passwd', 'alice', '--cost', '5', '--htpasswd-file', file], 'new\n');
    assert.equal(result.code, 0, result.stderr);
    const text = await readFile(file, 'utf8');
    assert.match(text, /^# top\r\nbob:\{SHA\}\S+\r\nalice:\$2y\$05\$\S{53}\r\ncarol:\{SHA\}\S+\r\n$/);
    assert.equal((await stat(file)).mode & 0o777, 0o640);
    assert.equal(await htpasswdAccepts(file, 'alice', 'new'), true);
    assert.equal(await htpasswdAccepts(file, 'alice', 'old'), false);
    assert.equal(await htpasswdAccepts(file, 'bob', 'correct horse battery staple'), true);
  });

  it('replaces an unsupported hash too, and refuses an unknown user (exit 1)', async () => {
    const file = path.join(await freshDir(), '.htpasswd');
    await writeFile(file, 'odd:plaintext\n', { mode: 0o600 });
    assert.equal(
      (await cli(['user', 'passwd', 'odd', '--cost', '4', '--htpasswd-file', file], 'pw\n')).code,
      0,
    );
    assert.equal(await htpasswdAccepts(file, 'odd', 'pw'), true);
    const missing = await cli(['user', 'passwd', 'nobody', '--htpasswd-file', file], 'pw\n');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /there is no user "nobody"/);
  });

  it('writes through a symlink, keeping the link', async () => {
    const dir = await freshDir();
    const target = path.join(dir, 'real-htpasswd');
    await writeFile(target, `bob:${sha}\n`, { mode: 0o600 });
    const link = path.join(dir, '.htpasswd');
    await symlink('real-htpasswd', link);
    assert.equal(
      (await cli(['user', 'passwd', 'bob', '--cost', '4', '--htpasswd-file', link], 'pw\n')).code,
      0,
    );
    assert.equal(await readlink(link), 'real-htpasswd');
    assert.equal(await htpasswdAccepts(target, 'bob', 'pw'), true);
  });
});

describe('ratchet user remove and list', () => {
  it('removes a user and keeps the rest; an unknown user is exit 1', async () => {
    const dir = await freshDir();
    const file = path.join(dir, '.htpasswd');
    await writeFile(file, `# c\nalice:${sha}\nbob:${sha}\nalice:${sha}\n`, { mode: 0o600 });
    const removed = await cli(['user', 'remove', 'alice', '--htpasswd-file', file]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(await readFile(file, 'utf8'), `# c\nbob:${sha}\n`);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const again = await cli(['user', 'rm', 'alice', '--htpasswd-file', file]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /there is no user "alice"/);
    // No temporary file is left behind.
    assert.deepEqual(await readdir(dir), ['.htpasswd']);
  });

  it('lists usable users on stdout and skipped lines on stderr', async () => {
    const file = path.join(await freshDir(), '.htpasswd');
    await writeFile(file, `alice:${sha}\nodd:plaintext\nbob:${sha}\n`, { mode: 0o600 });
    const result = await cli(['user', 'list', '--htpasswd-file', file]);
    assert.equal(result.code, 0);
    assert.equal(result.stdout, 'alice\nbob\n');
    assert.match(result.stderr, /line 2: user "odd": unsupported hash scheme/);
  });

  it('lists nothing for a missing file, and fails (exit 1) on an unusable one', async () => {
    const dir = await freshDir();
    const missing = await cli(['user', 'list', '--htpasswd-file', path.join(dir, 'none')]);
    assert.equal(missing.code, 0);
    assert.equal(missing.stdout, '');
    assert.match(missing.stderr, /does not exist/);
    const broken = path.join(dir, 'broken');
    await writeFile(broken, 'no colon here\n');
    const result = await cli(['user', 'list', '--htpasswd-file', broken]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /line 1/);
    const add = await cli(['user', 'add', 'alice', '--htpasswd-file', broken], 'pw\n');
    assert.equal(add.code, 1);
    assert.equal(await readFile(broken, 'utf8'), 'no colon here\n');
  });
});

describe('the user command as a real process', () => {
  it('exits 0, 1 and 2 and reads the password from a pipe', async () => {
    const file = path.join(await freshDir(), '.htpasswd');
    const added = await spawnCli(
      ['user', 'add', 'alice', '--cost', '4', '--htpasswd-file', file],
      'piped-pw\n',
    );
    assert.equal(added.code, 0, added.stderr);
    assert.equal(await htpasswdAccepts(file, 'alice', 'piped-pw'), true);
    const exists = await spawnCli(['user', 'add', 'alice', '--htpasswd-file', file], 'x\n');
    assert.equal(exists.code, 1);
    assert.match(exists.stderr, /already exists/);
    const usage = await spawnCli(['user', 'add', 'bad/name', '--htpasswd-file', file], 'x\n');
    assert.equal(usage.code, 2);
    const listed = await spawnCli(['user', 'list', '--htpasswd-file', file], '');
    assert.equal(listed.stdout, 'alice\n');
  });

  it('prompts twice on a terminal without echoing the password', async () => {
    const file = path.join(await freshDir(), '.htpasswd');
    const result = await ptyCli(
      ['user', 'add', 'carol', '--cost', '4', '--htpasswd-file', file],
      ['tty-sëcret', 'tty-sëcret'],
    );
    assert.equal(result.code, 0, result.stdout);
    assert.match(result.stdout, /New password for carol: /);
    assert.match(result.stdout, /Retype the new password: /);
    assert.doesNotMatch(result.stdout, /tty-s/);
    assert.equal(await htpasswdAccepts(file, 'carol', 'tty-sëcret'), true);
  });

  it('refuses mismatched passwords on a terminal (exit 1)', async () => {
    const file = path.join(await freshDir(), '.htpasswd');
    const result = await ptyCli(['user', 'add', 'carol', '--htpasswd-file', file], ['one', 'two']);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /the passwords do not match/);
    await assert.rejects(stat(file), { code: 'ENOENT' });
  });
});

describe('promptHidden', () => {
  it('handles backspace, Ctrl-U, escape sequences and pasted text', async () => {
    let raw: boolean[] = [];
    let shown = '';
    const input = Object.assign(new Readable({ read: () => undefined }), {
      isTTY: true,
      setRawMode: (mode: boolean) => raw.push(mode),
    });
    const io: UserCommandIo = {
      stdin: input,
      stdout: { write: () => true },
      stderr: { write: (t: string) => (shown += t) },
    };
    const answer = promptHidden(io, 'Password: ');
    input.push('junk\u0015ab\u007fc\u001b[Ad日本\r');
    assert.equal(await answer, 'acd日本');
    assert.deepEqual(raw, [true, false]);
    assert.equal(shown, 'Password: \n');
    raw = [];
    const cancelled = promptHidden(io, 'Password: ');
    input.push('abc\u0003');
    await assert.rejects(cancelled, /cancelled/);
    assert.deepEqual(raw, [true, false]);
  });
});

describe('ensureInitialAdmin', () => {
  it('creates admin with a random password when there is no file, only once', async () => {
    const file = path.join(await freshDir(), 'data', '.htpasswd');
    const password = await ensureInitialAdmin(file, silentLogger(), { cost: 4 });
    assert.ok(password !== undefined && password.length >= 20);
    const text = await readFile(file, 'utf8');
    assert.doesNotMatch(text, new RegExp(password.replace(/[^\w]/g, '.')));
    assert.match(text, /^admin:\$2y\$04\$/);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal(await htpasswdAccepts(file, 'admin', password), true);
    assert.equal(await ensureInitialAdmin(file, silentLogger()), undefined);
    assert.equal(await readFile(file, 'utf8'), text);
  });

  it('uses cost 10 by default, and random passwords differ', async () => {
    const one = path.join(await freshDir(), '.htpasswd');
    const two = path.join(await freshDir(), '.htpasswd');
    const first = await ensureInitialAdmin(one, silentLogger());
    const second = await ensureInitialAdmin(two, silentLogger(), { cost: 4 });
    assert.notEqual(first, second);
    assert.match(await readFile(one, 'utf8'), /^admin:\$2y\$10\$/);
  });

  it('adds admin to a file without user lines, keeping its comments', async () => {
    const file = path.join(await freshDir(), '.htpasswd');
    await writeFile(file, '# nobody yet\n\n', { mode: 0o600 });
    const password = await ensureInitialAdmin(file, silentLogger(), { cost: 4 });
    assert.ok(password);
    assert.match(await readFile(file, 'utf8'), /^# nobody yet\n\nadmin:\$2y\$04\$\S{53}\n$/);
  });

  it('leaves a file with users alone, and refuses broken files or lines that yield no user', async () => {
    const file = path.join(await freshDir(), '.htpasswd');
    await writeFile(file, `bob:${sha}\n`);
    assert.equal(await ensureInitialAdmin(file, silentLogger()), undefined);
    await writeFile(file, 'broken\n');
    await assert.rejects(ensureInitialAdmin(file, silentLogger()), /line 1/);
    for (const text of ['admin:plaintext\n', '# team\nold:plaintext\n']) {
      await writeFile(file, text);
      await assert.rejects(
        ensureInitialAdmin(file, silentLogger()),
        new RegExp(
          `has user lines but no usable user.*line ${text.startsWith('#') ? 2 : 1}: user "\\w+": unsupported hash scheme`,
        ),
      );
      assert.equal(await readFile(file, 'utf8'), text);
    }
  });
});

describe('updateHtpasswdFile', () => {
  it('starts over when another writer changes the file meanwhile', async () => {
    const file = path.join(await freshDir(), '.htpasswd');
    await writeFile(file, `alice:${sha}\n`, { mode: 0o600 });
    let attempts = 0;
    await updateHtpasswdFile(file, async (state) => {
      attempts++;
      // The first time, someone else adds bob while we compute.
      if (attempts === 1) await writeFile(file, `${state.text}bob:${sha}\n`);
      return `${state.text}carol:${sha}\n`;
    });
    assert.equal(attempts, 2);
    assert.equal(await readFile(file, 'utf8'), `alice:${sha}\nbob:${sha}\ncarol:${sha}\n`);
  });
});
