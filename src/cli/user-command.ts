/**
 * `ratchet user add|passwd|remove|list`: manages the htpasswd file without apache2-utils. New
 * passwords are hashed with bcrypt (`$2y$`, as `htpasswd -B` writes) and the file is replaced
 * atomically, keeping its other lines, mode and owner.
 *
 * Exit codes travel in the thrown CommanderError: 0 for help, 2 for usage errors (bad option,
 * invalid user name), 1 for everything else (file errors, user exists or missing, password
 * problems). The caller parses with `parseAsync` and exits with `err.exitCode`.
 */
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import { CommanderError, InvalidArgumentError, Option } from 'commander';
import type { Command } from 'commander';
import {
  defaultBcryptCost,
  hashPassword,
  hasUserLine,
  minBcryptCost,
  readHtpasswdFile,
  removeUserLines,
  setUserHash,
  updateHtpasswdFile,
} from '../auth/htpasswd-file.ts';
import { userNameProblem } from '../auth/htpasswd.ts';
import { maxBcryptCost } from '../auth/verifiers.ts';
import { errorMessage } from '../errors.ts';
import { AuditLog } from '../log/audit-log.ts';
import type { AuditAction } from '../log/audit-log.ts';

export { ensureInitialAdmin } from '../auth/htpasswd-file.ts';

/** The code of CommanderErrors for failures that are not usage errors (exit code 1). */
export const userCommandFailure = 'ratchet.user.failed';
/** The code of CommanderErrors for usage errors found by the user commands (exit code 2). */
export const userCommandUsage = 'ratchet.user.usage';

const usageExitCode = 2;
const failureExitCode = 1;
/** bcrypt reads only the first 72 bytes: refuse longer passwords rather than silently cut them. */
const maxPasswordBytes = 72;
const maxInputBytes = 4096;

/** Standard streams, replaceable for tests. */
export interface UserCommandIo {
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
}

const processIo: UserCommandIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };

/** A failure to report with exit code 1. */
class Failure extends Error {}
/** A usage error to report with exit code 2. */
class UsageError extends Error {}

function parseCost(text: string): number {
  const cost = Number(text);
  if (!/^\d+$/.test(text) || cost < minBcryptCost || cost > maxBcryptCost)
    throw new InvalidArgumentError(
      `the cost must be a whole number from ${minBcryptCost} to ${maxBcryptCost}`,
    );
  return cost;
}

function addFileOptions(command: Command): Command {
  return command
    .addOption(new Option('--path <dir>', 'data directory (holds .htpasswd by default)').default('./data'))
    .addOption(new Option('--htpasswd-file <file>', 'the htpasswd file (default: <path>/.htpasswd)'));
}

/** Registers the `user` command and its subcommands on the program; returns the `user` command. */
export function registerUserCommands(program: Command, io: UserCommandIo = processIo): Command {
  const user = program
    .command('user')
    .description('manage the users in the htpasswd file')
    .exitOverride(mapExit);

  const withPassword = (name: string, description: string, adding: boolean): void => {
    addFileOptions(
      user
        .command(`${name} <name>`)
        .description(description)
        .exitOverride(mapExit)
        .allowExcessArguments(false)
        .addOption(
          new Option('--cost <n>', `bcrypt cost, ${minBcryptCost} to ${maxBcryptCost}`)
            .default(defaultBcryptCost)
            .argParser(parseCost),
        )
        .option(
          '--password-stdin',
          'read the password from standard input (automatic when it is not a terminal)',
        ),
    ).action(run(io, (args, command) => setPassword(io, command, args[0] ?? '', adding)));
  };
  withPassword('add', 'add a user (asks for the password)', true);
  withPassword('passwd', "change a user's password", false);

  addFileOptions(
    user
      .command('remove <name>')
      .alias('rm')
      .description('remove a user')
      .exitOverride(mapExit)
      .allowExcessArguments(false),
  ).action(run(io, (args, command) => removeUser(io, command, args[0] ?? '')));

  addFileOptions(
    user.command('list').description('list the users').exitOverride(mapExit).allowExcessArguments(false),
  ).action(run(io, (_args, command) => listUsers(io, command)));

  return user;
}

/** Commander reports its own usage errors with exit code 1; ours are 2, as for the server's flags. */
function mapExit(err: CommanderError): never {
  if (err.exitCode === 0 || err.code === userCommandFailure || err.code === userCommandUsage) throw err;
  throw new CommanderError(usageExitCode, err.code, err.message);
}

/** Wraps an action so that failures become CommanderErrors with the right exit code and message. */
function run(
  io: UserCommandIo,
  action: (args: string[], command: Command) => Promise<void>,
): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const command = args[args.length - 1] as Command;
    const operands = args.filter((arg): arg is string => typeof arg === 'string');
    try {
      await action(operands, command);
    } catch (err) {
      if (err instanceof CommanderError) throw err;
      const usage = err instanceof UsageError;
      const message = errorMessage(err);
      io.stderr.write(`error: ${message}\n`);
      throw new CommanderError(
        usage ? usageExitCode : failureExitCode,
        usage ? userCommandUsage : userCommandFailure,
        message,
      );
    }
  };
}

/** The value of an option on the command or an ancestor: an explicit value wins over defaults. */
export function optionValue(command: Command, key: string): { value: string; explicit: boolean } | undefined {
  let fallback: string | undefined;
  for (let current: Command | null = command; current; current = current.parent) {
    const value: unknown = current.getOptionValue(key);
    if (typeof value !== 'string') continue;
    const source = current.getOptionValueSource(key);
    if (source !== undefined && source !== 'default') return { value, explicit: true };
    fallback ??= value;
  }
  return fallback === undefined ? undefined : { value: fallback, explicit: false };
}

/** The htpasswd file the command works on: --htpasswd-file, else <--path>/.htpasswd. */
export function htpasswdFileOf(command: Command): string {
  const file = optionValue(command, 'htpasswdFile');
  const dir = optionValue(command, 'path');
  if (file?.explicit || (file !== undefined && dir?.explicit !== true)) return file.value;
  return path.join(dir?.value ?? './data', '.htpasswd');
}

function checkUserName(name: string): void {
  const problem = userNameProblem(name);
  if (problem !== undefined) throw new UsageError(`invalid user name "${name}": ${problem}`);
}

async function setPassword(
  io: UserCommandIo,
  command: Command,
  name: string,
  adding: boolean,
): Promise<void> {
  checkUserName(name);
  const file = htpasswdFileOf(command);
  const options = command.opts<{ cost: number; passwordStdin?: boolean }>();
  // Check before asking for a password that would then be thrown away.
  const existsProblem = (text: string): string | undefined => {
    const exists = hasUserLine(text, name);
    if (adding && exists)
      return `user "${name}" already exists in ${file}; use "ratchet user passwd ${name}" to change the password`;
    if (!adding && !exists) return `there is no user "${name}" in ${file}`;
    return undefined;
  };
  const before = existsProblem((await readHtpasswdFile(file)).text);
  if (before !== undefined) throw new Failure(before);
  const password = await readNewPassword(io, name, options.passwordStdin === true);
  const hash = await hashPassword(password, options.cost);
  await updateHtpasswdFile(file, (state) => {
    const problem = existsProblem(state.text);
    if (problem !== undefined) throw new Failure(problem);
    return setUserHash(state.text, name, hash);
  });
  auditUserChange(command, adding ? 'user-add' : 'user-passwd', name, file);
  io.stdout.write(
    adding ? `added user "${name}" to ${file}\n` : `changed the password of "${name}" in ${file}\n`,
  );
}

/** A line in the audit trail (--audit-log or RATCHET_AUDIT_LOG), if one is kept: who changed which user. */
function auditUserChange(command: Command, action: AuditAction, subject: string, file: string): void {
  const target = optionValue(command, 'auditLog')?.value;
  if (target === undefined) return;
  let failure: unknown;
  const audit = AuditLog.open(target, (err) => (failure ??= err));
  try {
    audit.record({ action, user: operatorLogin(), subject, file, status: 0 });
  } finally {
    audit.close();
  }
  if (failure !== undefined)
    throw new Failure(`the change was made, but not written to ${target}: ${errorMessage(failure)}`);
}

/**
 * Who ran the command: the login of the session (the kernel's loginuid, which sudo, su and
 * runuser keep), else the account it runs as. Not SUDO_USER: anyone can set a variable.
 */
export function operatorLogin(): string {
  try {
    const uid = Number(readFileSync('/proc/self/loginuid', 'utf8').trim());
    if (Number.isInteger(uid) && uid !== 4294967295) {
      const entry = readFileSync('/etc/passwd', 'utf8')
        .split('\n')
        .map((line) => line.split(':'))
        .find((fields) => Number(fields[2]) === uid);
      return entry?.[0] ?? `uid ${uid}`;
    }
  } catch {
    // Not Linux, or no login session (a service, a container): the account below.
  }
  return userInfo().username;
}

async function removeUser(io: UserCommandIo, command: Command, name: string): Promise<void> {
  const file = htpasswdFileOf(command);
  await updateHtpasswdFile(file, (state) => {
    if (!hasUserLine(state.text, name)) throw new Failure(`there is no user "${name}" in ${file}`);
    return removeUserLines(state.text, name);
  });
  auditUserChange(command, 'user-remove', name, file);
  io.stdout.write(`removed user "${name}" from ${file}\n`);
}

async function listUsers(io: UserCommandIo, command: Command): Promise<void> {
  const file = htpasswdFileOf(command);
  const state = await readHtpasswdFile(file);
  if (state.stats === undefined) {
    io.stderr.write(`${file} does not exist: there are no users\n`);
    return;
  }
  for (const warning of state.parsed.warnings)
    io.stderr.write(`warning: ${file} line ${warning.line}: ${warning.message}\n`);
  for (const name of state.parsed.users.keys()) io.stdout.write(`${name}\n`);
}

/** The new password: prompted twice without echo on a terminal, else the first line of stdin. */
async function readNewPassword(io: UserCommandIo, user: string, fromStdin: boolean): Promise<string> {
  let password: string;
  if (fromStdin || io.stdin.isTTY !== true || io.stdin.setRawMode === undefined) {
    password = await readPasswordLine(io.stdin);
  } else {
    password = await promptHidden(io, `New password for ${user}: `);
    if (password !== '') {
      const again = await promptHidden(io, 'Retype the new password: ');
      if (again !== password) throw new Failure('the passwords do not match');
    }
  }
  if (password === '') throw new Failure('the password is empty');
  if (password.includes('\u0000')) throw new Failure('the password contains a NUL character');
  if (Buffer.byteLength(password, 'utf8') > maxPasswordBytes)
    throw new Failure(
      `the password is longer than ${maxPasswordBytes} bytes, of which bcrypt would use only the first ${maxPasswordBytes}`,
    );
  return password;
}

/** Reads the first line of a stream (without its line ending), as UTF-8. */
export function readPasswordLine(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err: Error | undefined): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.pause();
      if (err) {
        reject(err);
        return;
      }
      let line: string;
      try {
        line = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
      } catch {
        reject(new Failure('the password is not valid UTF-8'));
        return;
      }
      resolve(line.endsWith('\r') ? line.slice(0, -1) : line);
    };
    const onData = (chunk: Buffer | string): void => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      const newline = bytes.indexOf(10);
      chunks.push(newline >= 0 ? bytes.subarray(0, newline) : bytes);
      size += bytes.length;
      if (newline >= 0) finish(undefined);
      else if (size > maxInputBytes) finish(new Failure('the password input is too long'));
    };
    const onEnd = (): void => finish(undefined);
    const onError = (err: Error): void => finish(err);
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.resume();
  });
}

/** Asks for a password on a terminal without echoing it. */
export function promptHidden(io: UserCommandIo, prompt: string): Promise<string> {
  const input = io.stdin;
  return new Promise((resolve, reject) => {
    let value = '';
    let escape = false;
    // Echo goes off before the prompt shows, so nothing typed after seeing it is echoed.
    input.setRawMode?.(true);
    io.stderr.write(prompt);
    const finish = (err: Error | undefined): void => {
      input.off('data', onData);
      input.setRawMode?.(false);
      input.pause();
      io.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer | string): void => {
      for (const char of typeof chunk === 'string' ? chunk : chunk.toString('utf8')) {
        // Keys like arrows send escape sequences (ESC [ A); they are not part of a password.
        if (escape) {
          if (char !== '[' && char !== 'O' && char >= '@' && char <= '~') escape = false;
          continue;
        }
        if (char === '\u001b') {
          escape = true;
          continue;
        }
        if (char === '\r' || char === '\n') return finish(undefined);
        if (char === '\u0003') return finish(new Failure('cancelled'));
        if (char === '\u0004') return finish(value === '' ? new Failure('cancelled') : undefined);
        if (char === '\u007f' || char === '\b') value = Array.from(value).slice(0, -1).join('');
        else if (char === '\u0015') value = '';
        else if (char >= ' ') value += char;
      }
      if (Buffer.byteLength(value, 'utf8') > maxInputBytes)
        finish(new Failure('the password input is too long'));
    };
    input.on('data', onData);
    input.resume();
  });
}
