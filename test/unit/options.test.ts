/** The option table: environment parsing, sizes, the derived file schema and the merge's precedence. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfigFile } from '../../src/config/config-file.ts';
import type { OptionKind, OptionName } from '../../src/config/options.ts';
import {
  envName,
  fileKey,
  fileOptionNames,
  optionNames,
  options,
  readEnvironment,
  UsageError,
} from '../../src/config/options.ts';
import { buildServerConfig } from '../../src/config/server-config.ts';
import { parseSize } from '../../src/config/sizes.ts';
import { parseDuration } from '../../src/util/durations.ts';

/** A YAML value of the kind that is not its default, and what it should read as. */
function sample(kind: OptionKind): [string, unknown] {
  switch (kind.type) {
    case 'switch':
      return ['true', true];
    case 'text':
      return ['/some/where', '/some/where'];
    case 'integer':
      return [String(kind.max), kind.max];
    case 'size':
      return ['3KiB', 3072];
    case 'duration':
      return ['2h', 7_200_000];
    case 'choice':
      return [`'${kind.values.at(-1)}'`, kind.values.at(-1)];
    case 'addresses':
      return ["['127.0.0.1:9', 'unix:/run/r.sock']", ['127.0.0.1:9', 'unix:/run/r.sock']];
    case 'peers':
      return ["['10.0.0.0/8', 'unix']", ['10.0.0.0/8', 'unix']];
  }
}

const switches = optionNames.filter((name) => options[name].kind.type === 'switch');

describe('option table', () => {
  it('reads every switch variable as a boolean, false included', () => {
    for (const name of ['noAuth', 'noVerifyUpload', 'prometheusNoAuth', 'appendOnly'] as const)
      assert.ok(switches.includes(name), name);
    for (const name of switches) {
      for (const [text, value] of [
        ['false', false],
        ['FALSE', false],
        ['0', false],
        ['no', false],
        ['Off', false],
        ['true', true],
        ['1', true],
        ['YES', true],
        ['on', true],
      ] as const) {
        assert.equal(readEnvironment({ [envName(name)]: text })[name], value, `${envName(name)}=${text}`);
      }
      assert.equal(readEnvironment({ [envName(name)]: '' })[name], undefined, 'empty is unset');
      assert.throws(
        () => readEnvironment({ [envName(name)]: 'maybe' }),
        (err: Error) =>
          err instanceof UsageError && err.message.startsWith(`${envName(name)} must be true or false`),
      );
    }
  });

  it('turns nothing on that a variable set to false names', () => {
    const env = Object.fromEntries(switches.map((name) => [envName(name), 'false']));
    const config = buildServerConfig(readEnvironment(env), () => 'env', undefined);
    assert.equal(config.noAuth, false);
    assert.equal(config.verifyUpload, true);
    assert.equal(config.appendOnly, false);
    assert.equal(config.prometheusNoAuth, false);
    assert.equal(config.prometheus, false);
    assert.equal(config.tls, undefined);
  });

  it('parses sizes without looking units up on a prototype', () => {
    for (const text of ['5constructor', '5__proto__', '5toString', '1valueOf', '5hasOwnProperty', '5x']) {
      assert.throws(() => parseSize(text), /invalid size/, text);
    }
    assert.throws(() => parseSize('99999999999TiB'), /invalid size/, 'beyond a safe integer');
    assert.equal(parseSize('500M'), 500 * 1024 ** 2);
    assert.equal(parseSize('1.5TB'), 1.5e12);
    assert.equal(parseSize('20 GiB'), 20 * 1024 ** 3);
    assert.equal(parseSize(1234), 1234);
  });

  it('reads every option from the configuration file under its key', () => {
    for (const name of fileOptionNames()) {
      const [yaml, value] = sample(options[name].kind);
      const file = parseConfigFile(`${fileKey(name)}: ${yaml}\n`, 'f.yaml');
      assert.deepEqual(file.options, { [name]: value }, `${fileKey(name)}: ${yaml}`);
    }
  });

  it('refuses values out of the table’s limits in the file, naming the key', () => {
    for (const name of fileOptionNames()) {
      const kind = options[name].kind;
      if (kind.type !== 'integer') continue;
      assert.throws(
        () => parseConfigFile(`${fileKey(name)}: ${kind.max + 1}\n`, 'f.yaml'),
        (err: Error) => err instanceof UsageError && err.message.includes(`${fileKey(name)}:`),
        name,
      );
    }
    assert.throws(() => parseConfigFile('max-size: 5constructor\n', 'f.yaml'), /max-size: invalid size/);
    assert.throws(() => parseConfigFile('config: other.yaml\n', 'f.yaml'), /config/, 'no key for --config');
  });

  it('parses durations: seconds or a unit, nothing looked up on a prototype', () => {
    assert.equal(parseDuration('7d'), 7 * 86_400_000);
    assert.equal(parseDuration('36h'), 36 * 3_600_000);
    assert.equal(parseDuration('1.5m'), 90_000);
    assert.equal(parseDuration(90), 90_000);
    assert.equal(parseDuration('0'), 0);
    for (const bad of ['5constructor', '7 days', '-1s', 'd', ''])
      assert.throws(() => parseDuration(bad), /invalid duration/, bad);
    assert.throws(
      () => parseConfigFile('scrub-interval: 1y\n', 'f.yaml'),
      /scrub-interval: invalid duration "1y"/,
    );
    assert.equal(readEnvironment({ RATCHET_SCRUB_INTERVAL: '2w' }).scrubInterval, 14 * 86_400_000);
  });

  it('merges defaults < file < environment < flags', () => {
    const file = parseConfigFile('max-repo-depth: 10\nmax-repos-per-user: 10\nshutdown-timeout: 10\n', 'f');
    const env = readEnvironment({ RATCHET_MAX_REPO_DEPTH: '11', RATCHET_MAX_REPOS_PER_USER: '11' });
    const source = (name: OptionName): string => (name === 'maxRepoDepth' ? 'cli' : 'env');
    const config = buildServerConfig({ ...env, maxRepoDepth: 12 }, source, file);
    assert.equal(config.maxRepoDepth, 12, 'the flag');
    assert.equal(config.quotas.maxReposPerUser, 11, 'the variable');
    assert.equal(config.shutdownTimeout, 10, 'the file');
    const defaults = buildServerConfig({}, () => undefined, undefined);
    assert.equal(defaults.quotas.maxReposPerUser, 1000);
    assert.equal(defaults.maxRepoDepth, 8);
    assert.equal(defaults.path, './data');
    assert.equal(defaults.quotas.maxTotalBytes, undefined);
    assert.deepEqual(
      defaults.listeners.map((listener) => listener.address),
      [{ kind: 'tcp', host: '127.0.0.1', port: 8000 }],
    );
    assert.throws(
      () => readEnvironment({ RATCHET_MAX_REPOS_PER_USER: '1000001' }),
      /RATCHET_MAX_REPOS_PER_USER must be a whole number from 1 to 1000000/,
    );
  });
});

describe('listener roots', () => {
  const cli = (name: OptionName): string | undefined =>
    ['listen', 'listenRoot', 'adminListen', 'noAuth'].includes(name) ? 'cli' : undefined;

  it('--listen-root applies to the --listen listeners, not to --admin-listen', () => {
    const config = buildServerConfig(
      { listen: ['127.0.0.1:9000'], listenRoot: '/{user}', adminListen: ['127.0.0.1:9001'] },
      cli,
      undefined,
    );
    assert.deepEqual(
      config.listeners.map((listener) => listener.root),
      [[{ user: true }], undefined],
    );
    assert.deepEqual(
      config.listeners.map((listener) => listener.forHosts),
      [true, false],
    );
  });

  it('reads a root per listener from the file', () => {
    const file = parseConfigFile(
      'listeners:\n  - address: 127.0.0.1:9000\n    max-role: append-only\n    root: /hosts/{user}\n' +
        '  - address: 127.0.0.1:9001\n    max-role: admin\n',
      'f.yaml',
    );
    const config = buildServerConfig({}, () => undefined, file);
    assert.deepEqual(
      config.listeners.map((listener) => listener.root),
      [[{ literal: 'hosts' }, { user: true }], undefined],
    );
  });

  it('refuses a bad root, a {user} root without logins, and --listen-root beside file listeners', () => {
    assert.throws(
      () => buildServerConfig({ listenRoot: 'host1' }, cli, undefined),
      (err: Error) =>
        err instanceof UsageError && /^--listen-root: root "host1" must start with "\/"/.test(err.message),
    );
    const file = parseConfigFile(
      'listeners:\n  - address: 127.0.0.1:9000\n    max-role: admin\n    root: /{host}\n',
      'f.yaml',
    );
    assert.throws(
      () => buildServerConfig({}, () => undefined, file),
      (err: Error) => err instanceof UsageError && /^listener 127.0.0.1:9000: root/.test(err.message),
    );
    assert.throws(
      () => buildServerConfig({ listenRoot: '/{user}', noAuth: true }, cli, undefined),
      (err: Error) => err instanceof UsageError && /needs users who log in/.test(err.message),
    );
    const listeners = parseConfigFile(
      'listeners:\n  - address: 127.0.0.1:9000\n    max-role: admin\n',
      'f.yaml',
    );
    assert.throws(
      () => buildServerConfig({ listenRoot: '/{user}' }, cli, listeners),
      (err: Error) => err instanceof UsageError && /--listen-root .*cannot be combined/.test(err.message),
    );
  });
});
