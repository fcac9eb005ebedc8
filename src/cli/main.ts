#!/usr/bin/env node
/** The `ratchet` command: parses flags, starts the server, and shuts it down on a signal. */
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { HtpasswdAuth } from '../auth/htpasswd-auth.ts';
import { describeAddress } from '../config/listen-address.ts';
import type { OptionDefinition, OptionLayer, OptionName } from '../config/options.ts';
import {
  defaultText,
  envName,
  flagName,
  optionNames,
  options,
  parseOptionText,
  readEnvironment,
} from '../config/options.ts';
import { buildServerConfig, storageText, UsageError } from '../config/server-config.ts';
import type { ServerConfig, ValueSource } from '../config/server-config.ts';
import { createLogger } from '../log/logger.ts';
import type { Logger } from '../log/logger.ts';
import type { RedisState } from '../state/redis/redis-state.ts';
import { notifySystemd, takeSystemdSockets } from '../server/systemd.ts';
import type { RunningServer } from '../server/server.ts';
import { startWorkers, workerFdsVariable } from '../server/workers.ts';
import type { PrimaryLink } from '../state/ipc/primary-link.ts';
import { loadTlsMaterial } from '../server/tls-material.ts';
import { registerScrubCommand } from './scrub-command.ts';
import { registerTrashCommands } from './trash-command.ts';
import { ensureInitialAdmin, registerUserCommands } from './user-command.ts';
import { errorMessage } from '../errors.ts';

const usageExitCode = 2;

/** The version from package.json (two folders up from both src/cli and dist/cli). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** Builds the command-line parser from the option table. */
export function buildProgram(): Command {
  const program = new Command('ratchet')
    .description('A storage server for restic backups (REST protocol), compatible with rest-server')
    .version(version(), '-V, --version')
    .exitOverride()
    .allowExcessArguments(false);
  // The options the flags set, typed by the table; filled in as commander parses.
  const flags: OptionLayer = {};
  const commandLine = new Map(optionNames.map((name) => [name, addOption(program, name, flags)]));
  let env: OptionLayer = {};
  program.hook('preAction', () => {
    env = readEnvironment(process.env);
    // The user commands read --path and --htpasswd-file from here, variables included.
    for (const [name, option] of commandLine) {
      const attribute = option.attributeName();
      const value = env[name];
      if (value !== undefined && program.getOptionValueSource(attribute) !== 'cli')
        program.setOptionValueWithSource(attribute, value, 'env');
    }
  });
  program.action(() =>
    serve(() => resolveConfig({ ...env, ...flags }, (name) => (flags[name] === undefined ? 'env' : 'cli'))),
  );
  registerUserCommands(program);
  registerScrubCommand(program);
  registerTrashCommands(program);
  return program;
}

/** Adds a table entry's option to the program, which records its typed value in `flags`. */
function addOption<N extends OptionName>(program: Command, name: N, flags: OptionLayer): Option {
  const definition: OptionDefinition = options[name];
  const shown = defaultText(name);
  const details = `${shown === undefined ? '' : `default: ${shown}; `}env: ${envName(name)}`;
  const argument = definition.arg === undefined ? '' : ` <${definition.arg}>`;
  const option = new Option(`${flagName(name)}${argument}`, `${definition.description} (${details})`);
  program.addOption(option);
  if (definition.kind.type === 'switch') {
    // A switch has no argument to parse: its presence sets it.
    program.on(
      `option:${option.name()}`,
      () => (flags[name] = parseOptionText(name, 'true', flagName(name))),
    );
  } else {
    option.argParser((text: string) => {
      try {
        return (flags[name] = parseOptionText(name, text, flagName(name), flags[name]));
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message);
      }
    });
  }
  return option;
}

/** Reads the configuration file named by --config (if any) and merges it with flags and environment. */
async function resolveConfig(given: OptionLayer, source: ValueSource): Promise<ServerConfig> {
  // Loaded only with --config: the YAML parser and the schema library cost about 20 MiB of memory.
  const file =
    given.config === undefined
      ? undefined
      : await (await import('../config/config-file.ts')).loadConfigFile(given.config);
  return buildServerConfig(given, source, file);
}

async function serve(resolve: () => Promise<ServerConfig>): Promise<void> {
  const config = await resolve();
  if (cluster.isWorker) return serveAsWorker(config, resolve);
  const logger = createLogger(config.debug);
  // A missing or mismatched certificate is reported before anything else happens (such as
  // creating the first admin); startServer checks it again when it loads it.
  if (config.tls !== undefined) await loadTlsMaterial(config.tls);
  if (config.workers > 1) return superviseWorkers(config, logger);
  const shared = await connectState(config, logger);
  const auth = config.noAuth ? undefined : await startAuth(config, logger, shared);
  // Loaded here, not at the top: the primary of --workers never serves and stays small.
  const { startServer } = await import('../server/server.ts');
  const server = await startServer(config, {
    logger,
    credentials: auth,
    inheritedFds: takeSystemdSockets(),
    shared,
  });
  const closeAll = async (): Promise<void> => {
    await Promise.all([server.close(), auth?.close()]);
    await shared?.close();
  };
  // Before anything is announced: a supervisor that stops the server as soon as it reads the
  // serving line must find the SIGTERM handler in place (else the default action kills it).
  handleSignals(resolve, server, auth, closeAll, logger);
  // Only once the listeners are bound: a password printed by a start that then fails is lost.
  if (auth !== undefined) {
    try {
      await createFirstAdmin(config, auth, logger);
    } catch (err) {
      await closeAll();
      throw err;
    }
  }
  announce(config, server, logger);
  await notifySystemd(`READY=1\nSTATUS=serving ${storageText(config)}`, logger);
}

/**
 * The primary of --workers N: starts the workers, creates the first admin once they listen,
 * announces them, and passes signals on.
 */
async function superviseWorkers(config: ServerConfig, logger: Logger): Promise<void> {
  if (!config.noAuth) await mkdir(path.dirname(config.htpasswdFile), { recursive: true, mode: 0o700 });
  const workers = await startWorkers(config, { logger, inheritedFds: takeSystemdSockets() });
  const stop = stopOnce(() => workers.close(), logger, 'shutting down the workers');
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    logger.info('SIGHUP: passed on to every worker');
    workers.reload();
  });
  if (!config.noAuth) await createFirstAdmin(config, { reload: () => workers.reloadUsers() }, logger);
  announce(config, workers, logger);
  await notifySystemd(
    `READY=1\nMAINPID=${process.pid}\nSTATUS=serving ${storageText(config)} with ${config.workers} workers`,
    logger,
  );
}

/** One of the workers of --workers N: the whole server on the primary's sockets and state. */
async function serveAsWorker(config: ServerConfig, resolve: () => Promise<ServerConfig>): Promise<void> {
  // The primary speaks to systemd; a worker that stops or is replaced must not.
  delete process.env.NOTIFY_SOCKET;
  const logger = createLogger(config.debug).child({ worker: cluster.worker?.id });
  const link = new (await import('../state/ipc/primary-link.ts')).PrimaryLink();
  const shared = await connectState(config, logger);
  const auth = config.noAuth ? undefined : await startAuth(config, logger, shared, link);
  const fds = (process.env[workerFdsVariable] ?? '').split(',').filter(Boolean).map(Number);
  const { startServer } = await import('../server/server.ts');
  const server = await startServer(config, {
    logger,
    credentials: auth,
    inheritedFds: fds,
    shared,
    primary: link,
  });
  const closeAll = async (): Promise<void> => {
    await Promise.all([server.close(), auth?.close()]);
    await shared?.close();
  };
  const stop = handleSignals(resolve, server, auth, closeAll, logger);
  // The primary gone (killed): finish the requests in flight and stop.
  process.on('disconnect', () => stop('the primary process is gone', true));
  link.onControl(async (message) => {
    if (message.op === 'reload-users') await auth?.reload();
    else stop('asked by the primary', true);
  });
  const { addresses, maxRoles, secure } = server;
  link.send({ type: 'ratchet:listening', addresses, maxRoles, secure });
}

/** Loads the users (none yet on a first start) and watches the file. */
async function startAuth(
  config: ServerConfig,
  logger: Logger,
  shared: RedisState | undefined,
  primary?: PrimaryLink,
): Promise<HtpasswdAuth> {
  await mkdir(path.dirname(config.htpasswdFile), { recursive: true, mode: 0o700 });
  // With --state, failed logins count across every instance, with workers across every worker;
  // the verified-credential cache stays in each process.
  const throttle =
    shared !== undefined
      ? (await import('../state/redis/redis-throttle-store.ts')).sharedLoginThrottle(shared.client)
      : primary !== undefined
        ? await (await import('../state/ipc/linked-stores.ts')).linkedLoginThrottle(primary)
        : undefined;
  const { startHtpasswdAuth } = await import('../auth/htpasswd-auth.ts');
  return startHtpasswdAuth({ file: config.htpasswdFile, logger, throttle });
}

/** The shared state store (--state), connected; undefined without it (ioredis loaded only then). */
async function connectState(config: ServerConfig, logger: Logger): Promise<RedisState | undefined> {
  if (config.state === undefined) return undefined;
  const { RedisState } = await import('../state/redis/redis-state.ts');
  const shared = new RedisState(config.state, logger);
  await shared.start();
  return shared;
}

/** On a first start without users, creates an admin, shows its password once and loads it. */
async function createFirstAdmin(
  config: ServerConfig,
  auth: { reload(): Promise<unknown> },
  logger: Logger,
): Promise<void> {
  const password = await ensureInitialAdmin(config.htpasswdFile, logger, { user: config.adminUser });
  if (password === undefined) return;
  // Loaded before the password is shown, so that it works at once (not after the file watch).
  await auth.reload();
  process.stdout.write(
    `No users were configured, so user "${config.adminUser}" was created with the password:\n\n    ${password}\n\n` +
      `It is shown only this once; only its hash is stored, in ${config.htpasswdFile}.\n` +
      `Add users with: ratchet user add <name> --htpasswd-file ${config.htpasswdFile}\n`,
  );
}

/** One line per listener with the role ceiling in force there; a warning for each open one. */
function announce(
  config: ServerConfig,
  server: Pick<RunningServer, 'addresses' | 'maxRoles' | 'secure'>,
  logger: Logger,
): void {
  const open: string[] = [];
  for (const [i, address] of server.addresses.entries()) {
    const where = describeAddress(address, server.secure[i] === true);
    const maxRole = server.maxRoles[i] ?? 'admin';
    logger.info({ path: config.path, listen: where, maxRole }, 'listening');
    process.stdout.write(
      `ratchet ${version()}: serving ${storageText(config)} on ${where} (at most ${maxRole})\n`,
    );
    if (config.noAuth) open.push(`${where} (at most ${maxRole})`);
  }
  if (open.length > 0)
    logger.warn(
      { listeners: open },
      `authentication disabled (--no-auth): anyone who can connect may use every repository on ${open.join(', ')}`,
    );
  if (config.proxyAuthUsername !== undefined && !config.noAuth && config.trustedProxies.length === 0)
    logger.warn(
      { header: config.proxyAuthUsername },
      'the --proxy-auth-username header is honoured from loopback and unix-socket peers only; name the proxy with --trusted-proxy (anyone on this machine can set the header)',
    );
}

/**
 * The graceful stop: the first signal or request closes everything and exits (0, or 1 when the
 * close failed); a second signal exits at once. A request (`byRequest`: a worker asked by its
 * primary) and a signal may both come for one stop, in either order (systemd signals every
 * process of the unit, a terminal the whole process group): only a second signal cuts it short.
 */
function stopOnce(
  closeAll: () => Promise<void>,
  logger: Logger,
  message: string,
): (signal: string, byRequest?: boolean) => void {
  let stopping = false;
  let signalled = false;
  return (signal, byRequest = false) => {
    if (!byRequest) {
      if (signalled) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      signalled = true;
    }
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, message);
    void notifySystemd('STOPPING=1', logger);
    closeAll().then(
      () => {
        logger.info('stopped');
        logger.flush(() => process.exit(0));
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        logger.flush(() => process.exit(1));
      },
    );
  };
}

function handleSignals(
  resolve: () => Promise<ServerConfig>,
  server: RunningServer,
  auth: HtpasswdAuth | undefined,
  closeAll: () => Promise<void>,
  logger: Logger,
): (reason: string, once?: boolean) => void {
  const stop = stopOnce(closeAll, logger, 'shutting down');
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    logger.info('SIGHUP: reloading users, TLS certificate and configuration; reopening the audit trail');
    try {
      server.reopenLogs();
    } catch (err) {
      logger.error({ err }, 'reopening the audit trail failed');
    }
    auth?.reload().catch((err: unknown) => logger.error({ err }, 'reloading users failed'));
    server
      .reloadCertificates()
      .catch((err: unknown) => logger.error({ err }, 'reloading the TLS certificate failed'));
    resolve().then(
      (config) => {
        server.reloadPolicies(config);
        logger.info('configuration reloaded');
      },
      (err: unknown) =>
        logger.error({ err: (err as Error).message }, 'reload failed, keeping the old configuration'),
    );
  });
  return stop;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with 0; the subcommands' own errors carry their exit code
      // (user: 1 failed; scrub: 1 corrupt, 2 error); commander's usage errors are 2.
      process.exit(err.exitCode === 0 ? 0 : err.code.startsWith('ratchet.') ? err.exitCode : usageExitCode);
    }
    throw err;
  }
}

main(process.argv).catch((err: unknown) => {
  process.stderr.write(`ratchet: ${errorMessage(err)}\n`);
  process.exit(err instanceof UsageError ? usageExitCode : 1);
});
