import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { projectRoot, withTempDir } from '../helpers/ratchet-process.ts';

const script = path.join(projectRoot, 'scripts', 'check-layers.mjs');

/** Writes the files (path relative to root -> content) below root. */
async function tree(root: string, files: Record<string, string>): Promise<void> {
  for (const [file, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await writeFile(path.join(root, file), content);
  }
}

/** Runs the check on a tree with the given known exceptions: exit code and problem lines. */
async function check(root: string, known: string[] = []): Promise<{ code: number; problems: string[] }> {
  try {
    await promisify(execFile)(process.execPath, [script, root, ...known]);
    return { code: 0, problems: [] };
  } catch (err) {
    const { code, stderr } = err as { code: number; stderr: string };
    const problems = stderr
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => line.replace(/^check-layers: /, ''));
    return { code, problems };
  }
}

// A tree that follows the flow: every import goes down the table, none in a circle.
const clean = {
  'cli/main.ts': "import { serve } from '../server/server.ts';\n",
  'server/server.ts':
    "import type { Handler } from '../http/handler.ts';\nimport { fail } from '../errors.ts';\n",
  'http/handler.ts':
    "import {\n  route,\n  type Route,\n} from '../protocol/route.ts';\nimport { log } from '../log/log.ts';\n",
  'protocol/route.ts':
    "export { type RepoPath } from '../domain/repo.ts';\nconst store = await import('../storage/store.ts');\n",
  'log/log.ts': "import { now } from '../util/clock.ts';\n",
  'storage/store.ts': "import type { RepoPath } from '../domain/repo.ts';\n",
  'domain/repo.ts':
    "import { fail } from '../errors.ts';\n// Not an import: from '../cli/main.ts'\n/* nor this: import '../http/handler.ts' */\n",
  'util/clock.ts': "import { fail } from '../errors.ts';\n",
  'errors.ts': 'export const fail = 1;\n',
};

describe('the layering check (scripts/check-layers.mjs)', () => {
  it('passes a tree whose imports all go down the table', async () => {
    await withTempDir(async (root) => {
      await tree(root, clean);
      assert.deepEqual(await check(root), { code: 0, problems: [] });
    });
  });

  it('reports an upward import, a cycle, the domain importing more than errors, and a stale exception', async () => {
    await withTempDir(async (root) => {
      await tree(root, {
        ...clean,
        'storage/store.ts': "import type { Route } from '../protocol/route.ts';\n",
        'http/handler.ts': "import { route } from '../protocol/route.ts';\nimport { a } from './a.ts';\n",
        'http/a.ts': "import { b } from './b.ts';\n",
        'http/b.ts': "import type { Handler } from './handler.ts';\n",
        'domain/repo.ts': "import { now } from '../util/clock.ts';\n",
      });
      const { code, problems } = await check(root, ['log/log.ts -> http/handler.ts']);
      assert.equal(code, 1);
      assert.deepEqual(problems.sort(), [
        'domain/repo.ts -> util/clock.ts: domain may not import util (the flow is one-way, see scripts/check-layers.mjs)',
        'import cycle: http/a.ts -> http/b.ts -> http/handler.ts -> http/a.ts',
        'import cycle: protocol/route.ts -> storage/store.ts -> protocol/route.ts',
        'log/log.ts -> http/handler.ts: listed as a known exception but no longer occurs; remove it',
        'storage/store.ts -> protocol/route.ts: storage may not import protocol (the flow is one-way, see scripts/check-layers.mjs)',
      ]);
    });
  });

  it('accepts a listed exception that still occurs, and names a folder that is in no layer', async () => {
    await withTempDir(async (root) => {
      await tree(root, {
        ...clean,
        'log/log.ts': "import type { Route } from '../protocol/route.ts';\n",
        'extras/tool.ts': "import { fail } from '../errors.ts';\n",
      });
      assert.deepEqual(await check(root, ['log/log.ts -> protocol/route.ts']), {
        code: 1,
        problems: ['extras (extras/tool.ts) is in no layer: add it to scripts/check-layers.mjs'],
      });
    });
  });
});
