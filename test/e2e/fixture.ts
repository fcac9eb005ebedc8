/**
 * The shared setup of the restic end-to-end tests: a temporary folder with a data folder, a HOME
 * for restic and a generated source tree, the `ratchet` server over that data folder, restic
 * runners with their own cache folders, and a teardown that stops the server and insists that
 * it exited cleanly.
 *
 * Inside a describe(): `const env = resticEnvironment({ name, tree, serverArgs, repoPath, password })`
 * registers the before/after hooks; each test then takes `inTest(env.rest(), t)`.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before } from 'node:test';
import type { TestContext } from 'node:test';
import { makeTempDir, startRatchet } from '../helpers/ratchet-process.ts';
import type { RatchetProcess } from '../helpers/ratchet-process.ts';
import { Restic, assertSameTree, generateTree, mib, modifyTree } from './restic-helpers.ts';
import type { TreeSpec, TreeStats } from './restic-helpers.ts';

/** Options of one test step: a restic command may take a while, and refused ones retry. */
export const step = { timeout: 180_000 };

/** The restic runner for one test, its transcript going to the test's diagnostics. */
export function inTest(restic: Restic, t: TestContext): Restic {
  return restic.withSink((line) => t.diagnostic(line));
}

export interface ResticEnvironmentOptions {
  /** Names the temporary folder (`ratchet-e2e-<name>-`) and seeds the generated source tree. */
  readonly name: string;
  /** restic's repository password. */
  readonly password: string;
  /** The tree generated in `source` during setup; none when omitted. */
  readonly tree?: TreeSpec;
  /**
   * Arguments for `ratchet --listen 127.0.0.1:0 --path <data> ...` started during setup; when
   * omitted, a test starts the server itself (startServer or useServer).
   */
  readonly serverArgs?: readonly string[];
  /** The repository of `rest()` below the server's URL, such as `e2e/host1/` (default: the root). */
  readonly repoPath?: string;
}

/** One temporary world for restic and Ratchet; the folders exist between setup and teardown. */
export class ResticEnvironment {
  readonly options: ResticEnvironmentOptions;
  #tmp: { dir: string; cleanup: () => Promise<void> } | undefined;
  #server: RatchetProcess | undefined;

  constructor(options: ResticEnvironmentOptions) {
    this.options = options;
  }

  /** The temporary folder. */
  get dir(): string {
    assert.ok(this.#tmp, 'the environment is set up');
    return this.#tmp.dir;
  }

  /** The folder Ratchet serves. */
  get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  /** HOME, TMPDIR and working folder of restic. */
  get home(): string {
    return path.join(this.dir, 'home');
  }

  /** The generated source tree. */
  get source(): string {
    return path.join(this.dir, 'source');
  }

  get server(): RatchetProcess {
    assert.ok(this.#server, 'ratchet is running');
    return this.#server;
  }

  /** Creates the folders, generates the source tree, and starts the server if serverArgs are given. */
  async setup(): Promise<void> {
    this.#tmp = await makeTempDir(`ratchet-e2e-${this.options.name}-`);
    await mkdir(this.dataDir);
    await mkdir(this.home);
    if (this.options.tree) {
      const stats = await generateTree(this.source, this.options.name, this.options.tree);
      console.log(`generated ${stats.files} files, ${mib(stats.bytes)} in ${this.source}`);
    }
    if (this.options.serverArgs) await this.startServer(this.options.serverArgs);
  }

  /** Starts `ratchet --listen 127.0.0.1:0 --path <data> ...args`. */
  startServer(args: readonly string[] = this.options.serverArgs ?? []): Promise<RatchetProcess> {
    return this.useServer(startRatchet(this.dataDir, [...args]));
  }

  /** Adopts a server started another way, so that teardown stops it and checks its exit code. */
  async useServer<P extends RatchetProcess>(starting: Promise<P>): Promise<P> {
    assert.equal(this.#server, undefined, 'one server per environment');
    const server = await starting;
    this.#server = server;
    return server;
  }

  /** Stops the server and asserts a clean exit, so that another can be started. */
  async stopServer(): Promise<void> {
    const server = this.server;
    this.#server = undefined;
    assert.equal(await server.stop(), 0, `ratchet did not exit cleanly:\n${server.stderr()}`);
  }

  /** A restic runner for any repository, with the cache folder `<tmp>/<cache>`. */
  runner(repo: string, cache = 'cache'): Restic {
    return new Restic({
      repo,
      password: this.options.password,
      cacheDir: path.join(this.dir, cache),
      home: this.home,
    });
  }

  /** A restic runner for `rest:<server URL>/<repoPath>`. */
  rest(repoPath = this.options.repoPath ?? '', cache = 'cache'): Restic {
    return this.runner(`rest:${this.server.url}/${repoPath}`, cache);
  }

  /** A restic runner for a folder below the data folder, opened with restic's local backend. */
  local(repoDir: string, cache = 'cache'): Restic {
    return this.runner(path.join(this.dataDir, repoDir), cache);
  }

  /** Changes the source tree for a second backup (see modifyTree); returns what was touched. */
  async modifySource(restic: Restic): Promise<string[]> {
    assert.ok(this.options.tree, 'the environment has a generated tree');
    const touched = await modifyTree(this.source, this.options.name, this.options.tree);
    restic.note(`changed the source: ${touched.join('; ')}`);
    return touched;
  }

  /** Restores the latest snapshot into `<tmp>/<target>` and asserts it equals the source tree. */
  async restoreLatest(restic: Restic, target: string, show = 1): Promise<TreeStats> {
    const folder = path.join(this.dir, target);
    await restic.ok(['restore', 'latest', '--target', folder], { show });
    const compared = await assertSameTree(this.source, folder);
    restic.note(`  compared ${compared.files} files, ${mib(compared.bytes)}: identical`);
    return compared;
  }

  /** Stops the server (if one was started), removes the folder, and asserts a clean exit. */
  async teardown(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    const code = await server?.stop();
    await this.#tmp?.cleanup();
    this.#tmp = undefined;
    if (server) assert.equal(code, 0, `ratchet did not exit cleanly:\n${server.stderr()}`);
  }
}

/** Creates an environment and registers its setup and teardown as the current suite's hooks. */
export function resticEnvironment(options: ResticEnvironmentOptions): ResticEnvironment {
  const env = new ResticEnvironment(options);
  before(() => env.setup(), { timeout: 60_000 });
  after(() => env.teardown());
  return env;
}
