#!/usr/bin/env node
// Runs the test groups with node's test runner (TypeScript through tsx), one group after the
// other, and prints each group's counts and time. Fails when a selected group ran no test (so a
// broken glob or an emptied folder cannot pass silently) and on skipped tests.
//
// The http and e2e groups start the real `ratchet` command, bin/ratchet over the built dist/, so
// the runner builds once (`npm run build`) before them: the tests run what users run, never a
// stale build.
//
// Every group has a time budget (below, and in README.md's "Testing" section). A group over its
// budget prints a warning with the figures; it does not fail the run, since a loaded machine
// must not fail a correct build. The last line is always `N passed, N failed, N skipped`.
//
// The e2e group runs twice: with Debian 12's restic (0.14, `restic` on the PATH) and with the
// restic 0.18 most users run (it retries differently and insists on exact range lengths). The
// 0.18 binary is $RATCHET_RESTIC_018 (default /tmp/restic-0.18/restic), fetched from Debian's
// archive by scripts/get-restic-0.18.sh when it is missing; if it cannot be had, that group fails.
//
// The s3 groups (s3, and s3-0.18 with restic 0.18) run test/s3/ against a real single-node Ceph
// RGW on 127.0.0.1:17480, started (or reused) by scripts/ceph-s3/start-ceph-s3.sh; when it cannot
// start, those groups fail.
//
// The browser group drives Debian's Chromium (package chromium) with playwright-core.
//
// Usage: node scripts/run-tests.mjs [group-or-file ...]   groups: unit storage state http e2e e2e-0.18 s3 s3-0.18 browser
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** The groups in the order they run, with their time budgets in seconds. */
const budgets = {
  unit: 60,
  storage: 60,
  state: 60,
  http: 180,
  e2e: 240,
  'e2e-0.18': 240,
  s3: 240,
  's3-0.18': 240,
  browser: 120,
};
/** Groups whose tests start bin/ratchet and so need the build. */
const needBuild = new Set(['http', 'e2e', 'e2e-0.18', 's3', 's3-0.18', 'browser']);
/** Groups that run another group's files with other settings. */
const sameFiles = { 'e2e-0.18': 'e2e', 's3-0.18': 's3' };
const restic018 = process.env.RATCHET_RESTIC_018 ?? '/tmp/restic-0.18/restic';

const groups = Object.keys(budgets);
const args = process.argv.slice(2);
const selected = args.length > 0 ? args : groups;

/** @type {Map<string, string[]>} the files of each group, in run order */
const plan = new Map();
const add = (group, file) => plan.set(group, [...(plan.get(group) ?? []), file]);
for (const item of selected) {
  if (groups.includes(item)) {
    const dir = path.join('test', sameFiles[item] ?? item);
    const names = existsSync(dir) ? readdirSync(dir).sort() : [];
    for (const name of names) if (name.endsWith('.test.ts')) add(item, path.join(dir, name));
    if (!plan.has(item)) plan.set(item, []);
  } else {
    const group = path.normalize(item).split(path.sep)[1];
    add(groups.includes(group) ? group : 'other', item);
  }
}
const order = [...groups, 'other'].filter((group) => plan.has(group));

const seconds = (ms) => (ms / 1000).toFixed(1);
const results = [];

if (order.some((group) => needBuild.has(group))) {
  const started = Date.now();
  console.log('run-tests: building dist/ for bin/ratchet (npm run build)');
  const build = spawnSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  if (build.status !== 0) {
    console.error('run-tests: the build failed, so the http and e2e tests cannot run bin/ratchet');
    console.log('\n0 passed, 0 failed, 0 skipped');
    process.exit(1);
  }
  results.push({ group: 'build', ms: Date.now() - started });
}

/** The environment a group's tests run with. */
function groupEnv(group) {
  const env = group.endsWith('-0.18') ? { ...process.env, RESTIC_BIN: restic018 } : { ...process.env };
  return group.startsWith('s3') ? { ...env, ...s3Env } : env;
}

/** The S3 gateway's settings (filled by ensureCeph), as the s3 groups' tests and the SDK read them. */
let s3Env = {};

/**
 * Starts the single-node Ceph RGW on loopback (scripts/ceph-s3/start-ceph-s3.sh; it reuses a
 * running one and installs Debian's ceph packages when they are missing); false if it cannot.
 */
function ensureCeph() {
  if (Object.keys(s3Env).length > 0) return true;
  console.log('run-tests: starting Ceph RGW on 127.0.0.1 (scripts/ceph-s3/start-ceph-s3.sh)');
  const started = spawnSync('bash', ['scripts/ceph-s3/start-ceph-s3.sh'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (started.status !== 0) {
    console.error('run-tests: Ceph RGW did not start, so the s3 groups cannot run');
    return false;
  }
  const values = Object.fromEntries(
    started.stdout
      .split('\n')
      .map((line) => /^([A-Z0-9_]+)=(.*)$/.exec(line))
      .filter((match) => match !== null)
      .map((match) => [match[1], match[2]]),
  );
  s3Env = {
    ...values,
    AWS_ACCESS_KEY_ID: values.S3_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: values.S3_SECRET_ACCESS_KEY,
    AWS_REGION: values.S3_REGION,
  };
  return true;
}

/** Makes sure restic 0.18 is there for its group; false (with the reason printed) if not. */
function ensureRestic018() {
  if (existsSync(restic018)) return true;
  console.log(`run-tests: fetching restic 0.18 to ${restic018} (scripts/get-restic-0.18.sh)`);
  const fetched = spawnSync('bash', ['scripts/get-restic-0.18.sh', restic018], { stdio: 'inherit' });
  if (fetched.status === 0 && existsSync(restic018)) return true;
  console.error('run-tests: restic 0.18 could not be fetched, so the e2e-0.18 group cannot run');
  return false;
}

/** Runs one group's files in one node --test process; resolves with its TAP counts and time. */
function runGroup(group, files) {
  const tapDir = mkdtempSync(path.join(tmpdir(), 'ratchet-tap-'));
  const tapFile = path.join(tapDir, 'results.tap');
  const started = Date.now();
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      // The s3 groups share one gateway that a test stops and starts again: one file at a time.
      group.startsWith('s3') ? '--test-concurrency=1' : '--test-concurrency=2',
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      '--test-reporter=tap',
      `--test-reporter-destination=${tapFile}`,
      ...files,
    ],
    { stdio: 'inherit', env: groupEnv(group) },
  );
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      const tap = existsSync(tapFile) ? readFileSync(tapFile, 'utf8') : '';
      rmSync(tapDir, { recursive: true, force: true });
      const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tap)?.[1] ?? 0);
      const names = ['tests', 'pass', 'fail', 'cancelled', 'skipped', 'todo'];
      const [tests, pass, fail, cancelled, skipped, todo] = names.map(count);
      const ok = signal === null && code === 0;
      resolve({
        group,
        files: files.length,
        ms: Date.now() - started,
        tests,
        pass,
        // A cancelled test (it timed out, or its suite was cut off) failed.
        fail: fail + cancelled,
        skipped: skipped + todo,
        ok,
      });
    });
  });
}

for (const group of order) {
  const files = plan.get(group) ?? [];
  if (files.length === 0) {
    results.push({ group, files: 0, ms: 0, tests: 0, pass: 0, fail: 0, skipped: 0, ok: false });
    continue;
  }
  console.log(`\nrun-tests: ${group} (${files.length} files)`);
  const ready = (!group.endsWith('-0.18') || ensureRestic018()) && (!group.startsWith('s3') || ensureCeph());
  if (!ready) {
    results.push({ group, files: files.length, ms: 0, tests: 0, pass: 0, fail: 0, skipped: 0, ok: false });
    continue;
  }
  results.push(await runGroup(group, files));
}

console.log('\nrun-tests: time per group');
const problems = [];
for (const r of results) {
  if (r.group === 'build') {
    console.log(`  build    ${seconds(r.ms).padStart(6)} s`);
    continue;
  }
  const budget = budgets[r.group];
  const limit = budget === undefined ? '' : ` (budget ${budget} s)`;
  console.log(
    `  ${r.group.padEnd(8)} ${seconds(r.ms).padStart(6)} s${limit}: ${r.files} files, ${r.pass} passed, ${r.fail} failed, ${r.skipped} skipped`,
  );
  if (budget !== undefined && r.ms > budget * 1000)
    console.log(
      `run-tests: WARNING: the ${r.group} group took ${seconds(r.ms)} s, over its budget of ${budget} s (see README.md, "Testing")`,
    );
  if (r.tests === 0) problems.push(`the ${r.group} group ran no test`);
  else if (!r.ok) problems.push(`the ${r.group} group failed`);
  if (r.skipped > 0) problems.push(`the ${r.group} group skipped tests, which do not count as passing`);
}
console.log(`  total    ${seconds(results.reduce((sum, r) => sum + r.ms, 0)).padStart(6)} s`);

const total = (key) => results.reduce((sum, r) => sum + (r[key] ?? 0), 0);
for (const problem of problems) console.error(`run-tests: ${problem}`);
console.log(`\n${total('pass')} passed, ${total('fail')} failed, ${total('skipped')} skipped`);
process.exit(problems.length > 0 ? 1 : 0);
