#!/usr/bin/env node
/** The `ratchet` command: parses flags, starts the server, and shuts it down on a signal. */
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { startHtpasswdAuth } from '../auth/htpasswd-auth.ts';
import type { HtpasswdAuth } from '../auth/htpasswd-auth.ts';
import { describeAddress } from '../config/listen-address.ts';
import { envName, optionSpecs } from '../config/options.ts';
import { buildServerConfig, UsageError } from '../config/server-config.ts';
import type { ServerConfig } from '../config/server-config.ts';
import { createLogger } from '../log/logger.ts';
import type { Logger } from '../log/logger.ts';
import { startServer } from '../server/server.ts';
import { notifySystemd, takeSystemdSockets } from '../server/systemd.ts';
import type { RunningServer } from '../server/server.ts';
import { loadTlsMaterial } from '../server/tls-material.ts';
import { ensureInitialAdmin, registerUserCommands, userCommandFailure } from './user-command.ts';
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
  for (const spec of optionSpecs) {
    const option = new Option(spec.flag, spec.description).env(envName(spec));
    if (spec.defaultValue !== undefined) option.default(spec.defaultValue);
    if (spec.parse) {
      const parse = spec.parse;
      option.argParser((value: string, previous: unknown) => {
        try {
          return parse(value, previous);
        } catch (err) {
          throw new InvalidArgumentError((err as Error).message);
        }
      });
    }
    program.addOption(option);
  }
  program.action(() => serve(program));
  registerUserCommands(program);
  return program;
}

/** Reads the configuration file named by --config (if any) and merges it with the flags. */
async function resolveConfig(program: Command): Promise<ServerConfig> {
  const values = program.opts();
  const configPath = typeof values.config === 'string' ? values.config : undefined;
  // Loaded only with --config: the YAML parser and the schema library cost about 20 MiB of memory.
  const file =
    configPath === undefined
      ? undefined
      : await (await import('../config/config-file.ts')).loadConfigFile(configPath);
  return buildServerConfig(values, (key) => program.getOptionValueSource(key), file);
}

async function serve(program: Command): Promise<void> {
  const config = await resolveConfig(program);
  const logger = createLogger(config.debug);
  // A missing or mismatched certificate is reported before anything else happens (such as
  // creating the first admin); startServer checks it again when it loads it.
  if (config.tls !== undefined) await loadTlsMaterial(config.tls);
  const auth = config.noAuth ? undefined : await startAuth(config, logger);
  const server = await startServer(config, { logger, credentials: auth, inheritedFds: takeSystemdSockets() });
  announce(config, server, logger);
  handleSignals(program, server, auth, logger);
  await notifySystemd(`READY=1\nSTATUS=serving ${config.path}`, logger);
}

/** Loads the users; on a first start without any, creates an admin and shows its password once. */
async function startAuth(config: ServerConfig, logger: Logger): Promise<HtpasswdAuth> {
  await mkdir(path.dirname(config.htpasswdFile), { recursive: true, mode: 0o700 });
  const password = await ensureInitialAdmin(config.htpasswdFile, logger);
  if (password !== undefined) {
    process.stdout.write(
      `No users were configured, so user "admin" was created with the password:\n\n    ${password}\n\n` +
        `It is shown only this once; only its hash is stored, in ${config.htpasswdFile}.\n` +
        `Add users with: ratchet user add <name> --htpasswd-file ${config.htpasswdFile}\n`,
    );
  }
  return startHtpasswdAuth({ file: config.htpasswdFile, logger });
}

function announce(config: ServerConfig, server: RunningServer, logger: Logger): void {
  for (const [i, address] of server.addresses.entries()) {
    const where = describeAddress(address, server.secure[i] === true);
    const maxRole = server.maxRoles[i] ?? 'admin';
    logger.info({ path: config.path, listen: where, maxRole }, 'listening');
    process.stdout.write(`ratchet ${version()}: serving ${config.path} on ${where} (at most ${maxRole})\n`);
  }
}

function handleSignals(
  program: Command,
  server: RunningServer,
  auth: HtpasswdAuth | undefined,
  logger: Logger,
): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    void notifySystemd('STOPPING=1', logger);
    Promise.all([server.close(), auth?.close()]).then(
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
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    logger.info('SIGHUP: reloading users, TLS certificate and configuration');
    auth?.reload().catch((err: unknown) => logger.error({ err }, 'reloading users failed'));
    server
      .reloadCertificates()
      .catch((err: unknown) => logger.error({ err }, 'reloading the TLS certificate failed'));
    resolveConfig(program).then(
      (config) => {
        server.reloadPolicies(config);
        logger.info('configuration reloaded');
      },
      (err: unknown) =>
        logger.error({ err: (err as Error).message }, 'reload failed, keeping the old configuration'),
    );
  });
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with 0, failures of the user commands with 1, usage errors with 2.
      process.exit(err.exitCode === 0 ? 0 : err.code === userCommandFailure ? 1 : usageExitCode);
    }
    throw err;
  }
}

main(process.argv).catch((err: unknown) => {
  process.stderr.write(`ratchet: ${errorMessage(err)}\n`);
  process.exit(err instanceof UsageError ? usageExitCode : 1);
});
