/**
 * Where a repository's objects live in a bucket: restic's own S3 layout under an optional prefix
 * (`<prefix>/<repo>/config`, `<repo>/data/<2 hex>/<name>`, `<repo>/<type>/<name>`), so restic's s3
 * backend opens the same repository when Ratchet is down. Ratchet's own keys sit under
 * `<prefix>/.ratchet/`, a name no repository component can take (components never start with a
 * dot): repository markers, the trash and the readiness probe.
 */
import { RatchetError } from '../../errors.ts';
import type { ObjectRef } from '../../domain/object-ref.ts';
import { isObjectName, isObjectType, type ObjectType } from '../../domain/object-types.ts';
import { isRepoComponent, repoKey, type RepoPath } from '../../domain/repo-path.ts';
import type { TrashEntry } from '../storage.ts';

/** Where the repositories are: a bucket and a key prefix ('' or ending in '/'). */
export interface S3Location {
  readonly bucket: string;
  readonly prefix: string;
}

const bucketPattern = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Parses `s3://BUCKET[/PREFIX]`; throws a message for the operator on anything else. */
export function parseS3Url(text: string): S3Location {
  const match = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(text);
  if (match === null) throw new Error(`--storage ${text}: expected s3://BUCKET[/PREFIX]`);
  const bucket = match[1] ?? '';
  if (!bucketPattern.test(bucket))
    throw new Error(`--storage ${text}: "${bucket}" is not a valid bucket name`);
  const parts = (match[2] ?? '').split('/').filter((part) => part !== '');
  for (const part of parts) {
    if (part === '.' || part === '..' || part.startsWith('.ratchet')) {
      throw new Error(`--storage ${text}: the prefix may not contain "${part}"`);
    }
  }
  return { bucket, prefix: parts.length === 0 ? '' : `${parts.join('/')}/` };
}

/** Every key the S3 backend reads or writes, built in one place. */
export class S3Layout {
  readonly location: S3Location;
  private readonly ratchet: string;

  constructor(location: S3Location) {
    this.location = location;
    this.ratchet = `${location.prefix}.ratchet/`;
  }

  /** The repository's folder: `<prefix><repo>/` ('<prefix>' for the root repository). */
  repoPrefix(repo: RepoPath): string {
    for (const component of repo) {
      if (!isRepoComponent(component)) throw new RatchetError('NOT_FOUND', 'invalid repository path');
    }
    return repo.length === 0 ? this.location.prefix : `${this.location.prefix}${repoKey(repo)}/`;
  }

  /** The object's key in restic's layout. */
  objectKey(ref: ObjectRef): string {
    const base = this.repoPrefix(ref.repo);
    if (ref.type === 'config') return `${base}config`;
    if (!isObjectName(ref.name)) throw new RatchetError('NOT_FOUND', 'invalid object name');
    const fanOut = ref.type === 'data' ? `${ref.name.slice(0, 2)}/` : '';
    return `${base}${ref.type}/${fanOut}${ref.name}`;
  }

  /** The folder listed for a type (`data/` covers the 256 `data/xx/` folders). */
  typePrefix(repo: RepoPath, type: ObjectType): string {
    return `${this.repoPrefix(repo)}${type}/`;
  }

  /** The object name a listed key under typePrefix names, or undefined for anything else. */
  nameOf(type: ObjectType, rest: string): string | undefined {
    const name = type === 'data' ? rest.slice(3) : rest;
    if (!isObjectName(name)) return undefined;
    if (type === 'data' && rest.slice(0, 3) !== `${name.slice(0, 2)}/`) return undefined;
    return name;
  }

  /** The marker that says a repository exists (restic itself needs none: its config says it). */
  markerKey(repo: RepoPath): string {
    return `${this.markersPrefix()}${repo.length === 0 ? '' : `${repoKey(this.valid(repo))}/`}.repo`;
  }

  /** Where the markers of all repositories are. */
  markersPrefix(): string {
    return `${this.ratchet}repos/`;
  }

  /** The repository a marker key names, or undefined for another key. */
  repoOfMarker(key: string): RepoPath | undefined {
    const rest = key.slice(this.markersPrefix().length);
    if (!key.startsWith(this.markersPrefix()) || !rest.endsWith('.repo')) return undefined;
    const folder = rest.slice(0, -'.repo'.length);
    if (folder === '') return [];
    if (!folder.endsWith('/')) return undefined;
    const repo = folder.slice(0, -1).split('/');
    return repo.every(isRepoComponent) ? repo : undefined;
  }

  /** Where running instances keep their heartbeats: `<prefix>.ratchet/instances/`. */
  instancesPrefix(): string {
    return `${this.ratchet}instances/`;
  }

  /** One instance's heartbeat object. */
  instanceKey(id: string): string {
    return `${this.instancesPrefix()}${id}`;
  }

  /** The repository's trash: `<prefix>.ratchet/trash/<repo>/`. */
  trashPrefix(repo: RepoPath): string {
    return `${this.ratchet}trash/${repo.length === 0 ? '' : `${repoKey(this.valid(repo))}/`}`;
  }

  /** A trashed object's key: `<trash>/<type>/<name>.<deleted ms>` (config: `config/config.<ms>`). */
  trashKey(entry: Pick<TrashEntry, 'repo' | 'type' | 'name' | 'deletedMs'>): string {
    return `${this.trashPrefix(entry.repo)}${entry.type}/${entry.name}.${entry.deletedMs}`;
  }

  /**
   * The entry a key under the repository's trash names; undefined for anything else, such as a
   * nested repository's trash (one more folder).
   */
  trashEntryOf(repo: RepoPath, key: string, size: number): TrashEntry | undefined {
    const rest = key.slice(this.trashPrefix(repo).length);
    const match = /^([a-z]+)\/([0-9a-f]{64}|config)\.(\d{1,15})$/.exec(rest);
    if (match === null || !key.startsWith(this.trashPrefix(repo))) return undefined;
    const [, type = '', name = '', ms = ''] = match;
    if (type === 'config' ? name !== 'config' : !isObjectType(type) || name === 'config') return undefined;
    return {
      repo,
      type: type === 'config' ? 'config' : (type as ObjectType),
      name,
      size,
      deletedMs: Number(ms),
    };
  }

  /** The key the readiness probe writes. */
  probeKey(): string {
    return `${this.ratchet}probe`;
  }

  /** Keys the start-up check of conditional create writes (one per check). */
  conditionProbeKey(id: string): string {
    return `${this.ratchet}condition-probe/${id}`;
  }

  private valid(repo: RepoPath): RepoPath {
    this.repoPrefix(repo);
    return repo;
  }
}
