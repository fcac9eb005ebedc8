/** Keeps the documentation in step with the option table it describes. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { launcherNodeFlags } from '../../bench/launcher.ts';
import { optionSpecs } from '../../src/config/options.ts';
import { projectRoot } from '../helpers/ratchet-process.ts';

describe('documentation', () => {
  it('lists every flag in the README', async () => {
    const readme = await readFile(path.join(projectRoot, 'README.md'), 'utf8');
    for (const spec of optionSpecs) {
      const flag = /^--[a-z0-9-]+/.exec(spec.flag)?.[0] ?? '';
      assert.ok(readme.includes(`\`${flag}`), `README.md does not mention ${flag}`);
    }
  });

  it('lists every configuration key in docs/configuration.md', async () => {
    const doc = await readFile(path.join(projectRoot, 'docs', 'configuration.md'), 'utf8');
    for (const spec of optionSpecs) {
      if (spec.fileKey === undefined) continue;
      assert.ok(doc.includes(`| \`${spec.fileKey}\``), `docs/configuration.md does not list ${spec.fileKey}`);
    }
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
    assert.match(
      await read('contrib', 'systemd', 'ratchet.service'),
      new RegExp(`ExecStart=/usr/bin/node ${flags} /`),
    );
  });
});
