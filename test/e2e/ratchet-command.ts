/**
 * The real `ratchet` command for the end-to-end tests where startRatchet's fixed
 * `--listen 127.0.0.1:0 --path <dir>` does not fit: a server configured by its own arguments (a
 * configuration file with several listeners, say), with the URL and role ceiling of every
 * listener taken from its announcement lines. (One-shot commands such as `ratchet user add`, with
 * input on stdin, run through runRatchet.)
 */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { cliEntry, projectRoot } from '../helpers/ratchet-process.ts';
import type { RatchetProcess } from '../helpers/ratchet-process.ts';

const command = [process.execPath, '--import', 'tsx', cliEntry] as const;

/** What the server announces for each listener, one stdout line each. */
const announcement = /^ratchet \S+: serving (.+) on (\S+) \(at most (\S+)\)$/;

export interface Listener {
  /** Base URL such as http://127.0.0.1:41234 (no trailing slash). */
  readonly url: string;
  /** The role ceiling the server announced for the listener. */
  readonly maxRole: string;
}

export interface RatchetServer extends RatchetProcess {
  /** Every listener, in the order the server announced them; `url` is the first one's. */
  readonly listeners: readonly Listener[];
}

/** Starts `ratchet ...args` and resolves once it has announced `count` listeners. */
export async function startRatchetServer(
  args: string[],
  count: number,
  timeoutMs = 20_000,
): Promise<RatchetServer> {
  const { child, stdout, stderr } = spawnRatchet(args);
  child.stdin.end();
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let failed: Error | undefined;
  exited.catch((err: unknown) => (failed = err as Error));

  const announced = (): { dataDir: string; listeners: Listener[] } => {
    const matches = stdout()
      .split('\n')
      .map((line) => announcement.exec(line))
      .filter((match) => match !== null);
    return {
      dataDir: matches[0]?.[1] ?? '',
      listeners: matches.map((match) => ({ url: match[2] ?? '', maxRole: match[3] ?? '' })),
    };
  };
  const deadline = Date.now() + timeoutMs;
  while (announced().listeners.length < count) {
    if (failed) throw failed;
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`ratchet exited (${child.exitCode ?? child.signalCode}) before serving:\n${stderr()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`ratchet did not announce ${count} listeners in time:\n${stdout()}\n${stderr()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  const { dataDir, listeners } = announced();
  return {
    url: listeners[0]?.url ?? '',
    listeners,
    dataDir,
    child,
    stderr,
    stdout,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const [code] = await exited;
      return code;
    },
  };
}

/** Spawns `ratchet ...args` from the project folder, collecting its output. */
function spawnRatchet(args: string[]): {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
} {
  const [node, ...nodeArgs] = command;
  const child = spawn(node, [...nodeArgs, ...args], { cwd: projectRoot, stdio: ['pipe', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk));
  return { child, stdout: () => output.stdout, stderr: () => output.stderr };
}
