/** The real restic client end to end against one server: wall seconds per step. */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, cpSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { DatasetShape } from './fixtures.ts';
import { mutateDataset } from './fixtures.ts';
import type { ServerHandle } from './peers.ts';
import type { Measured } from './workloads.ts';

const password = 'ratchet-bench-password';

/** The timed steps, with the figure each one fills. */
const stepFigures = {
  init: 'restic_init',
  backup: 'restic_backup',
  check: 'restic_check',
  restore: 'restic_restore',
  backup2: 'restic_backup2',
  forget: 'restic_forget',
} as const;

/** Runs one restic command with a time limit; resolves with wall seconds or rejects. */
function restic(
  args: readonly string[],
  opts: { cwd: string; repoUrl: string; cacheDir: string; log: string; seconds: number },
): Promise<number> {
  return new Promise((resolve, reject) => {
    const fd = openSync(opts.log, 'a');
    const started = process.hrtime.bigint();
    const child = spawn('restic', ['-r', opts.repoUrl, '--cache-dir', opts.cacheDir, '--quiet', ...args], {
      cwd: opts.cwd,
      env: { ...process.env, RESTIC_PASSWORD: password },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.seconds * 1000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code === 0) resolve(seconds);
      else {
        const tail = readFileSync(opts.log, 'utf8').slice(-1500);
        reject(new Error(`restic ${args[0]} failed (${signal ?? `exit ${code}`}):\n${tail}`));
      }
    });
  });
}

/** SHA-256 of every file under `dir`, keyed by relative path (for checking a restore). */
function digestTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const entry of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const child = path.join(rel, entry.name);
      if (entry.isDirectory()) walk(child);
      else if (entry.isFile()) {
        out.set(
          child,
          createHash('sha256')
            .update(readFileSync(path.join(dir, child)))
            .digest('hex'),
        );
      }
    }
  };
  walk('');
  return out;
}

/** Whether two trees hold the same files with the same contents. */
function sameTree(a: string, b: string): string | undefined {
  const da = digestTree(a);
  const db = digestTree(b);
  if (da.size !== db.size) return `restored ${db.size} files, expected ${da.size}`;
  for (const [file, hash] of da) if (db.get(file) !== hash) return `restored ${file} differs`;
  return undefined;
}

/**
 * init, backup, check --read-data, restore (verified against the source), second backup of
 * a changed tree, forget --keep-last 1 --prune, then an untimed `check` that the repository
 * survived. Every step is timed separately; the first failure ends the run with an Error.
 */
export async function resticEndToEnd(
  server: ServerHandle,
  repo: string,
  dataset: string,
  shape: DatasetShape,
  workDir: string,
  stepSeconds: number,
): Promise<Measured> {
  rmSync(workDir, { recursive: true, force: true });
  mkdirSync(workDir, { recursive: true });
  const tree = path.join(workDir, 'tree');
  cpSync(dataset, tree, { recursive: true });
  const opts = {
    cwd: workDir,
    repoUrl: `rest:${server.baseUrl}/${repo}/`,
    cacheDir: path.join(workDir, 'cache'),
    log: path.join(workDir, 'restic.log'),
    seconds: stepSeconds,
  };
  const out: Record<string, number | Error> = {};
  let step: keyof typeof stepFigures = 'init';
  try {
    out[stepFigures.init] = await restic(['init'], opts);
    step = 'backup';
    out[stepFigures.backup] = await restic(['backup', '--host', 'bench', 'tree'], opts);
    step = 'check';
    out[stepFigures.check] = await restic(['check', '--read-data'], opts);
    step = 'restore';
    const target = path.join(workDir, 'restored');
    out[stepFigures.restore] = await restic(['restore', 'latest', '--target', target], opts);
    const problem = sameTree(tree, path.join(target, 'tree'));
    if (problem !== undefined) throw new Error(problem);
    rmSync(target, { recursive: true, force: true });
    mutateDataset(tree, shape);
    step = 'backup2';
    out[stepFigures.backup2] = await restic(['backup', '--host', 'bench', 'tree'], opts);
    step = 'forget';
    out[stepFigures.forget] = await restic(['forget', '--keep-last', '1', '--prune'], opts);
    await restic(['check'], opts);
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    for (const [name, figure] of Object.entries(stepFigures)) {
      if (out[figure] === undefined)
        out[figure] = name === step ? error : new Error(`not run: ${step} failed`);
    }
    // A failure after the last timed step (the final check) voids the run's figures too.
    if (Object.values(out).every((v) => typeof v === 'number')) {
      for (const figure of Object.values(stepFigures)) out[figure] = error;
    }
  } finally {
    rmSync(path.join(workDir, 'tree'), { recursive: true, force: true });
    rmSync(path.join(workDir, 'restored'), { recursive: true, force: true });
  }
  return out;
}
