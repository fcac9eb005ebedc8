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
});
