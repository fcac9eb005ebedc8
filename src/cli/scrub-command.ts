/**
 * `ratchet scrub`: re-reads every stored object and checks it against its SHA-256 name
 * (src/scrub/scrub.ts), reading the data folder directly beside a running server (read-only: no
 * lock, nothing written). Prints each corrupt object on stdout, progress on stderr (a line
 * rewritten in place on a terminal, a line every few seconds otherwise). Exit code 0 when
 * everything is sound, 1 when corruption was found, 2 on an error.
 */
import { CommanderError, Option } from 'commander';
import type { Command } from 'commander';
import { parseSize } from '../config/sizes.ts';
import { UsageError } from '../config/options.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import { repoDisplay, repoFromKey } from '../domain/repo-path.ts';
import { errorMessage } from '../errors.ts';
import { openDataFolder, repoOption } from './data-folder-options.ts';
import { reposInOrder, scrub, scrubbedTypes } from '../scrub/scrub.ts';
import type { CheckedObject } from '../scrub/scrub.ts';
import type { FsStorage } from '../storage/fs/fs-storage.ts';
import { optionValue } from './user-command.ts';

export const scrubCorrupt = 'ratchet.scrub.corrupt';
export const scrubFailed = 'ratchet.scrub.failed';

export interface ScrubCommandIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

const processIo: ScrubCommandIo = { stdout: process.stdout, stderr: process.stderr };
const progressEveryMs = 5000;

export function registerScrubCommand(program: Command, io: ScrubCommandIo = processIo): Command {
  return program
    .command('scrub')
    .description(
      'check every stored object against its SHA-256 name; exit 0 when all are sound, 1 when some are corrupt, 2 on errors',
    )
    .addOption(new Option('--path <dir>', 'data directory').default('./data'))
    .addOption(new Option('--repo <path>', 'only this repository, e.g. /host1/'))
    .addOption(
      new Option(
        '--rate <size>',
        'read at most this many bytes per second, e.g. 50MiB/s (default: no limit)',
      ),
    )
    .allowExcessArguments(false)
    .exitOverride((err) => {
      if (err.exitCode === 0) throw err;
      throw new CommanderError(2, scrubFailed, err.message);
    })
    .action(async (opts: { repo?: string; rate?: string }, command: Command) => {
      let corrupt: number;
      try {
        corrupt = await runScrub(io, optionValue(command, 'path')?.value ?? './data', opts);
      } catch (err) {
        io.stderr.write(`error: ${errorMessage(err)}\n`);
        throw new CommanderError(2, scrubFailed, errorMessage(err));
      }
      if (corrupt > 0) throw new CommanderError(1, scrubCorrupt, `${corrupt} corrupt objects`);
    });
}

async function runScrub(
  io: ScrubCommandIo,
  dataDir: string,
  opts: { repo?: string; rate?: string },
): Promise<number> {
  const rate = opts.rate === undefined ? undefined : parseRate(opts.rate);
  const storage = await openDataFolder(dataDir);
  const repos = opts.repo === undefined ? await reposInOrder(storage) : [await namedRepo(storage, opts.repo)];
  const total = await totals(storage, repos);
  const progress = new Progress(io, total);
  let corrupt = 0;
  let unreadable = 0;
  let listErrors = 0;
  await scrub(storage, repos, {
    bytesPerSecond: rate,
    onListError: (repo, type, err) => {
      listErrors++;
      progress.clear();
      io.stderr.write(
        `error: cannot list ${repoDisplay(repoFromKey(repo))} ${type}/: ${errorMessage(err)}\n`,
      );
    },
    onChecked: (object: CheckedObject) => {
      if (object.error !== undefined) unreadable++;
      else if (object.actual !== object.name) corrupt++;
      if (object.actual !== object.name) {
        progress.clear();
        io.stdout.write(
          object.error !== undefined
            ? `unreadable: ${repoDisplay(repoFromKey(object.repo))} ${object.type}/${object.name} (${object.error})\n`
            : `corrupt: ${repoDisplay(repoFromKey(object.repo))} ${object.type}/${object.name} ${object.size} bytes (content hashes to ${object.actual})\n`,
        );
      }
      progress.add(object.size, corrupt);
    },
  });
  progress.done(corrupt, unreadable);
  // What could not be listed or read was not checked: an error, whatever else was found.
  if (listErrors > 0 || unreadable > 0)
    throw new Error(
      `${listErrors} folders could not be listed and ${unreadable} objects could not be read (see above)`,
    );
  return corrupt;
}

function parseRate(text: string): number {
  try {
    return parseSize(text.replace(/\/s$/, ''));
  } catch (err) {
    throw new UsageError(`--rate: ${errorMessage(err)}`);
  }
}

async function namedRepo(storage: FsStorage, text: string): Promise<RepoPath> {
  const repo = repoOption(text);
  if (!(await storage.repoExists(repo)))
    throw new UsageError(`--repo: no repository at ${repoDisplay(repo)}`);
  return repo;
}

async function totals(
  storage: FsStorage,
  repos: readonly RepoPath[],
): Promise<{ objects: number; bytes: number }> {
  let objects = 0;
  let bytes = 0;
  for (const repo of repos) {
    for (const type of scrubbedTypes) {
      try {
        for await (const entry of storage.list(repo, type, undefined, { cache: false })) {
          objects++;
          bytes += entry.size;
        }
      } catch {
        // A repository that went away is skipped by the scrub too.
      }
    }
  }
  return { objects, bytes };
}

/** Progress on stderr: rewritten in place on a terminal, a line every few seconds otherwise. */
class Progress {
  private readonly io: ScrubCommandIo;
  private readonly total: { objects: number; bytes: number };
  private readonly started = Date.now();
  private objects = 0;
  private bytes = 0;
  private shownAt = 0;
  private shown = false;

  constructor(io: ScrubCommandIo, total: { objects: number; bytes: number }) {
    this.io = io;
    this.total = total;
  }

  add(bytes: number, corrupt: number): void {
    this.objects++;
    this.bytes += bytes;
    const now = Date.now();
    if (this.io.stderr.isTTY === true) {
      if (now - this.shownAt < 200) return;
      this.io.stderr.write(`\r${this.line(corrupt)}\u001b[K`);
      this.shown = true;
    } else {
      if (now - this.shownAt < progressEveryMs) return;
      this.io.stderr.write(`${this.line(corrupt)}\n`);
    }
    this.shownAt = now;
  }

  clear(): void {
    if (this.shown) this.io.stderr.write('\r\u001b[K');
    this.shown = false;
  }

  done(corrupt: number, unreadable: number): void {
    this.clear();
    const seconds = (Date.now() - this.started) / 1000;
    const outcome =
      corrupt === 0 && unreadable === 0
        ? 'all sound'
        : `${corrupt} corrupt${unreadable === 0 ? '' : `, ${unreadable} unreadable`}`;
    this.io.stderr.write(
      `scrub: ${this.objects} objects, ${mib(this.bytes)} checked in ${seconds.toFixed(1)} s: ${outcome}\n`,
    );
  }

  private line(corrupt: number): string {
    const percent = this.total.bytes === 0 ? 100 : Math.min(100, (this.bytes / this.total.bytes) * 100);
    return (
      `scrub: ${percent.toFixed(1)}% ${this.objects}/${this.total.objects} objects, ` +
      `${mib(this.bytes)} of ${mib(this.total.bytes)}, ${corrupt} corrupt`
    );
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
