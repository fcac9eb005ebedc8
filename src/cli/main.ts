#!/usr/bin/env node
/** The `ratchet` command: parses flags, starts the server, and shuts it down on a signal. */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { describeAddress } from '../config/listen-address.ts';
import { optionSpecs, toServerConfig } from '../config/options.ts';
import type { ServerConfig } from '../config/options.ts';
import { createLogger } from '../log/logger.ts';
import { startServer } from '../server/server.ts';

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
    const option = new Option(spec.flag, spec.description);
    if (spec.defaultValue !== undefined) option.default(spec.defaultValue);
    if (spec.parse) {
      const parse = spec.parse;
      option.argParser((value: string) => {
        try {
          return parse(value);
        } catch (err) {
          throw new InvalidArgumentError((err as Error).message);
        }
      });
    }
    program.addOption(option);
  }
  return program;
}

async function serve(config: ServerConfig): Promise<void> {
  if (!config.noAuth) {
    process.stderr.write(
      'ratchet: authentication is not available in this version yet; start with --no-auth on a trusted network\n',
    );
    process.exit(usageExitCode);
  }
  const logger = createLogger(config.debug);
  const server = await startServer(config, logger);
  const where = describeAddress(server.address);
  logger.info({ path: config.path, listen: where, appendOnly: config.appendOnly }, 'ratchet started');
  process.stdout.write(
    `ratchet ${version()}: serving ${config.path} on ${where}${config.appendOnly ? ' (append-only)' : ''}\n`,
  );

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    server.close().then(
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
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    program.parse(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors with 2.
      process.exit(err.exitCode === 0 ? 0 : usageExitCode);
    }
    throw err;
  }
  await serve(toServerConfig(program.opts()));
}

main(process.argv).catch((err: unknown) => {
  process.stderr.write(`ratchet: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
