/**
 * systemd integration: sockets passed by socket activation (LISTEN_FDS), and the readiness
 * notification of Type=notify services. Node cannot send unix datagrams itself, so readiness is
 * sent with the `systemd-notify` tool (the unit needs NotifyAccess=all, as the tool is a child).
 */
import { execFile } from 'node:child_process';
import type { Logger } from 'pino';

// systemd passes activated sockets from this file descriptor on (SD_LISTEN_FDS_START).
const firstFd = 3;

/**
 * The file descriptors systemd passed to this process, or [] when it passed none. The variables
 * are removed afterwards so that child processes do not take the sockets for theirs.
 */
export function takeSystemdSockets(env: NodeJS.ProcessEnv = process.env): number[] {
  const pid = Number(env.LISTEN_PID);
  const count = Number(env.LISTEN_FDS);
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (pid !== process.pid || !Number.isInteger(count) || count < 1) return [];
  return Array.from({ length: count }, (_, i) => firstFd + i);
}

/** Tells systemd the service is ready (no-op outside a Type=notify service). */
export function notifySystemd(state: string, logger: Logger): Promise<void> {
  const socket = process.env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return Promise.resolve();
  const args = ['--no-block', `--pid=${process.pid}`, ...state.split('\n').filter(Boolean)];
  return new Promise((resolve) => {
    execFile('systemd-notify', args, { timeout: 5000 }, (err) => {
      if (err) logger.warn({ err: err.message }, 'could not notify systemd');
      resolve();
    });
  });
}
