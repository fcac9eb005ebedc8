/** The machine under the bench: Debian packages it needs, tool versions, building Ratchet. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Runs a command to completion (bounded), returning its exit code and output. */
export function run(
  command: string,
  args: readonly string[],
  opts: { cwd?: string; timeoutSeconds?: number; env?: NodeJS.ProcessEnv; inherit?: boolean } = {},
): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(command, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    timeout: (opts.timeoutSeconds ?? 60) * 1000,
    encoding: 'utf8',
    stdio: opts.inherit ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
  return {
    code: result.error ? null : result.status,
    stdout: result.stdout ?? '',
    stderr: result.stderr ?? (result.error ? String(result.error) : ''),
  };
}

/** Whether a Debian package is installed, by dpkg's own record. */
function debianPackageInstalled(name: string): boolean {
  const r = run('dpkg-query', ['-W', '-f=${Status}', name], { timeoutSeconds: 20 });
  return r.code === 0 && r.stdout.includes('install ok installed');
}

/**
 * Installs the missing ones of the given Debian packages with apt-get when running as root.
 * Returns the packages that are still missing afterwards (the caller skips what needs them).
 */
export function ensureDebianPackages(names: readonly string[], allowInstall: boolean): string[] {
  const missing = names.filter((n) => !debianPackageInstalled(n));
  if (missing.length === 0) return [];
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!allowInstall || !isRoot || !existsSync('/usr/bin/apt-get')) {
    console.warn(
      `bench: missing Debian packages ${missing.join(', ')} (${isRoot ? 'install disabled' : 'not root'}); ` +
        `install them with: apt-get install ${missing.join(' ')}`,
    );
    return missing;
  }
  console.log(`bench: installing ${missing.join(', ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-qq'], { env, timeoutSeconds: 300, inherit: true });
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    env,
    timeoutSeconds: 600,
    inherit: true,
  });
  return missing.filter((n) => !debianPackageInstalled(n));
}

/** The first line a tool prints for its version (stdout or stderr), or 'unknown'. */
export function toolVersion(command: string, args: readonly string[]): string {
  const r = run(command, args, { timeoutSeconds: 20 });
  const text = `${r.stdout}\n${r.stderr}`.trim();
  return text.split('\n')[0]?.trim() || 'unknown';
}

/** Facts about the machine that belong next to any benchmark figure. */
export interface MachineInfo {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly versions: Record<string, string>;
}

/** Collects the machine facts and the versions of the tools used. */
export function machineInfo(versions: Record<string, string>): MachineInfo {
  return {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    versions,
  };
}

/** Builds Ratchet (`npm run build`) and returns the path of its command, or throws. */
export function buildRatchet(projectRoot: string, build: boolean): string {
  const entry = path.join(projectRoot, 'dist', 'cli', 'main.js');
  if (build) {
    console.log('bench: npm run build');
    const r = run('npm', ['run', 'build', '--silent'], { cwd: projectRoot, timeoutSeconds: 300 });
    if (r.code !== 0) throw new Error(`npm run build failed:\n${r.stdout}${r.stderr}`);
  }
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run npm run build`);
  return entry;
}
