/** Keeps the documentation in step with the option table it describes. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
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
    const shebang = (await read('src', 'cli', 'main.ts')).split('\n')[0] ?? '';
    const flags = /^#!\/usr\/bin\/env -S node((?: --[a-z0-9-]+=\S+)*)$/.exec(shebang)?.[1]?.trim();
    assert.ok(flags, `unexpected shebang: ${shebang}`);
    const scripts = (JSON.parse(await read('package.json')) as { scripts: Record<string, string> }).scripts;
    assert.ok(scripts.start?.endsWith(`node ${flags} dist/cli/main.js`), 'npm start');
    assert.equal(scripts.ratchet, `node ${flags} dist/cli/main.js`);
    assert.match(
      await read('contrib', 'systemd', 'ratchet.service'),
      new RegExp(`ExecStart=/usr/bin/node ${flags} /`),
    );
  });
});
