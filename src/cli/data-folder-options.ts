/**
 * The data folder and repository options of the commands that work on the folder directly
 * (`scrub`, `trash`), beside a running server or without one.
 */
import { stat } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { UsageError } from '../config/options.ts';
import { parseS3Url } from '../storage/s3/s3-layout.ts';
import type { Storage } from '../storage/storage.ts';
import type { RepoPath } from '../domain/repo-path.ts';
import { parseRepoText } from '../protocol/route.ts';
import { FsStorage } from '../storage/fs/fs-storage.ts';

/**
 * The data folder's storage, for reading and for the trash: no init() (no lock, no sweep), as a
 * server may be running on it. A mistyped --path is refused rather than read as an empty folder.
 */
export async function openDataFolder(dir: string): Promise<FsStorage> {
  if (!(await stat(dir).catch(() => undefined))?.isDirectory())
    throw new UsageError(`--path: ${dir} is not a folder`);
  return new FsStorage({ root: dir });
}

/** Adds --storage, --s3-endpoint and --s3-region, as the server has them. */
export function storageCommandOptions(command: Command): Command {
  return command
    .addOption(new Option('--storage <url>', 'file:DIR (default: --path) or s3://BUCKET[/PREFIX]'))
    .addOption(new Option('--s3-endpoint <url>', "the S3 store's URL"))
    .addOption(new Option('--s3-region <region>', 'the S3 region'));
}

/** What --path, --storage, --s3-endpoint and --s3-region name. */
export interface RepositoriesOptions {
  readonly path: string;
  readonly storage: string | undefined;
  readonly s3Endpoint: string | undefined;
  readonly s3Region: string | undefined;
}

/**
 * The repositories' storage: the data folder (openDataFolder), or the S3 bucket --storage names,
 * checked to answer (credentials from the AWS chain, as for the server).
 */
export async function openRepositories(options: RepositoriesOptions): Promise<Storage> {
  const text = options.storage;
  if (text === undefined || text.startsWith('file:')) {
    return openDataFolder(text?.slice('file:'.length) || options.path);
  }
  let location;
  try {
    location = parseS3Url(text);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const { S3Storage } = await import('../storage/s3/s3-storage.ts');
  const storage = new S3Storage({
    location,
    endpoint: options.s3Endpoint,
    region: options.s3Region,
    maxSockets: 16,
  });
  await storage.init();
  return storage;
}

/** A --repo value (`/host1/`, `host1`, `/` for the root) as a repository path. */
export function repoOption(text: string): RepoPath {
  const repo = parseRepoText(text);
  if (repo === undefined) throw new UsageError(`--repo: "${text}" is no repository path`);
  return repo;
}
