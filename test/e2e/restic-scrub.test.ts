/**
 * Bit rot in a real restic repository: one byte of a stored pack flipped on disk. `ratchet scrub`
 * (beside the running server) names exactly that pack and exits 1, after a clean run that
 * exited 0; the server's background scrub finds it too, logs it and counts it in the metrics.
 */
import assert from 'node:assert/strict';
import { open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { raw } from '../helpers/http.ts';
import { runRatchet } from '../helpers/ratchet-process.ts';
import { sleep, waitFor } from '../helpers/wait.ts';
import { inTest, resticEnvironment, step } from './fixture.ts';
import { smallTree } from './restic-helpers.ts';

describe('restic e2e, scrubbing finds a flipped byte', { timeout: 300_000 }, () => {
  const env = resticEnvironment({
    name: 'scrub',
    password: 'key',
    tree: smallTree,
    serverArgs: ['--no-auth', '--prometheus', '--scrub-interval', '3s'],
    repoPath: 'host1/',
  });

  it('by the command and by the background scrub', step, async (t) => {
    const restic = inTest(env.rest(), t);
    await restic.ok(['init']);
    await restic.ok(['backup', '.'], { cwd: env.source });

    const clean = await runRatchet(['scrub', '--path', env.dataDir]);
    assert.equal(clean.code, 0, clean.stderr);
    assert.equal(clean.stdout, '');
    assert.match(clean.stderr, /all sound/);

    // The largest pack, one byte flipped in its middle.
    const dataDir = path.join(env.dataDir, 'host1', 'data');
    const packs: { file: string; name: string; size: number }[] = [];
    for (const folder of await readdir(dataDir)) {
      for (const name of await readdir(path.join(dataDir, folder))) {
        const file = path.join(dataDir, folder, name);
        const handle = await open(file);
        packs.push({ file, name, size: (await handle.stat()).size });
        await handle.close();
      }
    }
    const victim = packs.sort((a, b) => b.size - a.size)[0];
    assert.ok(victim);
    const handle = await open(victim.file, 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, victim.size >> 1);
    byte[0] = (byte[0] ?? 0) ^ 0x40;
    await handle.write(byte, 0, 1, victim.size >> 1);
    await handle.close();

    const found = await runRatchet(['scrub', '--path', env.dataDir, '--repo', '/host1/']);
    assert.equal(found.code, 1, found.stderr);
    const lines = found.stdout.trim().split('\n');
    assert.equal(lines.length, 1, found.stdout);
    assert.match(
      lines[0] ?? '',
      new RegExp(
        `^corrupt: /host1/ data/${victim.name} ${victim.size} bytes \\(content hashes to [0-9a-f]{64}\\)$`,
      ),
    );
    assert.match(found.stderr, /1 corrupt/);

    // The background scrub of the running server (a pass every 3 s) finds the same.
    const corruptMetric = async (): Promise<number> => {
      await sleep(200);
      const text = (await raw(env.server.url, 'GET', '/metrics')).body.toString();
      const match = /^ratchet_scrub_corrupt_objects_total\{repo="host1"\} (\d+)$/m.exec(text);
      return Number(match?.[1] ?? 0);
    };
    let count = 0;
    await waitFor(
      async () => (count = await corruptMetric()) >= 1,
      'the background scrub to count it',
      30_000,
    );
    assert.ok(count >= 1);
    const metrics = (await raw(env.server.url, 'GET', '/metrics')).body.toString();
    assert.match(metrics, /^ratchet_scrub_objects_total \d+$/m);
    assert.match(metrics, /^ratchet_scrub_last_pass_timestamp_seconds\{repo="host1"\} \d+/m);
    assert.match(env.server.stderr(), new RegExp(`"name":"${victim.name}".*does not match its name`));
  });
});
