/** Keeps the documentation in step with the option table it describes. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { launcherNodeFlags } from '../../bench/launcher.ts';
import { fileKey, fileOptionNames, flagName, optionNames } from '../../src/config/options.ts';
import { tableEnd, tableStart, withOptionTable } from '../../src/config/options-doc.ts';
import { projectRoot } from '../helpers/ratchet-process.ts';

describe('documentation', () => {
  it('lists every flag in the README', async () => {
    const readme = await readFile(path.join(projectRoot, 'README.md'), 'utf8');
    assert.ok(optionNames.length > 20, 'the option table is complete');
    for (const name of optionNames) {
      assert.ok(readme.includes(`\`${flagName(name)}`), `README.md does not mention ${flagName(name)}`);
    }
  });

  it('has the option table generated from the definition in docs/configuration.md', async () => {
    const doc = await readFile(path.join(projectRoot, 'docs', 'configuration.md'), 'utf8');
    assert.equal(doc, withOptionTable(doc), 'docs/configuration.md is stale: run npm run docs:options');
    const table = doc.slice(doc.indexOf(tableStart), doc.indexOf(tableEnd));
    const keys = table
      .split('\n')
      .map((line) => /^\| `([a-z0-9-]+)` /.exec(line)?.[1])
      .filter((key) => key !== undefined);
    assert.ok(keys.length > 20, `the table has ${keys.length} rows`);
    assert.deepEqual(keys, fileOptionNames().map(fileKey));
  });

  it('starts Node.js with the same flags wherever the server is launched', async () => {
    const read = (...parts: string[]) => readFile(path.join(projectRoot, ...parts), 'utf8');
    const flags = launcherNodeFlags(await read('bin', 'ratchet'));
    assert.ok(flags, 'bin/ratchet runs node with flags');
    const packageJson = JSON.parse(await read('package.json')) as {
      bin: Record<string, string>;
      scripts: Record<string, string>;
    };
    assert.equal(packageJson.bin.ratchet, 'bin/ratchet');
    assert.ok(packageJson.scripts.start?.endsWith(`node ${flags} dist/cli/main.js`), 'npm start');
    assert.equal(packageJson.scripts.ratchet, `node ${flags} dist/cli/main.js`);
    // The unit runs the installed launcher itself, so it gets the launcher's flags.
    assert.match(
      await read('contrib', 'systemd', 'ratchet.service'),
      /^ExecStart=\/usr\/local\/bin\/ratchet /m,
    );
  });
});
