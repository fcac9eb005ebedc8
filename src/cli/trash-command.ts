/**
 * `ratchet trash list|restore|purge`: the trash that --delete-grace keeps (storage trash verbs),
 * worked on directly in the data folder, beside a running server or without one. A restore
 * checks each object against its name and never replaces a different object under that name.
 */
import { CommanderError, Option } from 'commander';
import type { Command } from 'commander';
import { parseDuration, parseSince } from '../util/durations.ts';
import { UsageError } from '../config/options.ts';
import { repoDisplay } from '../domain/repo-path.ts';
import { errorMessage } from '../errors.ts';
import { AuditLog } from '../log/audit-log.ts';
import type { AuditAction } from '../log/audit-log.ts';
import type { Storage, TrashEntry } from '../storage/storage.ts';
import { gatherTrash, purgeTrash, restoreSucceeded, restoreTrash } from '../trash/trash-operations.ts';
import { openRepositories, repoOption, storageCommandOptions } from './data-folder-options.ts';
import { operatorLogin, optionValue } from './user-command.ts';

export const trashFailed = 'ratchet.trash.failed';
export const trashProblems = 'ratchet.trash.problems';

export interface TrashCommandIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

const processIo: TrashCommandIo = { stdout: process.stdout, stderr: process.stderr };

export function registerTrashCommands(program: Command, io: TrashCommandIo = processIo): Command {
  const trash = program
    .command('trash')
    .description('the trash that --delete-grace keeps: list, restore, purge');
  const withPath = (command: Command): Command =>
    storageCommandOptions(command.addOption(new Option('--path <dir>', 'data directory').default('./data')))
      .allowExcessArguments(false)
      .exitOverride((err) => {
        if (err.exitCode === 0) throw err;
        throw new CommanderError(2, trashFailed, err.message);
      });

  withPath(trash.command('list').description('list trashed objects, oldest deletion first'))
    .addOption(new Option('--repo <path>', 'only this repository, e.g. /host1/'))
    .action(
      run(io, async (opts: { repo?: string }, command: Command) => {
        const storage = await openStorage(command);
        for (const entry of await entriesOf(storage, opts.repo)) io.stdout.write(`${describe(entry)}\n`);
      }),
    );

  withPath(
    trash
      .command('restore [names...]')
      .description('put trashed objects of a repository back (all, or those named, or deleted since a time)'),
  )
    .requiredOption('--repo <path>', 'the repository, e.g. /host1/')
    .addOption(
      new Option(
        '--since <time>',
        'only objects deleted since then: an ISO time, or a duration ago such as 2h',
      ),
    )
    .action(
      run(io, async (names: string[], opts: { repo: string; since?: string }, command: Command) => {
        const storage = await openStorage(command);
        const since = opts.since === undefined ? 0 : parseOption(parseSince, opts.since);
        const wanted = new Set(names);
        const entries = (await entriesOf(storage, opts.repo)).filter(
          (entry) => entry.deletedMs >= since && (wanted.size === 0 || wanted.has(entry.name)),
        );
        const audit = auditFor(command, io);
        const reports = await restoreTrash(storage, entries, (report) => {
          const outcome = report.error === undefined ? report.outcome : `failed (${report.error})`;
          io.stdout.write(`${outcome}: ${describe(report.entry)}\n`);
          audit?.record(report.entry, 'trash-restore', outcome);
        });
        audit?.close();
        const problems = reports.filter((report) => !restoreSucceeded(report)).length;
        io.stderr.write(`restored ${entries.length - problems} of ${entries.length} objects\n`);
        if (problems > 0) throw new CommanderError(1, trashProblems, `${problems} objects not restored`);
      }),
    );

  withPath(trash.command('purge').description('remove trashed objects for good'))
    .addOption(new Option('--repo <path>', 'only this repository, e.g. /host1/'))
    .addOption(new Option('--older-than <duration>', 'only objects deleted longer ago than this, e.g. 7d'))
    .action(
      run(io, async (opts: { repo?: string; olderThan?: string }, command: Command) => {
        const storage = await openStorage(command);
        const before =
          Date.now() - (opts.olderThan === undefined ? 0 : parseOption(parseDuration, opts.olderThan));
        const audit = auditFor(command, io);
        const { objects, bytes } = await purgeTrash(storage, before, {
          repos: opts.repo === undefined ? undefined : [repoOption(opts.repo)],
          onPurged: (entry) => audit?.record(entry, 'trash-purge', 'purged'),
        });
        audit?.close();
        io.stderr.write(`purged ${objects} objects, ${bytes} bytes\n`);
      }),
    );
  return trash;
}

/** Wraps an action: usage problems exit 2, other failures 2 too (nothing was decided), with a message. */
function run<A extends unknown[]>(
  io: TrashCommandIo,
  action: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await action(...args);
    } catch (err) {
      if (err instanceof CommanderError) throw err;
      io.stderr.write(`error: ${errorMessage(err)}\n`);
      throw new CommanderError(2, trashFailed, errorMessage(err));
    } finally {
      // An S3 client keeps connections open: release what the action opened.
      await Promise.all(opened.splice(0).map((storage) => storage.close()));
    }
  };
}

/** Storages the running action opened, closed when it ends. */
const opened: Storage[] = [];

async function openStorage(command: Command): Promise<Storage> {
  const value = (key: string) => optionValue(command, key)?.value;
  const storage = await openRepositories({
    path: value('path') ?? './data',
    storage: value('storage'),
    s3Endpoint: value('s3Endpoint'),
    s3Region: value('s3Region'),
  });
  opened.push(storage);
  return storage;
}

function entriesOf(storage: Storage, repoText: string | undefined): Promise<TrashEntry[]> {
  return gatherTrash(storage, repoText === undefined ? undefined : [repoOption(repoText)]);
}

/** Parses an option's value, a bad one being a usage error (exit 2). */
function parseOption<T>(parse: (text: string) => T, text: string): T {
  try {
    return parse(text);
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
}

function describe(entry: TrashEntry): string {
  const object = entry.type === 'config' ? 'config' : `${entry.type}/${entry.name}`;
  return `${new Date(entry.deletedMs).toISOString()} ${repoDisplay(entry.repo)} ${object} ${entry.size} bytes`;
}

/** A recorder of trash changes in the audit trail, when --audit-log (RATCHET_AUDIT_LOG) is given. */
function auditFor(
  command: Command,
  io: TrashCommandIo,
):
  | { record: (entry: TrashEntry, action: AuditAction, outcome: string) => void; close: () => void }
  | undefined {
  const target = optionValue(command, 'auditLog')?.value;
  if (target === undefined) return undefined;
  const audit = AuditLog.open(target, (err) =>
    io.stderr.write(`error: the audit trail: ${errorMessage(err)}\n`),
  );
  const user = operatorLogin();
  return {
    record: (entry, action, outcome) =>
      audit.record({
        action,
        user,
        repo: repoDisplay(entry.repo),
        type: entry.type,
        name: entry.type === 'config' ? undefined : entry.name,
        size: entry.size,
        status: 0,
        // Restored and purged objects need no reason; the others say why nothing changed.
        reason: outcome === 'restored' || outcome === 'purged' ? undefined : outcome,
      }),
    close: () => audit.close(),
  };
}
