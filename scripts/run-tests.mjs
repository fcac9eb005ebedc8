#!/usr/bin/env node
// Runs the test suites with node's test runner (TypeScript through tsx) and fails when no test
// ran, so a broken glob or an emptied folder cannot pass silently.
// Usage: node scripts/run-tests.mjs [suite-or-file ...]   suites: unit http storage e2e
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const suites = ['unit', 'storage', 'http', 'e2e'];
const args = process.argv.slice(2);
const selected = args.length > 0 ? args : suites;

const files = [];
for (const item of selected) {
  if (suites.includes(item)) {
    const dir = path.join('test', item);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort())
      if (name.endsWith('.test.ts')) files.push(path.join(dir, name));
  } else {
    files.push(item);
  }
}
if (files.length === 0) {
  console.error('run-tests: no test files found');
  process.exit(1);
}

const tapDir = mkdtempSync(path.join(tmpdir(), 'ratchet-tap-'));
const tapFile = path.join(tapDir, 'results.tap');
const child = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=2',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tapFile}`,
    ...files,
  ],
  { stdio: 'inherit' },
);
child.on('exit', (code, signal) => {
  const tap = existsSync(tapFile) ? readFileSync(tapFile, 'utf8') : '';
  rmSync(tapDir, { recursive: true, force: true });
  const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tap)?.[1] ?? 0);
  const [tests, pass, fail, skipped, todo] = ['tests', 'pass', 'fail', 'skipped', 'todo'].map(count);
  console.log(`\n${pass} passed, ${fail} failed, ${skipped + todo} skipped`);
  if (tests === 0) {
    console.error('run-tests: no test was executed');
    process.exit(1);
  }
  if (skipped + todo > 0) {
    console.error('run-tests: skipped tests do not count as passing');
    process.exit(1);
  }
  process.exit(signal ? 1 : (code ?? 1));
});
